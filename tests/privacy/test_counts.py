"""Daily counts by colour and district: one day asked, every day replayed."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.identity.models import Resident
from healthcode.privacy.counts import count_day, day_end, record_counts, replay_counts
from healthcode.privacy.models import DailyCount
from healthcode.status.models import StatusEvent

from .support import add_resident

ZONE = ZoneInfo("Asia/Shanghai")
YANTA = "610113"


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=ZONE)


def _history(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        a = add_resident(session, "610113199001011230", "A", local(1, 9))
        b = add_resident(session, "61011319550202121X", "B", local(1, 9))
        c = add_resident(session, "610113201505050014", "C", local(1, 9))
        session.get(Resident, b).region_code = None
        events = [
            (a, local(1, 10), None, "green"),
            (c, local(1, 10), None, "green"),
            (b, local(2, 23, 59, 59), None, "grey"),
            # Two changes on one day: only the evening's colour ends the day.
            (a, local(3, 9), "green", "red"),
            (a, local(3, 15), "red", "yellow"),
            # A change at midnight belongs to the day it starts.
            (b, local(3, 0), "grey", "green"),
        ]
        for resident_id, at, old, new in events:
            session.add(
                StatusEvent(
                    resident_id=resident_id,
                    at=at,
                    old_colour=old,
                    new_colour=new,
                    reasons=[],
                    cause="test",
                )
            )


EXPECTED = {
    date(2026, 3, 1): {("green", YANTA): 2},
    date(2026, 3, 2): {("green", YANTA): 2, ("grey", ""): 1},
    date(2026, 3, 3): {("yellow", YANTA): 1, ("green", YANTA): 1, ("green", ""): 1},
    date(2026, 3, 4): {("yellow", YANTA): 1, ("green", YANTA): 1, ("green", ""): 1},
}


def test_one_day_counts_the_colours_at_its_end(engine: Engine) -> None:
    _history(engine)

    with engine.connect() as connection:
        counted = {day: count_day(connection, day_end(day, ZONE)) for day in EXPECTED}

    assert counted == EXPECTED


def test_replaying_the_history_counts_every_day_the_same(engine: Engine) -> None:
    _history(engine)

    with engine.connect() as connection:
        replayed = replay_counts(connection, ZONE, date(2026, 3, 4))

    assert replayed == EXPECTED


def test_no_history_counts_nothing(engine: Engine) -> None:
    with engine.connect() as connection:
        replayed = replay_counts(connection, ZONE, date(2026, 3, 4))
        counted = count_day(connection, day_end(date(2026, 3, 4), ZONE))

    assert replayed == {}
    assert counted == {}


def test_counts_of_a_day_replace_its_earlier_counts(engine: Engine) -> None:
    day = date(2026, 3, 3)
    with Session(engine) as session, session.begin():
        record_counts(session, {day: {("red", YANTA): 5}})

    with Session(engine) as session, session.begin():
        rows = record_counts(session, {day: {("green", YANTA): 7, ("grey", ""): 1}})

    with Session(engine) as session:
        stored = {
            (row.colour, row.region_code): row.residents
            for row in session.scalars(
                sa.select(DailyCount).where(DailyCount.day == day)
            )
        }
    assert rows == 2
    assert stored == {("green", YANTA): 7, ("grey", ""): 1}
