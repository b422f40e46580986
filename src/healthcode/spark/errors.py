"""Errors of the Spark jobs."""

from healthcode.errors import HealthcodeError


class SparkJobError(HealthcodeError):
    code = "spark_job_error"


class SparkUnavailable(SparkJobError):
    """Spark, its Python package or a Java runtime for it is missing."""

    code = "spark_unavailable"


class SnapshotError(SparkJobError):
    """A snapshot or a job's result is missing, damaged or of another kind."""

    code = "spark_snapshot_error"


class SnapshotOutdated(SparkJobError):
    """Records changed after the snapshot was taken; its results would be stale."""

    code = "spark_snapshot_outdated"
