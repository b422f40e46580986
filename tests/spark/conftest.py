"""One Spark session in local mode for every Spark test, and twin databases.

Starting Spark costs seconds, so the session is started once and shared;
every job in these tests runs on it with two cores, bound to the loopback
address. Without pyspark or a Java runtime the tests skip and say why, and
under CI they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from healthcode.spark.errors import SparkUnavailable


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    try:
        import pyspark  # noqa: F401

        from healthcode.spark.session import spark_session

        session = spark_session("local[2]", app_name="healthcode-tests")
    except (ImportError, SparkUnavailable) as exc:
        reason = f"Spark cannot start here: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    yield session
    session.stop()
