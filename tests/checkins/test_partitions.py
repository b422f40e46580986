"""Check-ins and status events partitioned by local day, on PostgreSQL.

Partitions made here stay in the session's database (emptying it after a
test keeps its tables), so each test names days of its own and drops the
partitions of those days before it starts.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.checkins.services import purge_checkins
from healthcode.db import make_engine, migrate, throwaway_postgres
from healthcode.partitions import (
    PARTITIONED,
    create_day_partitions,
    ensure_upcoming_partitions,
    is_partitioned,
    partition_name,
    partitions_of,
)

from .support import NOW, SHANGHAI, World

ON_POSTGRES = pytest.mark.parametrize("engine", ["postgres"], indirect=True)


def _fresh(engine: Engine, *days: date) -> None:
    """Drop the partitions of ``days`` that an earlier test may have left."""
    with engine.begin() as connection:
        for table in PARTITIONED:
            for day in days:
                name = partition_name(table, day)
                connection.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def _make(engine: Engine, table: str, *days: date) -> list[str]:
    with engine.begin() as connection:
        return create_day_partitions(connection, table, days, SHANGHAI)


def _where(engine: Engine, table: str, column: str) -> list[tuple[str, datetime]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                f"SELECT tableoid::regclass::text, {column} FROM {table}"
                f" ORDER BY {column}"
            )
        )
        return [(name, moment) for name, moment in rows]


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def test_sqlite_has_no_partitions(tmp_path) -> None:
    from healthcode.db import open_database

    engine = open_database(f"sqlite:///{tmp_path}/plain.db")
    with engine.begin() as connection:
        made = ensure_upcoming_partitions(connection, NOW, SHANGHAI)
        partitioned = [is_partitioned(connection, table) for table in PARTITIONED]
    engine.dispose()

    assert made == []
    assert partitioned == [False, False]


@ON_POSTGRES
def test_rows_land_in_the_partition_of_their_local_day(engine: Engine) -> None:
    world = World(engine)
    registered = (NOW - timedelta(days=30)).astimezone(SHANGHAI)
    days = (date(2026, 3, 7), date(2026, 3, 8))
    _fresh(engine, *days, registered.date())
    _make(engine, "checkins", *days)
    _make(engine, "status_events", registered.date())
    [resident] = world.residents(1)
    venue, other = world.venue(), world.venue(name="Tea House")

    # 00:30 in Shanghai is 16:30 UTC the day before: local days decide.
    world.visit(resident, venue, _at(days[1], 0, 30))
    world.visit(resident, other, _at(days[0], 23, 30))

    assert _where(engine, "checkins", "checked_in_at") == [
        ("checkins_2026_03_07", _at(days[0], 23, 30)),
        ("checkins_2026_03_08", _at(days[1], 0, 30)),
    ]
    # Registering coloured the resident green 30 days back.
    assert _where(engine, "status_events", "at") == [
        ("status_events_2026_02_08", registered)
    ]


@ON_POSTGRES
def test_a_day_without_a_partition_still_takes_its_check_ins(engine: Engine) -> None:
    world = World(engine)
    day = date(2026, 3, 2)
    _fresh(engine, day)
    [resident] = world.residents(1)
    venue = world.venue()

    result = world.visit(resident, venue, _at(day, 9))
    waiting = _where(engine, "checkins", "checked_in_at")
    made = _make(engine, "checkins", day)
    moved = _where(engine, "checkins", "checked_in_at")

    assert result.accepted == 1
    assert waiting == [("checkins_default", _at(day, 9))]
    assert made == ["checkins_2026_03_02"]
    assert moved == [("checkins_2026_03_02", _at(day, 9))]


@ON_POSTGRES
def test_an_upload_retried_into_a_partition_is_still_one_visit(engine: Engine) -> None:
    world = World(engine)
    day = date(2026, 3, 4)
    _fresh(engine, day)
    [resident] = world.residents(1)
    venue = world.venue()
    scan = world.item(resident, venue, _at(day, 10))
    first = world.upload([scan])
    _make(engine, "checkins", day)

    again = world.upload([scan])

    assert (first.accepted, again.accepted, again.duplicates) == (1, 0, 1)
    assert _where(engine, "checkins", "checked_in_at") == [
        ("checkins_2026_03_04", _at(day, 10))
    ]


@ON_POSTGRES
def test_purge_drops_the_partitions_of_expired_days(engine: Engine) -> None:
    world = World(engine)
    # Kept from 2026-02-17 00:00 in Shanghai: 21 days before NOW's day.
    days = [date(2026, 2, 15), date(2026, 2, 16), date(2026, 2, 17)]
    older = date(2026, 2, 12)
    _fresh(engine, older, *days)
    _make(engine, "checkins", *days)
    [resident] = world.residents(1)
    venue = world.venue()
    then = _at(days[2], 3)
    world.visit(resident, venue, _at(days[0], 10), now=then)
    world.visit(resident, venue, _at(days[1], 22), now=then)
    world.upload([world.item(resident, venue, _at(days[1], 22, 10))], now=then)
    world.visit(resident, venue, _at(days[2], 2), now=then)
    world.visit(resident, venue, _at(older, 12), now=then - timedelta(days=4))

    with Session(engine) as session, session.begin():
        purged = purge_checkins(session, NOW, zone=SHANGHAI)
    with engine.connect() as connection:
        left = [p.name for p in partitions_of(connection, "checkins")]

    assert purged == 3
    assert "checkins_2026_02_15" not in left
    assert "checkins_2026_02_16" not in left
    assert "checkins_2026_02_17" in left
    assert _where(engine, "checkins", "checked_in_at") == [
        ("checkins_2026_02_17", _at(days[2], 2))
    ]
    assert world.count("checkin_rescans") == 0


@ON_POSTGRES
def test_the_coming_weeks_partitions_are_made_once(engine: Engine) -> None:
    now = datetime(2026, 5, 1, 20, 0, tzinfo=UTC)  # 04:00 on 2 May in Shanghai
    days = [date(2026, 5, 2) + timedelta(days=n) for n in range(8)]
    _fresh(engine, *days)

    with engine.begin() as connection:
        first = ensure_upcoming_partitions(connection, now, SHANGHAI)
        second = ensure_upcoming_partitions(connection, now, SHANGHAI)
        bounds = {
            p.name: (p.lower, p.upper) for p in partitions_of(connection, "checkins")
        }

    assert len(first) == 16
    assert "status_events_2026_05_09" in first
    assert second == []
    assert bounds["checkins_2026_05_02"] == (
        datetime(2026, 5, 1, 16, 0, tzinfo=UTC),
        datetime(2026, 5, 2, 16, 0, tzinfo=UTC),
    )


def _alembic(url: str) -> tuple[Config, Engine]:
    from importlib import resources

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("healthcode") / "migrations")
    )
    return config, make_engine(url)


def _run(config: Config, engine: Engine, action, target: str) -> None:
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, target)


def test_the_migration_partitions_a_populated_database_and_back(
    postgres_url: str,
) -> None:
    with throwaway_postgres(os.environ["HEALTHCODE_TEST_POSTGRES_URL"]) as url:
        config, engine = _alembic(url)
        migrate(engine)
        before = ScriptDirectory.from_config(config).get_revision("0007").down_revision
        _run(config, engine, command.downgrade, str(before))
        world = World(engine)
        residents = world.residents(3)
        venue = world.venue()
        for number, resident in enumerate(residents):
            for day in (6, 7, 8):
                world.visit(resident, venue, _at(date(2026, 3, day), 8 + number))
        world.upload([world.item(residents[0], venue, _at(date(2026, 3, 8), 8, 20))])
        with engine.connect() as connection:
            plain = is_partitioned(connection, "checkins")
            rows = connection.execute(
                sa.text("SELECT id, idempotency_key FROM checkins ORDER BY id")
            ).all()
            events = connection.execute(
                sa.text("SELECT count(*) FROM status_events")
            ).scalar_one()

        _run(config, engine, command.upgrade, "heads")
        with engine.connect() as connection:
            partitioned = [is_partitioned(connection, t) for t in PARTITIONED]
            after = connection.execute(
                sa.text("SELECT id, idempotency_key FROM checkins ORDER BY id")
            ).all()
            events_after = connection.execute(
                sa.text("SELECT count(*) FROM status_events")
            ).scalar_one()
            rescans = connection.execute(
                sa.text("SELECT count(*) FROM checkin_rescans")
            ).scalar_one()
        placed = _where(engine, "checkins", "checked_in_at")
        later = world.visit(residents[1], venue, _at(date(2026, 3, 9), 9))
        with engine.connect() as connection:
            newest = connection.execute(
                sa.text("SELECT max(id) FROM checkins")
            ).scalar_one()

        _run(config, engine, command.downgrade, str(before))
        with engine.connect() as connection:
            back = is_partitioned(connection, "checkins")
            restored = connection.execute(
                sa.text("SELECT count(*) FROM checkins")
            ).scalar_one()
            key = connection.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes"
                    " WHERE indexname = 'ix_checkins_idempotency_key'"
                )
            ).scalar_one()
        engine.dispose()

    assert plain is False
    assert len(rows) == 9
    assert partitioned == [True, True]
    assert after == rows
    assert events_after == events > 0
    assert rescans == 1
    assert {name for name, _ in placed} == {
        "checkins_2026_03_06",
        "checkins_2026_03_07",
        "checkins_2026_03_08",
    }
    assert later.accepted == 1
    assert newest == rows[-1][0] + 1
    assert back is False
    assert restored == 10
    assert "(idempotency_key)" in key


@ON_POSTGRES
def test_two_processes_making_the_same_partitions_take_turns(engine: Engine) -> None:
    import threading

    day = date(2026, 6, 1)
    _fresh(engine, day)
    second: list[list[str]] = []

    def other_process() -> None:
        with engine.begin() as connection:
            second.append(
                create_day_partitions(connection, "checkins", [day], SHANGHAI)
            )

    with engine.begin() as connection:
        first = create_day_partitions(connection, "checkins", [day], SHANGHAI)
        waiting = threading.Thread(target=other_process)
        waiting.start()
        waiting.join(timeout=1)
        blocked = waiting.is_alive()
    waiting.join(timeout=30)

    assert first == ["checkins_2026_06_01"]
    assert blocked
    assert second == [[]]
