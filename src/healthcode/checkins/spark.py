"""Contact tracing as a Spark job: snapshot, match on executors, import.

1. :func:`export_trace` works out the cases' infectious windows with
   :func:`~healthcode.checkins.tracing.infectious_windows` and writes what
   the matching can touch as Parquet: the cases' own visits (the query the
   single-machine path runs), every visit that began in the span where a
   contact's visit can meet a window (from the later of the retention cutoff
   and the earliest window's start less the longest visit, to the latest
   window's end plus the decay), the venues, and every journey under way
   inside that span; and a manifest of the clock, the policy and the windows.
2. :func:`run_trace` is the Spark job. The driver turns the cases' visits and
   journeys into the same query intervals the single-machine path makes
   (``venue_queries``, ``visit_ranges``, ``travel_queries``) and broadcasts
   them. Visits are selected by the same ranges and partitioned by venue,
   journeys by service and date; each partition is matched with the same
   numpy sweep (``match_venue_visits``, ``match_journeys``) and keeps the
   longest row per key, which is exact because every row of one key shares
   its place and so its partition.
3. :func:`import_trace` puts the rows in the single-machine path's writing
   order and hands them to ``record_exposures``, the second half of
   :func:`~healthcode.checkins.tracing.trace`: write the new exposures,
   recolour the newly exposed, in one transaction.
"""

from __future__ import annotations

