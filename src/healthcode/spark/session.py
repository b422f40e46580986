"""The Spark session the jobs run in, and progress shown while they run.

In local mode (the tests, a single machine) everything binds to the
loopback address and the web UI is off, so that a job opens no port that
another machine could reach. On a cluster the driver must be reachable by
the executors, so its address is the caller's choice (``driver_host``).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from healthcode.config import get_settings
from healthcode.spark.errors import SparkUnavailable

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
# A driver port that is set (HEALTHCODE_SPARK_DRIVER_PORT and
# HEALTHCODE_SPARK_BLOCK_MANAGER_PORT) is the first of a band: when it is in
# use the next is tried, so that several jobs on one machine do not collide.
PORT_RETRIES = 16


def java_home() -> str:
    """The Java installation Spark's launcher is to use.

    ``JAVA_HOME`` wins when it is set, and must then hold ``bin/java``;
    otherwise the ``java`` on ``PATH`` is followed through its links to its
    installation; otherwise the newest JDK under ``/usr/lib/jvm``.
    """
    named = os.environ.get("JAVA_HOME")
    if named:
        if not (Path(named) / "bin" / "java").is_file():
            raise SparkUnavailable(
                f"JAVA_HOME is {named}, which holds no bin/java; point it at a"
                " Java 17 or 21 installation, or unset it to use the java on PATH."
            )
        return named
    found = shutil.which("java")
    if found:
        return str(Path(os.path.realpath(found)).parent.parent)
    installed = sorted(Path("/usr/lib/jvm").glob("*/bin/java"))
    if installed:
        return str(installed[-1].parent.parent)
    raise SparkUnavailable(
        "No Java runtime was found for Spark: install Java 17 or 21, or set"
        " JAVA_HOME to one."
    )


def is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def spark_session(
    master: str = "local[2]",
    *,
    app_name: str = "healthcode",
    driver_host: str = LOOPBACK,
    config: dict[str, str] | None = None,
    driver_port: int | None = None,
    block_manager_port: int | None = None,
) -> SparkSession:
    """A Spark session on ``master`` (``local[N]``, ``spark://...``, ``yarn``).

    The driver's ports are ``driver_port`` and ``block_manager_port``, or
    else the settings of the same names; 0 lets Spark take free ones. A
    session that is already running in this process is reused (Spark allows
    one per process); its master is then whatever it was started on.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(
            "The Spark jobs need pyspark; install healthcode with its 'spark'"
            " extra (pip install 'healthcode[spark]')."
        ) from exc
    if driver_port is None or block_manager_port is None:
        settings = get_settings()
        if driver_port is None:
            driver_port = settings.spark_driver_port
        if block_manager_port is None:
            block_manager_port = settings.spark_block_manager_port
    os.environ["JAVA_HOME"] = java_home()
    # Executors in local mode, and the Python workers Spark forks, run this
    # very interpreter, so they import the same healthcode.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if is_local(master):
        driver_host = LOOPBACK
        # Without it Spark looks its host name up and may bind elsewhere.
        os.environ["SPARK_LOCAL_IP"] = LOOPBACK
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.host", driver_host)
        .config("spark.driver.bindAddress", driver_host)
        .config("spark.port.maxRetries", str(PORT_RETRIES))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.python.worker.reuse", "true")
    )
    if driver_port:
        builder = builder.config("spark.driver.port", str(driver_port))
    if block_manager_port:
        builder = builder.config("spark.blockManager.port", str(block_manager_port))
    if is_local(master):
        # A local run has a handful of cores; the default of 200 shuffle
        # partitions would be mostly empty tasks.
        builder = builder.config("spark.sql.shuffle.partitions", "8")
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def run_with_progress(
    spark: SparkSession,
    description: str,
    action: Callable[[], T],
    console: Console | None = None,
) -> T:
    """Run ``action`` (which starts Spark jobs) with a bar of tasks done.

    The jobs are tagged with a group of their own, and the bar counts the
    tasks of every stage of that group's jobs as Spark's status tracker
    reports them.
    """
    context = spark.sparkContext
    group = f"healthcode-{uuid.uuid4().hex[:12]}"
    outcome: dict[str, Any] = {}

    def work() -> None:
        context.setJobGroup(group, description)
        try:
            outcome["value"] = action()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=work, name=group, daemon=True)
    with Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)
        thread.start()
        while thread.is_alive():
            thread.join(0.25)
            done, total = _tasks(context, group)
            if total:
                bar.update(task, total=total, completed=done)
        done, total = _tasks(context, group)
        bar.update(task, total=total or 1, completed=total or 1)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _tasks(context: Any, group: str) -> tuple[int, int]:
    tracker = context.statusTracker()
    done = total = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        if job is None:
            continue
        for stage_id in job.stageIds:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                done += stage.numCompletedTasks
                total += stage.numTasks
    return done, total
