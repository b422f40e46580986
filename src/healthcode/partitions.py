"""Day partitions of check-ins and status events on PostgreSQL.

On PostgreSQL ``checkins`` is range-partitioned on ``checked_in_at`` and
``status_events`` on ``at`` (migration 0007), one partition per **local day
in the region's zone** (``HEALTHCODE_ZONE``, Asia/Shanghai by default), so
that a partition holds exactly one of the days retention counts: purging
check-ins drops the partitions of whole expired days instead of deleting
their rows, and a tracing window reads the partitions of its days only.
A partition is named by its table and local day, ``checkins_2026_03_10``,
and runs from that day's local midnight to the next one (a day of 23 or 25
hours where the zone changes its clock).

Each table also has a default partition (``checkins_default``), which takes
a row whose day has no partition yet, so that a check-in is never refused
for want of one. The daily job creates the partitions of the coming days
ahead of time (:data:`DAYS_AHEAD`); when a day's partition is created while
the default partition holds rows of that day, those rows move into it in
the same transaction.

If the zone is changed after partitions exist, the new days straddle the old
partitions: a day whose range would overlap an existing partition gets none
(its rows go to the partitions around it or to the default one), and purge
still keeps retention exact, since it drops only partitions that end before
the cutoff and deletes older rows from the rest one by one.

SQLite has no partitions; there every function here does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

__all__ = [
    "DAYS_AHEAD",
    "PARTITIONED",
    "DayPartition",
    "create_day_partitions",
    "day_bounds",
    "days_between",
    "drop_partitions_before",
    "ensure_upcoming_partitions",
    "is_partitioned",
    "partition_name",
    "partitions_of",
    "upcoming_days",
]

log = structlog.get_logger(__name__)

#: The partitioned tables and the instant column each is partitioned on.
PARTITIONED = {"checkins": "checked_in_at", "status_events": "at"}
#: Days after today whose partitions the daily job keeps ready.
DAYS_AHEAD = 7

_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class DayPartition:
    """One partition of a table: its name and the instants it holds."""

    name: str
    lower: datetime
    upper: datetime


def partition_name(table: str, day: date) -> str:
    return f"{table}_{day:%Y_%m_%d}"


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of ``day`` in ``zone`` and of the day after, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end.astimezone(UTC)


def days_between(first: datetime, last: datetime, zone: ZoneInfo) -> list[date]:
    """The local days from the one holding ``first`` to the one holding ``last``."""
    day, end = first.astimezone(zone).date(), last.astimezone(zone).date()
    days = []
    while day <= end:
        days.append(day)
        day += timedelta(days=1)
    return days


def is_partitioned(connection: Connection, table: str) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(
        sa.text(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:table)"
        ),
        {"table": table},
    ).first()
    return found is not None


def partitions_of(connection: Connection, table: str) -> list[DayPartition]:
    """The ranged partitions of ``table``, oldest first; the default is not one."""
    rows = connection.execute(
        sa.text(
            "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)"
            " FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
            " WHERE pg_inherits.inhparent = to_regclass(:table)"
        ),
        {"table": table},
    )
    found = []
    for name, bound in rows:
        match = _BOUND.fullmatch(bound or "")
        if match is None:
            continue
        lower, upper = (_instant(text) for text in match.groups())
        found.append(DayPartition(name, lower, upper))
    return sorted(found, key=lambda partition: partition.lower)


def _instant(text: str) -> datetime:
    # The server writes bounds in the session's zone, e.g. "2026-03-09
    # 16:00:00+00"; Python reads that form with any offset.
    return datetime.fromisoformat(text).astimezone(UTC)


def create_day_partitions(
    connection: Connection, table: str, days: Iterable[date], zone: ZoneInfo
) -> list[str]:
    """Create the partitions of ``days`` that ``table`` lacks; return their names.

    Rows of those days waiting in the default partition move into the new
    partition. A day whose range would overlap a partition made under
    another zone is left without one.
    """
    if not is_partitioned(connection, table):
        return []
    _take_turn(connection)
    column = PARTITIONED[table]
    existing = partitions_of(connection, table)
    created = []
    for day in sorted(set(days)):
        name = partition_name(table, day)
        start, end = day_bounds(day, zone)
        if any(p.name == name or (p.lower < end and start < p.upper) for p in existing):
            continue
        bounds = {"start": start, "end": end}
        waiting = connection.execute(
            sa.text(
                f"SELECT 1 FROM {table}_default"
                f" WHERE {column} >= :start AND {column} < :end LIMIT 1"
            ),
            bounds,
        ).first()
        values = _range_sql(start, end)
        if waiting is None:
            connection.execute(
                sa.text(f"CREATE TABLE {name} PARTITION OF {table} {values}")
            )
        else:
            # A partition cannot be created over rows the default one holds:
            # build it beside the table, move them in, then attach it.
            connection.execute(
                sa.text(
                    f"CREATE TABLE {name}"
                    f" (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                )
            )
            connection.execute(
                sa.text(
                    f"WITH moved AS (DELETE FROM {table}_default"
                    f" WHERE {column} >= :start AND {column} < :end RETURNING *)"
                    f" INSERT INTO {name} SELECT * FROM moved"
                ),
                bounds,
            )
            connection.execute(
                sa.text(f"ALTER TABLE {table} ATTACH PARTITION {name} {values}")
            )
        existing.append(DayPartition(name, start, end))
        created.append(name)
    if created:
        log.info("partitions_created", table=table, count=len(created))
    return created


def _take_turn(connection: Connection) -> None:
    # Every service process runs the daily job; a lock held to the end of
    # the transaction lets one at a time change the partitions, and the
    # next finds the work done instead of failing on a table that exists
    # or is gone.
    connection.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext('healthcode.partitions'))")
    )


def _range_sql(start: datetime, end: datetime) -> str:
    # DDL takes no bound parameters; the bounds are ISO 8601 text that this
    # module made from datetimes, never anything a caller typed.
    return f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"


def upcoming_days(now: datetime, zone: ZoneInfo, ahead: int = DAYS_AHEAD) -> list[date]:
    """Today in ``zone`` and the ``ahead`` days after it."""
    today = now.astimezone(zone).date()
    return [today + timedelta(days=offset) for offset in range(ahead + 1)]


def ensure_upcoming_partitions(
    connection: Connection, now: datetime, zone: ZoneInfo, ahead: int = DAYS_AHEAD
) -> list[str]:
    """Partitions of both tables for today and the ``ahead`` days after it."""
    days = upcoming_days(now, zone, ahead)
    created = []
    for table in PARTITIONED:
        created += create_day_partitions(connection, table, days, zone)
    return created


def drop_partitions_before(connection: Connection, table: str, cutoff: datetime) -> int:
    """Drop the partitions of ``table`` that end by ``cutoff``; return their rows.

    Only whole partitions go; the caller deletes older rows left in the
    default partition or in one that straddles the cutoff.
    """
    if not is_partitioned(connection, table):
        return 0
    _take_turn(connection)
    dropped = 0
    for partition in partitions_of(connection, table):
        if partition.upper > cutoff:
            continue
        rows = connection.execute(
            sa.text(f"SELECT count(*) FROM {partition.name}")
        ).scalar_one()
        connection.execute(sa.text(f"DROP TABLE {partition.name}"))
        dropped += int(rows)
        log.info("partition_dropped", table=table, partition=partition.name, rows=rows)
    return dropped