import bisect
import functools
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from healthcode.checkins.config import MAX_VISIT
from healthcode.checkins.models import Checkin, Exposure, Venue
from healthcode.checkins.services import retention_cutoff
from healthcode.checkins.tracing import (
    _EXPOSURE_COLUMNS,
    _SEGMENT_COLUMNS,
    _VISIT_COLUMNS,
    ID_SLICE,
    CaseWindow,
    Recolor,
    TraceReport,
    TracingPolicy,
    TravelQuery,
    VenueQuery,
    case_visits_query,
    found_of,
    infectious_windows,
    journeys_query,
    keep_longest,
    match_journeys,
    match_venue_visits,
    record_exposures,
    travel_queries,
    travel_services,
    venue_queries,
    visit_ranges,
    windows_by_resident,
)
from healthcode.feeds.models import TravelSegment
from healthcode.spark.errors import SnapshotError
from healthcode.spark.files import (
    EPOCH,
    FORMAT,
    PartWriter,
    RowCodec,
    instant_to_stored,
    join,
    read_manifest,
    read_parts,
    read_summary,
    spark_uri,
    write_json,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from rich.console import Console

log = structlog.get_logger(__name__)

JOB = "trace"
# Rows of the big tables read per statement while exporting, by id range.
EXPORT_PAGE = 100_000

VISIT_ROW = RowCodec.of_columns(_VISIT_COLUMNS)
JOURNEY_ROW = RowCodec.of_columns(_SEGMENT_COLUMNS)
VENUE_ROW = RowCodec.of_columns((Venue.id, Venue.default_stay_minutes, Venue.name))
EXPOSURE_ROW = RowCodec.of_columns(
    Exposure.__table__.c[name] for name in _EXPOSURE_COLUMNS
)


@dataclass(slots=True)
class Snapshot:
    location: str
    windows: int
    visits: int
    journeys: int
    manifest: dict[str, Any]


def export_trace(
    engine: Engine,
    location: str,
    now: datetime,
    *,
    policy: TracingPolicy | None = None,
    case_ids: Iterable[int] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Snapshot:
    """Write the snapshot a Spark trace of every case (or ``case_ids``) reads.

    ``progress`` is told the table being written, the id reached and the id
    span to cover.
    """
    if now.utcoffset() is None:
        raise SnapshotError("The tracing clock must be timezone-aware.")
    now = now.astimezone(UTC)
    policy = policy or TracingPolicy.from_settings()
    cutoff = retention_cutoff(now, policy.retention, policy.zone)
    writers = {
        name: PartWriter(join(location, name), codec.arrow_schema())
        for name, codec in (
            ("case_visits", VISIT_ROW),
            ("visits", VISIT_ROW),
            ("venues", VENUE_ROW),
            ("journeys", JOURNEY_ROW),
        )
    }
    with engine.connect() as connection:
        windows = infectious_windows(
            connection, now, policy, None if case_ids is None else list(case_ids)
        )
        if windows:
            residents = sorted(windows_by_resident(windows))
            for start in range(0, len(residents), ID_SLICE):
                chunk = residents[start : start + ID_SLICE]
                query = case_visits_query(windows, cutoff)
                writers["case_visits"].write(
                    _encoded(connection, query.where(Checkin.resident_id.in_(chunk)))
                )
            earliest = min(window.start for window in windows)
            latest = max(window.end for window in windows)
            visits = sa.select(*_VISIT_COLUMNS).where(
                Checkin.checked_in_at >= max(cutoff, earliest - MAX_VISIT),
                Checkin.checked_in_at < latest + policy.decay,
            )
            _paged(connection, "visits", visits, Checkin.id, writers, progress)
            venues = sa.select(Venue.id, Venue.default_stay_minutes, Venue.name)
            _paged(connection, "venues", venues, Venue.id, writers, progress)
            under_way = journeys_query(windows)
            _paged(
                connection, "journeys", under_way, TravelSegment.id, writers, progress
            )
        connection.rollback()
    for writer in writers.values():
        writer.close()
    manifest = {
        "format": FORMAT,
        "job": JOB,
        "now": instant_to_stored(now),
        "cutoff": instant_to_stored(cutoff),
        "policy": _policy_row(policy),
        "windows": [_window_row(window) for window in windows],
    }
    write_json(join(location, "manifest.json"), manifest)
    log.info(
        "spark_trace_exported",
        windows=len(windows),
        visits=writers["visits"].rows,
        journeys=writers["journeys"].rows,
    )
    return Snapshot(
        location,
        len(windows),
        writers["visits"].rows,
        writers["journeys"].rows,
        manifest,
    )


def _encoded(connection: Connection, query: Any) -> list[dict[str, Any]]:
    codec = RowCodec.of_columns(query.selected_columns)
    return [codec.encode(row) for row in connection.execute(query)]


def _paged(
    connection: Connection,
    name: str,
    query: Any,
    key: Any,
    writers: dict[str, PartWriter],
    progress: Callable[[str, int, int], None] | None,
) -> None:
    low, high = connection.execute(sa.select(sa.func.min(key), sa.func.max(key))).one()
    if low is None:
        return
    for start in range(low, high + 1, EXPORT_PAGE):
        end = start + EXPORT_PAGE - 1
        writers[name].write(_encoded(connection, query.where(key.between(start, end))))
        if progress is not None:
            progress(name, min(end, high) - low + 1, high - low + 1)


def _policy_row(policy: TracingPolicy) -> dict[str, Any]:
    return {
        "before_onset": policy.before_onset // timedelta(microseconds=1),
        "before_sample": policy.before_sample // timedelta(microseconds=1),
        "decay": policy.decay // timedelta(microseconds=1),
        "seat_rows": policy.seat_rows,
        "retention": policy.retention // timedelta(microseconds=1),
        "zone": policy.zone.key,
    }


def _policy_of(row: dict[str, Any]) -> TracingPolicy:
    return TracingPolicy(
        before_onset=timedelta(microseconds=row["before_onset"]),
        before_sample=timedelta(microseconds=row["before_sample"]),
        decay=timedelta(microseconds=row["decay"]),
        seat_rows=row["seat_rows"],
        retention=timedelta(microseconds=row["retention"]),
        zone=ZoneInfo(row["zone"]),
    )


def _window_row(window: CaseWindow) -> list[Any]:
    return [
        window.case_report_id,
        window.resident_id,
        window.department,
        window.source_id,
        instant_to_stored(window.start),
        instant_to_stored(window.end),
        window.basis,
    ]


def _window_of(row: list[Any]) -> CaseWindow:
    cid, rid, department, source_id, start, end, basis = row
    return CaseWindow(
        cid, rid, department, source_id, _instant(start), _instant(end), basis
    )


def _instant(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


# The job


@dataclass(frozen=True, slots=True)
class _Context:
    """What every executor needs, broadcast once."""

    now: datetime
    policy: TracingPolicy
    venues: dict[int, tuple[timedelta, str]]
    visit_cases: list[VenueQuery]
    ranges: dict[int, tuple[list[datetime], list[datetime]]]
    travel_cases: list[TravelQuery]
    services: frozenset[tuple[Any, str]]


def select_visits(context: Any, rows: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """The visits that began in one of their venue's ranges, keyed by venue."""
    ranges = context.value.ranges
    for stored in rows:
        row = VISIT_ROW.decode(stored)
        spans = ranges.get(row[2])
        if spans is None:
            continue
        lows, highs = spans
        index = bisect.bisect_right(lows, row[3]) - 1
        if index >= 0 and row[3] < highs[index]:
            yield row[2], row


def select_journeys(context: Any, rows: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """The journeys on a service and date a case travelled, keyed by them."""
    services = context.value.services
    for stored in rows:
        row = JOURNEY_ROW.decode(stored)
        if (row[7], row[6]) in services:
            yield (row[7], row[6]), row


def match_visits_partition(context: Any, items: Iterable[Any]) -> Iterator[Any]:
    shared = context.value
    candidates = [row for _, row in items]
    rows = match_venue_visits(
        shared.visit_cases, candidates, shared.venues, shared.now, shared.policy
    )
    for row in keep_longest(rows):
        yield EXPOSURE_ROW.encode_tuple([row[name] for name in _EXPOSURE_COLUMNS])


def match_journeys_partition(context: Any, items: Iterable[Any]) -> Iterator[Any]:
    shared = context.value
    candidates = [row for _, row in items]
    rows = match_journeys(shared.travel_cases, candidates, shared.now, shared.policy)
    for row in keep_longest(rows):
        yield EXPOSURE_ROW.encode_tuple([row[name] for name in _EXPOSURE_COLUMNS])


def _venue_partition(partitions: int) -> Callable[[Any], int]:
    return functools.partial(_modulo, partitions)


def _modulo(partitions: int, key: int) -> int:
    return key % partitions


def _service_partition(key: tuple[Any, str]) -> int:
    # A hash that is the same in every Python process, unlike hash() of text.
    return zlib.crc32(f"{key[0].isoformat()}|{key[1]}".encode())


def run_trace(
    spark: SparkSession,
    snapshot: str,
    result: str,
    *,
    partitions: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """The Spark job: every exposure to the snapshot's cases, into ``result``."""
    from healthcode.spark.session import run_with_progress

    manifest = read_manifest(snapshot, JOB)
    now = _instant(manifest["now"])
    cutoff = _instant(manifest["cutoff"])
    policy = _policy_of(manifest["policy"])
    windows = [_window_of(row) for row in manifest["windows"]]
    by_resident = windows_by_resident(windows)
    started = time.perf_counter()
    partitions = partitions or spark.sparkContext.defaultParallelism

    def read(name: str) -> Any:
        return spark.read.parquet(spark_uri(join(snapshot, name)))

    def work() -> int:
        venues = {
            row[0]: (timedelta(minutes=row[1]), row[2])
            for row in (VENUE_ROW.decode(stored) for stored in read("venues").collect())
        }
        case_visits = [VISIT_ROW.decode(row) for row in read("case_visits").collect()]
        visit_cases = venue_queries(case_visits, by_resident, venues, policy)
        ranges: dict[int, tuple[list[datetime], list[datetime]]] = {}
        for vid, low, high in visit_ranges(visit_cases, cutoff):
            lows, highs = ranges.setdefault(vid, ([], []))
            lows.append(low)
            highs.append(high)
        journeys = read("journeys")
        own = journeys.filter(journeys.resident_id.isin(sorted(by_resident)))
        travel_cases = travel_queries(
            (JOURNEY_ROW.decode(row) for row in own.collect()), by_resident
        )
        shared = spark.sparkContext.broadcast(
            _Context(
                now,
                policy,
                venues,
                visit_cases,
                ranges,
                travel_cases,
                frozenset(travel_services(travel_cases)),
            )
        )
        at_venues = (
            read("visits")
            .rdd.mapPartitions(functools.partial(select_visits, shared))
            .partitionBy(partitions, _venue_partition(partitions))
            .mapPartitions(functools.partial(match_visits_partition, shared))
        )
        on_journeys = (
            journeys.rdd.mapPartitions(functools.partial(select_journeys, shared))
            .partitionBy(partitions, _service_partition)
            .mapPartitions(functools.partial(match_journeys_partition, shared))
        )
        frame = spark.createDataFrame(
            at_venues.union(on_journeys),
            EXPOSURE_ROW.spark_schema(),
            verifySchema=False,
        )
        frame.write.mode("overwrite").parquet(spark_uri(join(result, "exposures")))
        found = spark.read.parquet(spark_uri(join(result, "exposures"))).count()
        shared.destroy()
        return found

    found = run_with_progress(spark, "tracing on Spark", work, console)
    summary = {
        "format": FORMAT,
        "job": JOB,
        "snapshot_now": manifest["now"],
        "found": found,
        "seconds": time.perf_counter() - started,
    }
    write_json(join(result, "summary.json"), summary)
    log.info("spark_trace_matched", windows=len(windows), found=found)
    return summary


# The import


def import_trace(
    engine: Engine,
    snapshot: str,
    result: str,
    *,
    recolor: Recolor | None = None,
) -> TraceReport:
    """Write a Spark trace's exposures and recolour the newly exposed, in one
    transaction, as :func:`~healthcode.checkins.tracing.trace` does."""
    manifest = read_manifest(snapshot, JOB)
    summary = read_summary(result, snapshot, manifest)
    if recolor is None:
        from healthcode.status.services import recolor_residents

        recolor = recolor_residents
    now = _instant(manifest["now"])
    windows = [_window_of(row) for row in manifest["windows"]]
    rows = []
    for stored in read_parts(join(result, "exposures"), EXPOSURE_ROW.names):
        values = EXPOSURE_ROW.decode([stored[name] for name in EXPOSURE_ROW.names])
        rows.append(dict(zip(EXPOSURE_ROW.names, values, strict=True)))
    found = found_of(rows)
    report = TraceReport(find_seconds=summary["seconds"])
    with Session(engine) as session, session.begin():
        record_exposures(session, windows, found, now, recolor, report)
    log.info(
        "spark_trace_imported",
        found=report.found,
        written=report.written,
        statuses_changed=report.statuses_changed,
    )
    return report


def trace_on_spark(
    engine: Engine,
    spark: SparkSession,
    work: str,
    now: datetime,
    *,
    policy: TracingPolicy | None = None,
    case_ids: Iterable[int] | None = None,
    partitions: int | None = None,
    console: Console | None = None,
    exported: Callable[[str, int, int], None] | None = None,
) -> TraceReport:
    """Export, match on Spark and import: the whole of a Spark trace.

    ``work`` is the location that holds the snapshot and the result (its
    ``trace/snapshot`` and ``trace/result``).
    """
    snapshot, result = join(work, JOB, "snapshot"), join(work, JOB, "result")
    export_trace(
        engine, snapshot, now, policy=policy, case_ids=case_ids, progress=exported
    )
    run_trace(spark, snapshot, result, partitions=partitions, console=console)
    return import_trace(engine, snapshot, result)
