"""Recolouring: read records in bulk, apply the rules, store what changed.

Three ways in, one path through:

* after an import, :func:`recolor_residents` re-evaluates just the residents
  whose records changed, inside the import's own transaction, so their new
  colours are visible the moment the import commits;
* :func:`recolor_all` walks everyone in id ranges (a rule-set change, the
  daily turn);
* :func:`recolor_due` picks the residents whose stored ``recheck_at`` has
  passed: a yellow that turns green after seven days does so without any new
  record arriving.

Reading a status (:func:`current_status`) re-evaluates on the spot when its
``recheck_at`` has passed, so no stale colour is ever shown between runs.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from healthcode.checkins.models import Exposure
from healthcode.config import get_settings
from healthcode.db import fetch_plain, sqlite_instant_text
from healthcode.feeds.models import (
    CaseReport,
    Declaration,
    LabResult,
    QuarantineOrder,
    RiskArea,
    TravelSegment,
    Vaccination,
)
from healthcode.identity.models import Resident
from healthcode.officials.models import Override
from healthcode.rules.ruleset import RuleSet, load_rule_set
from healthcode.status.engine import Evaluation, evaluate
from healthcode.status.errors import UnknownResident
from healthcode.status.facts import Area, ResidentRecords, area_prefix, build_facts
from healthcode.status.fence import note_status_write
from healthcode.status.models import RecolorGuard, Status, StatusEvent

log = structlog.get_logger(__name__)

# Residents per read-evaluate-write round trip. Large enough that per-query
# overhead vanishes, small enough that a round's rows stay a few megabytes.
BATCH = 4000
# Risk areas that ended longer ago than this can no longer hold any rule.
_LOOKBACK = timedelta(days=14)
# SQLite allows 32766 bound parameters per statement; PostgreSQL far more.
# Lists of ids are sent in slices of this size.
ID_SLICE = 900

_RECORD_QUERIES: dict[str, sa.Select[Any]] = {
    "tests": sa.select(
        LabResult.resident_id,
        LabResult.department,
        LabResult.source_id,
        LabResult.sampled_at,
        LabResult.result,
        LabResult.method,
    ),
    "vaccinations": sa.select(
        Vaccination.resident_id,
        Vaccination.department,
        Vaccination.source_id,
        Vaccination.administered_at,
        Vaccination.product,
        Vaccination.dose_number,
    ),
    "cases": sa.select(
        CaseReport.resident_id,
        CaseReport.department,
        CaseReport.source_id,
        CaseReport.classification,
        CaseReport.onset_at,
        CaseReport.diagnosed_at,
        CaseReport.isolated_at,
        CaseReport.released_at,
    ),
    "orders": sa.select(
        QuarantineOrder.resident_id,
        QuarantineOrder.department,
        QuarantineOrder.source_id,
        QuarantineOrder.kind,
        QuarantineOrder.starts_at,
        QuarantineOrder.ends_at,
    ),
    "travel": sa.select(
        TravelSegment.resident_id,
        TravelSegment.department,
        TravelSegment.source_id,
        TravelSegment.mode,
        TravelSegment.carrier,
        TravelSegment.service_number,
        TravelSegment.dep_station,
        TravelSegment.dep_code,
        TravelSegment.dep_at,
        TravelSegment.arr_station,
        TravelSegment.arr_code,
        TravelSegment.arr_at,
        TravelSegment.stops,
    ),
    "declarations": sa.select(
        Declaration.resident_id,
        Declaration.department,
        Declaration.source_id,
        Declaration.declared_at,
        Declaration.fever,
        Declaration.respiratory,
        Declaration.visited_code,
        Declaration.visited_place,
        Declaration.visited_from,
        Declaration.visited_to,
    ),
    "exposures": sa.select(
        Exposure.resident_id,
        CaseReport.department,
        CaseReport.source_id,
        Exposure.kind,
        Exposure.place,
        Exposure.place_label,
        Exposure.starts_at,
        Exposure.ends_at,
        Exposure.overlap_minutes,
    ).join(CaseReport, CaseReport.id == Exposure.case_report_id),
    "overrides": sa.select(
        Override.resident_id,
        Override.id,
        Override.colour,
        Override.reason,
        Override.author_role,
        Override.created_at,
        Override.expires_at,
        Override.ended_at,
    ),
}

_RESIDENT_QUERY = sa.select(
    Resident.id,
    Resident.identity_state,
    Resident.doc_kind,
    Resident.region_code,
    Resident.birth_date,
)

_STATUS_QUERY = sa.select(
    Status.resident_id,
    Status.colour,
    Status.reasons,
    Status.changes_at,
    Status.changes_to,
    Status.recheck_at,
)


@dataclass(slots=True)
class RecolorReport:
    residents: int = 0
    written: int = 0
    colour_changes: int = 0
    rule_failures: int = 0
    seconds: float = 0.0


@functools.cache
def _shipped_rule_set(source: str) -> RuleSet:
    return load_rule_set(source)


def active_rule_set() -> RuleSet:
    """The configured rule set, loaded, validated and tested once per process."""
    return _shipped_rule_set(get_settings().rule_set)


def load_areas(connection: Connection, now: datetime) -> list[Area]:
    """Risk areas that can still matter: those that held within 14 days."""
    horizon = now - _LOOKBACK
    rows = connection.execute(
        sa.select(
            RiskArea.code,
            RiskArea.name,
            RiskArea.level,
            RiskArea.starts_at,
            RiskArea.ends_at,
            RiskArea.department,
            RiskArea.source_id,
        ).where(
            RiskArea.level != "low",
            sa.or_(RiskArea.ends_at.is_(None), RiskArea.ends_at >= horizon),
        )
    )
    return [
        Area(code, area_prefix(code), name, level, starts, ends, dept, source)
        for code, name, level, starts, ends, dept, source in rows
    ]


def _read_records(
    connection: Connection, where: Callable[[Any], Any], resident_where: Any
) -> dict[int, ResidentRecords]:
    residents = {
        rid: ResidentRecords(rid, state, kind, region, birth)
        for rid, state, kind, region, birth in fetch_plain(
            connection, _RESIDENT_QUERY.where(resident_where)
        )
    }
    for name, query in _RECORD_QUERIES.items():
        column = query.selected_columns[0]
        for row in fetch_plain(connection, query.where(where(column))):
            holder = residents.get(row[0])
            if holder is not None:
                getattr(holder, name).append(row)
    return residents


def _read_statuses(
    connection: Connection, where: Any
) -> dict[int, tuple[str, Any, Any, Any, Any]]:
    return {
        row[0]: tuple(row[1:])  # type: ignore[misc]
        for row in fetch_plain(connection, _STATUS_QUERY.where(where))
    }


@dataclass(slots=True)
class _Changes:
    upserts: list[dict[str, Any]]
    events: list[dict[str, Any]]


def _compute(
    residents: dict[int, ResidentRecords],
    stored: dict[int, tuple[str, Any, Any, Any, Any]],
    areas: Sequence[Area],
    rule_set: RuleSet,
    now: datetime,
    cause: str,
    report: RecolorReport,
) -> _Changes:
    """Evaluate ``residents``; keep the statuses that differ from ``stored``."""
    changes = _Changes([], [])
    for rid, records in residents.items():
        result: Evaluation = evaluate(rule_set, build_facts(records, areas, now), now)
        report.residents += 1
        report.rule_failures += len(result.failures)
        old = stored.get(rid)
        new = (
            result.colour,
            result.reasons,
            result.changes_at,
            result.changes_to,
            result.recheck_at,
        )
        if old is not None and old == new:
            continue
        changes.upserts.append(
            {
                "resident_id": rid,
                "colour": result.colour,
                "reasons": result.reasons,
                "as_of": now,
                "changes_at": result.changes_at,
                "changes_to": result.changes_to,
                "recheck_at": result.recheck_at,
                "rule_set": rule_set.label,
            }
        )
        old_colour = old[0] if old is not None else None
        if old_colour != result.colour:
            changes.events.append(
                {
                    "resident_id": rid,
                    "at": now,
                    "old_colour": old_colour,
                    "new_colour": result.colour,
                    "reasons": result.reasons,
                    "cause": cause,
                }
            )
    return changes


def _write(
    connection: Connection,
    changes: _Changes,
    report: RecolorReport,
    now: datetime,
    touch_rest: Any = None,
) -> None:
    if connection.dialect.name == "postgresql":
        _write_postgres(connection, changes)
    else:
        _write_sqlite(connection, changes)
    report.written += len(changes.upserts)
    if changes.events:
        # The first colour a resident ever gets is not a change of colour.
        report.colour_changes += sum(
            1 for event in changes.events if event["old_colour"] is not None
        )
    if touch_rest is not None:
        # Unchanged statuses were still checked just now; one statement says
        # so for the whole batch instead of rewriting each row.
        connection.execute(
            sa.update(Status).where(touch_rest, Status.as_of < now).values(as_of=now)
        )


def _take_guard(connection: Connection, *, records_changed: bool) -> int:
    """Queue behind other status writers; return the records version."""
    values: dict[str, Any] = {"writes": RecolorGuard.writes + 1}
    if records_changed:
        values["records_version"] = RecolorGuard.records_version + 1
    row = connection.execute(
        sa.update(RecolorGuard)
        .where(RecolorGuard.id == 1)
        .values(**values)
        .returning(RecolorGuard.records_version, RecolorGuard.writes)
    ).one_or_none()
    if row is None:
        raise RuntimeError("The recolour guard row is missing; run the migrations.")
    note_status_write(connection, int(row.writes))
    return int(row.records_version)


def retire_statuses(connection: Connection) -> None:
    """Count a status write in this transaction, for a writer outside the recolour.

    A writer that deletes or replaces statuses by other means (the sunset)
    calls it so that statuses kept elsewhere are not served after it commits.
    """
    _take_guard(connection, records_changed=True)


def _records_version(connection: Connection) -> int:
    return int(
        connection.execute(
            sa.select(RecolorGuard.records_version).where(RecolorGuard.id == 1)
        ).scalar_one()
    )


_STATUS_COLUMNS = (
    "resident_id",
    "colour",
    "reasons",
    "as_of",
    "changes_at",
    "changes_to",
    "recheck_at",
    "rule_set",
)
_EVENT_COLUMNS = ("resident_id", "at", "old_colour", "new_colour", "reasons", "cause")


def _copy_rows(
    cursor: Any, table: str, columns: Sequence[str], rows: list[Any]
) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    orjson.dumps(row[name]).decode() if name == "reasons" else row[name]
                    for name in columns
                ]
            )


def _sqlite_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "reasons":
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return sqlite_instant_text(value)
    return value


def _write_sqlite(connection: Connection, changes: _Changes) -> None:
    """Statuses and events through the driver's own executemany.

    The values are put in their stored form here, once, instead of through
    SQLAlchemy's per-row parameter processing, which costs more than SQLite
    spends storing them.
    """
    cursor = connection.connection.driver_connection.cursor()
    try:
        if changes.upserts:
            columns = ", ".join(_STATUS_COLUMNS)
            updates = ", ".join(
                f"{name} = excluded.{name}" for name in _STATUS_COLUMNS[1:]
            )
            marks = ", ".join("?" for _ in _STATUS_COLUMNS)
            cursor.executemany(
                f"INSERT INTO statuses ({columns}) VALUES ({marks})"
                f" ON CONFLICT (resident_id) DO UPDATE SET {updates}",
                [
                    tuple(_sqlite_value(name, row[name]) for name in _STATUS_COLUMNS)
                    for row in changes.upserts
                ],
            )
        if changes.events:
            columns = ", ".join(_EVENT_COLUMNS)
            marks = ", ".join("?" for _ in _EVENT_COLUMNS)
            cursor.executemany(
                f"INSERT INTO status_events ({columns}) VALUES ({marks})",
                [
                    tuple(_sqlite_value(name, row[name]) for name in _EVENT_COLUMNS)
                    for row in changes.events
                ],
            )
    finally:
        cursor.close()


def _write_postgres(connection: Connection, changes: _Changes) -> None:
    """Statuses and events through COPY, the bulk path PostgreSQL is built for.

    psycopg sends an executemany as one statement per row, and SQLAlchemy's
    multi-row VALUES costs more to compile than to run; COPY into a
    transaction-local table and one ``INSERT ... ON CONFLICT`` from it is
    several times faster than either.
    """
    cursor = connection.connection.driver_connection.cursor()
    try:
        if changes.upserts:
            cursor.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS statuses_incoming"
                " (LIKE statuses) ON COMMIT DELETE ROWS"
            )
            _copy_rows(cursor, "statuses_incoming", _STATUS_COLUMNS, changes.upserts)
            updates = ", ".join(
                f"{name} = EXCLUDED.{name}" for name in _STATUS_COLUMNS[1:]
            )
            columns = ", ".join(_STATUS_COLUMNS)
            cursor.execute(
                f"INSERT INTO statuses ({columns})"
                f" SELECT {columns} FROM statuses_incoming"
                f" ON CONFLICT (resident_id) DO UPDATE SET {updates}"
            )
            cursor.execute("DELETE FROM statuses_incoming")
        if changes.events:
            _copy_rows(cursor, "status_events", _EVENT_COLUMNS, changes.events)
    finally:
        cursor.close()


def recolor_residents(
    session: Session,
    resident_ids: Iterable[int],
    now: datetime,
    cause: str,
    *,
    rule_set: RuleSet | None = None,
    records_changed: bool = True,
) -> int:
    """Re-evaluate these residents inside ``session``'s transaction.

    Call it in the transaction that changed their records, so the new
    statuses commit with the records. Returns how many changed colour.
    """
    rule_set = rule_set or active_rule_set()
    connection = session.connection()
    ids = sorted(set(resident_ids))
    report = RecolorReport()
    _take_guard(connection, records_changed=records_changed)
    areas = load_areas(connection, now)
    for start in range(0, len(ids), ID_SLICE):
        chunk = ids[start : start + ID_SLICE]
        residents = _read_records(
            connection, lambda column, c=chunk: column.in_(c), Resident.id.in_(chunk)
        )
        stored = _read_statuses(connection, Status.resident_id.in_(chunk))
        changes = _compute(residents, stored, areas, rule_set, now, cause, report)
        _write(connection, changes, report, now)
    log.info(
        "recolored",
        cause=cause,
        residents=report.residents,
        written=report.written,
        colour_changes=report.colour_changes,
    )
    return report.colour_changes


def _recolor_range(
    engine: Engine,
    start: int,
    end: int,
    areas: Sequence[Area],
    rule_set: RuleSet,
    now: datetime,
    cause: str,
) -> RecolorReport:
    """One batch of a full recolour: read, evaluate, then write under the guard.

    Reading and evaluating happen outside any write lock, so that several
    processes can share the work; only the write queues. A batch that finds
    the records changed under it re-reads inside the lock before writing.
    """
    report = RecolorReport()
    span = Resident.id.between(start, end)

    def read(connection: Connection, into: RecolorReport) -> _Changes:
        residents = _read_records(
            connection, lambda column: column.between(start, end), span
        )
        stored = _read_statuses(connection, Status.resident_id.between(start, end))
        return _compute(residents, stored, areas, rule_set, now, cause, into)

    with engine.connect() as connection:
        seen = _records_version(connection)
        changes = read(connection, report)
        connection.rollback()
    with engine.begin() as connection:
        if _take_guard(connection, records_changed=False) != seen:
            report = RecolorReport()
            changes = read(connection, report)
        _write(connection, changes, report, now, touch_rest=_status_span(start, end))
    return report


def _status_span(start: int, end: int) -> Any:
    return Status.resident_id.between(start, end)


# A full recolour's worker processes each hold one engine, made from the
# database URL when the process starts (connections never cross a fork).
_worker_engine: Engine | None = None


def _worker_start(url: str) -> None:
    global _worker_engine
    from healthcode.db import make_engine

    _worker_engine = make_engine(url)


def _worker_batch(
    args: tuple[int, int, Sequence[Area], datetime, str],
) -> RecolorReport:
    start, end, areas, now, cause = args
    if _worker_engine is None:
        raise RuntimeError("A recolour worker was used before it started.")
    return _recolor_range(
        _worker_engine, start, end, areas, active_rule_set(), now, cause
    )


def recolor_all(
    engine: Engine,
    now: datetime,
    *,
    cause: str = "recolor",
    rule_set: RuleSet | None = None,
    progress: Callable[[int], None] | None = None,
    batch: int = BATCH,
    workers: int | None = None,
) -> RecolorReport:
    """Re-evaluate every resident, one committed id range at a time.

    With ``workers`` above one (the default is one per CPU) the ranges are
    shared among that many processes, each with its own connections; a
    custom ``rule_set`` or an in-memory database keeps the work in-process.
    """
    total = RecolorReport()
    started = _monotonic()
    with engine.connect() as connection:
        low, high = connection.execute(
            sa.select(sa.func.min(Resident.id), sa.func.max(Resident.id))
        ).one()
        areas = load_areas(connection, now)
    if low is None:
        return total
    ranges = [(start, start + batch - 1) for start in range(low, high + 1, batch)]
    url = engine.url
    in_memory = url.get_backend_name() == "sqlite" and url.database in (
        None,
        "",
        ":memory:",
    )
    if workers is None:
        workers = os.cpu_count() or 1
    workers = min(workers, len(ranges))

    def add(part: RecolorReport) -> None:
        total.residents += part.residents
        total.written += part.written
        total.colour_changes += part.colour_changes
        total.rule_failures += part.rule_failures
        if progress is not None:
            progress(part.residents)

    if workers <= 1 or rule_set is not None or in_memory:
        chosen = rule_set or active_rule_set()
        for start, end in ranges:
            add(_recolor_range(engine, start, end, areas, chosen, now, cause))
    else:
        context = multiprocessing.get_context("fork")
        with context.Pool(
            workers,
            initializer=_worker_start,
            initargs=(url.render_as_string(hide_password=False),),
        ) as pool:
            jobs = [(start, end, areas, now, cause) for start, end in ranges]
            for part in pool.imap_unordered(_worker_batch, jobs):
                add(part)
    total.seconds = _monotonic() - started
    log.info(
        "recolored_all",
        residents=total.residents,
        written=total.written,
        colour_changes=total.colour_changes,
        workers=workers,
        seconds=round(total.seconds, 3),
    )
    return total


def recolor_due(
    engine: Engine, now: datetime, *, rule_set: RuleSet | None = None
) -> RecolorReport:
    """Re-evaluate the residents whose statuses said they would change by now."""
    report = RecolorReport()
    started = _monotonic()
    with engine.connect() as connection:
        due = [
            rid
            for (rid,) in connection.execute(
                sa.select(Status.resident_id).where(Status.recheck_at <= now)
            )
        ]
    with Session(engine) as session, session.begin():
        report.colour_changes = recolor_residents(
            session, due, now, "time", rule_set=rule_set
        )
    report.residents = len(due)
    report.seconds = _monotonic() - started
    return report


@dataclass(frozen=True, slots=True)
class StatusView:
    resident_id: int
    colour: str
    reasons: list[dict[str, Any]]
    as_of: datetime
    changes_at: datetime | None
    changes_to: str | None
    rule_set: str


def current_status(session: Session, resident_id: int, now: datetime) -> StatusView:
    """The resident's status as of ``now``, re-evaluated if it has gone stale."""
    status = session.get(Status, resident_id)
    if not is_current(status, now):
        if session.get(Resident, resident_id) is None:
            raise UnknownResident("No resident has that identity document.")
        recolor_residents(session, [resident_id], now, "time", records_changed=False)
        session.flush()
        session.expire_all()
        status = session.get(Status, resident_id)
        if status is None:
            raise UnknownResident("No resident has that identity document.")
    return status_view(status)


def status_view(status: Status) -> StatusView:
    """The view of a stored status row."""
    return StatusView(
        resident_id=status.resident_id,
        colour=status.colour,
        reasons=status.reasons,
        as_of=status.as_of,
        changes_at=status.changes_at,
        changes_to=status.changes_to,
        rule_set=status.rule_set,
    )


def is_current(status: Status | None, now: datetime) -> bool:
    """Whether a stored status still holds at ``now`` without a re-evaluation."""
    return status is not None and (status.recheck_at is None or status.recheck_at > now)


def status_history(session: Session, resident_id: int) -> list[StatusEvent]:
    return list(
        session.scalars(
            sa.select(StatusEvent)
            .where(StatusEvent.resident_id == resident_id)
            .order_by(StatusEvent.at, StatusEvent.id)
        )
    )


def colour_counts(connection: Connection) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for colour, count in connection.execute(
        sa.select(Status.colour, sa.func.count()).group_by(Status.colour)
    ):
        counts[colour] = count
    return dict(counts)


def _monotonic() -> float:
    return time.perf_counter()
