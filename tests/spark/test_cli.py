"""``healthcode spark recolor``, and export, job and import run apart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from healthcode.bench.recolor import build_population
from healthcode.config import get_settings
from healthcode.spark import submit
from healthcode.spark.cli import spark_app
from healthcode.spark.errors import SnapshotError
from healthcode.status.models import Status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("engine", ["sqlite"], indirect=True),
]

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


@pytest.fixture
def invoke(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*arguments: str) -> Result:
        return runner.invoke(spark_app, list(arguments), env={"COLUMNS": "200"})

    yield run
    get_settings.cache_clear()


def _as_of(engine: Engine) -> set[datetime]:
    with engine.connect() as connection:
        return set(connection.execute(sa.select(Status.as_of)).scalars())


def test_spark_recolor_evaluates_everyone_and_says_so(engine, invoke, spark, tmp_path):
    build_population(engine, 300, NOW)

    result = invoke("recolor", "--now", NOW.isoformat(), "--work", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert "300 residents evaluated on local[2], 300 statuses written" in result.output
    assert "recolour on Spark" in result.output
    assert _as_of(engine) == {NOW}
    lines = result.output.splitlines()
    exported = next(i for i, line in enumerate(lines) if "snapshot: residents" in line)
    evaluated = next(i for i, line in enumerate(lines) if "recolour on Spark" in line)
    assert "300/300" in lines[exported]
    assert exported < evaluated


def test_export_submit_and_import_run_as_three_steps(engine, invoke, spark, tmp_path):
    build_population(engine, 300, NOW)
    later = NOW + timedelta(days=2)
    snapshot, result = str(tmp_path / "snapshot"), str(tmp_path / "result")

    exported = invoke("export", "recolor", snapshot, "--now", later.isoformat())
    ran = submit.main(["recolor", snapshot, result, "2"], spark=spark)
    imported = invoke("import", "recolor", snapshot, result)

    assert exported.exit_code == 0, exported.output
    assert "snapshot of 300 residents in 1 files" in exported.output
    assert ran == 0
    assert imported.exit_code == 0, imported.output
    assert "300 residents evaluated, 300 statuses written" in imported.output
    assert _as_of(engine) == {later}


def test_importing_a_result_that_is_not_there_is_a_clear_error(
    engine, invoke, spark, tmp_path
):
    build_population(engine, 20, NOW)
    snapshot = str(tmp_path / "snapshot")
    invoke("export", "recolor", snapshot, "--now", NOW.isoformat())

    result = invoke("import", "recolor", snapshot, str(tmp_path / "nowhere"))

    assert isinstance(result.exception, SnapshotError)
    assert "job summary" in str(result.exception)
    assert _as_of(engine) == set()
