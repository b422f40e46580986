"""Residents by day, colour and district: the counts that outlive the data.

A day's count is how many residents showed each colour, district by
district, at the end of that local day: the colour of each resident's
newest status event before the next midnight. :func:`count_day` asks the
database for one day (the daily job counts yesterday);
:func:`replay_counts` walks the whole history once and counts every day (the
sunset counts everything before deleting it). Both give the same numbers;
a test holds them to it.

Districts are where residents live now, since addresses have no history.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from healthcode.identity.models import Resident
from healthcode.privacy.models import DailyCount
from healthcode.status.models import StatusEvent

__all__ = ["Counts", "count_day", "day_end", "record_counts", "replay_counts"]

#: Residents per (colour, district) on one day.
Counts = dict[tuple[str, str], int]

_REGION = sa.func.coalesce(Resident.region_code, "")


def day_end(day: date, zone: ZoneInfo) -> datetime:
    """The instant, in UTC, at which ``day`` ends in ``zone``."""
    following = day + timedelta(days=1)
    return datetime.combine(following, time(0), tzinfo=zone).astimezone(UTC)


def count_day(connection: Connection | Session, end: datetime) -> Counts:
    """Residents by colour and district as their statuses stood just before ``end``."""
    ranked = (
        sa.select(
            StatusEvent.resident_id,
            StatusEvent.new_colour.label("colour"),
            sa.func.row_number()
            .over(
                partition_by=StatusEvent.resident_id,
                order_by=(StatusEvent.at.desc(), StatusEvent.id.desc()),
            )
            .label("newest"),
        )
        .where(StatusEvent.at < end)
        .subquery()
    )
    query = (
        sa.select(ranked.c.colour, _REGION, sa.func.count())
        .join(Resident, Resident.id == ranked.c.resident_id)
        .where(ranked.c.newest == 1)
        .group_by(ranked.c.colour, _REGION)
    )
    return {
        (colour, region): int(count)
        for colour, region, count in connection.execute(query)
    }


def replay_counts(
    connection: Connection | Session, zone: ZoneInfo, last_day: date
) -> dict[date, Counts]:
    """Every day's counts from the first status event up to ``last_day``.

    One pass over the events, resident by resident: each colour a resident
    held covers a run of days, which adds one at the run's first day and
    takes one away after its last. Summing those steps over the days gives
    each day's counts, at a cost that grows with the events and not with
    days times residents.
    """
    steps: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    stop = last_day.toordinal() + 1
    query = (
        sa.select(
            StatusEvent.resident_id, StatusEvent.at, StatusEvent.new_colour, _REGION
        )
        .join(Resident, Resident.id == StatusEvent.resident_id)
        .order_by(StatusEvent.resident_id, StatusEvent.at, StatusEvent.id)
        .execution_options(yield_per=10_000)
    )
    held: tuple[int, int, str, str] | None = None
    for resident_id, at, colour, region in connection.execute(query):
        day = min(at.astimezone(zone).date().toordinal(), stop)
        if held is not None and held[0] == resident_id:
            _add(steps, held, day)
        elif held is not None:
            _add(steps, held, stop)
        held = (resident_id, day, colour, region)
    if held is not None:
        _add(steps, held, stop)
    found: dict[date, Counts] = {}
    for key, changes in steps.items():
        running = 0
        ordinals = sorted(changes)
        for index, ordinal in enumerate(ordinals):
            running += changes[ordinal]
            following = ordinals[index + 1] if index + 1 < len(ordinals) else stop
            if running <= 0:
                continue
            for day in range(ordinal, min(following, stop)):
                found.setdefault(date.fromordinal(day), {})[key] = running
    return dict(sorted(found.items()))


def _add(
    steps: dict[tuple[str, str], dict[int, int]],
    held: tuple[int, int, str, str],
    until: int,
) -> None:
    _, since, colour, region = held
    if since < until:
        steps[(colour, region)][since] += 1
        steps[(colour, region)][until] -= 1


def record_counts(session: Session, counts: dict[date, Counts]) -> int:
    """Store the counts of each day given, replacing that day's earlier ones."""
    rows = 0
    for day, by_key in counts.items():
        session.execute(sa.delete(DailyCount).where(DailyCount.day == day))
        values = [
            {"day": day, "colour": colour, "region_code": region, "residents": n}
            for (colour, region), n in sorted(by_key.items())
        ]
        if values:
            session.execute(sa.insert(DailyCount), values)
        rows += len(values)
    return rows
