"""The job step alone, as ``spark-submit`` runs it on a cluster::

    spark-submit --master spark://host:7077 ... \\
        "$(python -c 'import healthcode.spark.submit as m; print(m.__file__)')" \\
        recolor hdfs:///healthcode/recolor/snapshot hdfs:///healthcode/recolor/result

The session is the one ``spark-submit`` configured (master, executors,
addresses); this only names the application. The snapshot comes from
``healthcode spark export`` and the result goes to ``healthcode spark import``.
"""

from __future__ import annotations

import sys
from typing import Any


def main(argv: list[str] | None = None, spark: Any = None) -> int:
    """Run one job; ``spark`` is a session to use (and leave running)
    instead of the one ``spark-submit`` configured."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4) or args[0] not in ("recolor", "trace"):
        print(
            "usage: submit.py recolor|trace SNAPSHOT RESULT [PARTITIONS]",
            file=sys.stderr,
        )
        return 2
    job, snapshot, result = args[:3]
    partitions = int(args[3]) if len(args) == 4 else None
    own = spark is None
    if own:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName(f"healthcode-{job}").getOrCreate()
    try:
        if job == "recolor":
            from healthcode.status.spark import run_recolor

            summary = run_recolor(spark, snapshot, result, partitions=partitions)
            print(f"recolor: {summary['residents']} residents evaluated")
        else:
            from healthcode.checkins.spark import run_trace

            summary = run_trace(spark, snapshot, result, partitions=partitions)
            print(f"trace: {summary['found']} exposures found")
    finally:
        if own:
            spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
