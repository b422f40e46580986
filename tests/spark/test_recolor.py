"""The full recolour on Spark gives what the single-machine recolour gives.

Each test builds a population, copies the database exactly, recolours one
copy with :func:`recolor_all` (a forked pool of workers) and the other with
the Spark job in local mode, and compares every status and every change of
colour column by column: colour, reasons with their evidence, as-of time,
next change and recheck time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.bench.recolor import build_population
from healthcode.checkins.models import Exposure
from healthcode.feeds.models import CaseReport, FeedImport
from healthcode.spark.errors import SnapshotOutdated
from healthcode.status.models import Status
from healthcode.status.services import _take_guard, recolor_all
from healthcode.status.spark import (
    export_recolor,
    import_recolor,
    recolor_on_spark,
    run_recolor,
)

from .support import events, statuses, twin

pytestmark = pytest.mark.slow

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
RESIDENTS = 1000


def _cases_and_exposures(engine: Engine) -> None:
    """A few reported cases and travel exposures to them, which the bench
    population does not have, so that those rules are evaluated too."""
    with engine.begin() as connection:
        import_id = connection.execute(sa.select(sa.func.min(FeedImport.id))).scalar()
        cases = []
        for index, rid in enumerate(range(40, 400, 30)):
            released = NOW - timedelta(days=3) if index % 3 == 0 else None
            cases.append(
                {
                    "resident_id": rid,
                    "department": "health",
                    "source_id": f"case-{rid}",
                    "content_hash": "x",
                    "import_id": import_id,
                    "classification": "confirmed" if index % 2 else "asymptomatic",
                    "onset_at": None if index % 4 == 0 else NOW - timedelta(days=6),
                    "diagnosed_at": NOW - timedelta(days=5),
                    "isolated_at": NOW - timedelta(days=5),
                    "released_at": released,
                }
            )
        connection.execute(sa.insert(CaseReport), cases)
        reports = connection.execute(
            sa.select(CaseReport.id, CaseReport.resident_id)
        ).all()
        exposures = []
        for number, (cid, case_rid) in enumerate(reports):
            for contact in range(case_rid + 500, case_rid + 506):
                ends = NOW - timedelta(days=6, hours=number)
                exposures.append(
                    {
                        "resident_id": contact,
                        "case_resident_id": case_rid,
                        "case_report_id": cid,
                        "kind": "travel",
                        "place": f"rail:CR:G{number}:2026-02-24:05",
                        "place_label": f"G{number} 2026-02-24 carriage 05",
                        "venue_id": None,
                        "starts_at": ends - timedelta(hours=2),
                        "ends_at": ends,
                        "overlap_minutes": 120,
                        "provenance": {"seatRowsApart": number % 4},
                        "found_at": NOW - timedelta(days=4),
                    }
                )
        connection.execute(sa.insert(Exposure), exposures)


@pytest.fixture
def population(engine: Engine) -> Engine:
    build_population(engine, RESIDENTS, NOW - timedelta(days=1))
    _cases_and_exposures(engine)
    return engine


def test_spark_recolour_equals_the_forked_pool_on_every_status(
    population, spark, tmp_path
):
    with twin(population, tmp_path) as copy:
        # A first recolour from nothing, then one three days on, when tests,
        # stays and orders have aged and statuses exist to compare with.
        for day, moment in enumerate((NOW, NOW + timedelta(days=3))):
            single = recolor_all(population, moment, workers=2)
            spread = recolor_on_spark(
                copy, spark, str(tmp_path / f"work-{day}"), moment, partitions=3
            )

            assert spread.residents == single.residents == RESIDENTS
            assert spread.written == single.written
            assert spread.colour_changes == single.colour_changes
            assert spread.rule_failures == single.rule_failures == 0
            assert statuses(copy) == statuses(population)
            assert events(copy) == events(population)

        final = statuses(copy)
        changed_on_day_three = spread.colour_changes

    colours = {row[1] for row in final}
    assert colours == {"green", "grey", "yellow", "red"}
    assert changed_on_day_three > 0
    assert sum(1 for row in final if row[4] is not None) > 10  # next changes
    with population.connect() as connection:
        as_of = connection.execute(sa.select(sa.func.min(Status.as_of))).scalar_one()
    assert as_of == NOW + timedelta(days=3)


SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_a_snapshot_older_than_the_records_is_refused_and_nothing_is_written(
    engine, spark, tmp_path
):
    build_population(engine, 200, NOW)
    snapshot, result = str(tmp_path / "snapshot"), str(tmp_path / "result")
    export_recolor(engine, snapshot, NOW)
    run_recolor(spark, snapshot, result)
    with engine.begin() as connection:
        # What an import of new records does before it commits them.
        _take_guard(connection, records_changed=True)

    with pytest.raises(SnapshotOutdated, match="Records changed after the recolour"):
        import_recolor(engine, snapshot, result)

    assert statuses(engine) == []


@SQLITE_ONLY
def test_a_status_written_after_the_snapshot_s_clock_is_kept(engine, spark, tmp_path):
    build_population(engine, 200, NOW)
    recolor_all(engine, NOW, workers=1)
    snapshot, result = str(tmp_path / "snapshot"), str(tmp_path / "result")
    later = NOW + timedelta(days=3)
    export_recolor(engine, snapshot, later)
    run_recolor(spark, snapshot, result)
    # A status read re-evaluates resident 7 after the snapshot was taken.
    with engine.begin() as connection:
        connection.execute(
            sa.update(Status)
            .where(Status.resident_id == 7)
            .values(as_of=later + timedelta(minutes=5), colour="yellow")
        )

    report = import_recolor(engine, snapshot, result)

    kept = {row[0]: row for row in statuses(engine)}
    assert report.residents == 200
    assert kept[7][1] == "yellow"
    assert {rid for rid, row in kept.items() if row[3] != kept[1][3]} == {7}
