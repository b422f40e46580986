"""``healthcode bench tracing``: a city's fortnight of check-ins, traced.

The bench generates, with numpy and a fixed seed, residents, venues whose
popularity is spread the way real footfall is (a few stations and malls take
thousands of visits, most shops a handful), check-ins over a number of days,
train and flight manifests with carriages and seats, and a set of reported
cases, some of them travellers, some without a symptom onset (their window
opens before the first positive sample). Everything is written straight into
the tables, the way a migration of history would arrive: ``executemany`` on
SQLite, ``COPY`` on PostgreSQL, with the check-in table's secondary indexes
and foreign keys dropped during the load and rebuilt after it.

Tracing then runs in a child process, so that its peak memory is its own:
find the exposures, write them, recolour the exposed residents. The parent
checks a sample of the cases against :func:`reference_exposures`, the plain
one-pair-at-a-time restatement, and the figures must agree exactly; then it
traces again to show that a second run writes nothing. Every resident starts
with a green status, written directly, so that the colour changes counted
are real changes.

PostgreSQL is measured in a throwaway database made on the server named by
``--postgres-url`` and dropped afterwards.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import resource
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.checkins.config import DEFAULT_VENUE_STAYS
from healthcode.checkins.models import Checkin, Exposure
from healthcode.checkins.reference import reference_exposures
from healthcode.checkins.tracing import TracingPolicy, infectious_windows, trace
from healthcode.db import make_engine, migrate, postgres_reachable, throwaway_postgres
from healthcode.identity.models import Resident, stored_personal_values
from healthcode.partitions import PARTITIONED, create_day_partitions, days_between

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: The bench's clock: noon in Shanghai on the day after the generated days.
NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)
ZONE_OFFSET = timedelta(hours=8)
BENCH_ZONE = ZoneInfo("Asia/Shanghai")
DISTRICTS = ("610102", "610103", "610104", "610111", "610112", "610113", "610116")
VENUE_TYPES = ("shop", "restaurant", "office", "hospital", "station", "park")
VENUE_WEIGHTS = (0.45, 0.3, 0.12, 0.03, 0.02, 0.08)
CHUNK = 500_000
TARGET_SECONDS = 10.0
TARGET_MB = 2048.0


@dataclass(frozen=True)
class BenchSize:
    residents: int = 1_000_000
    venues: int = 100_000
    checkins: int = 10_000_000
    days: int = 14
    cases: int = 100
    trains_per_day: int = 100
    flights_per_day: int = 60
    rail_passengers: int = 200_000
    air_passengers: int = 100_000
    sample: int = 10
    seed: int = 2022


@dataclass
class Population:
    """The generated city, column by column; instants are Unix seconds."""

    start: int
    venue_type: np.ndarray
    venue_region: np.ndarray
    checkin_venue: np.ndarray
    checkin_resident: np.ndarray
    checkin_in: np.ndarray
    checkin_out: np.ndarray  # -1 where no check-out was recorded
    checkin_checkpoint: np.ndarray
    segments: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    positives: list[dict[str, Any]]

    @property
    def checkins(self) -> int:
        return len(self.checkin_in)


def generate(size: BenchSize, now: datetime = NOW) -> Population:
    """The whole city from ``size.seed``: the same figures on every run."""
    rng = np.random.default_rng(size.seed)
    local_midnight = (now + ZONE_OFFSET).replace(hour=0, minute=0, second=0)
    start = int((local_midnight - ZONE_OFFSET).timestamp()) - size.days * 86_400

    venue_type = rng.choice(len(VENUE_TYPES), size.venues, p=VENUE_WEIGHTS)
    venue_region = rng.integers(0, len(DISTRICTS), size.venues)
    # Footfall: lognormal weights give a long tail of busy places.
    weights = rng.lognormal(0.0, 1.2, size.venues)
    cumulative = np.cumsum(weights / weights.sum())
    venue = np.searchsorted(cumulative, rng.random(size.checkins), "right")
    venue = np.minimum(venue, size.venues - 1).astype(np.int64) + 1
    resident = rng.integers(1, size.residents + 1, size.checkins, dtype=np.int64)
    day = rng.integers(0, size.days, size.checkins, dtype=np.int64)
    # Arrivals peak around lunch and the evening, between 06:00 and 23:00.
    peak = np.where(rng.random(size.checkins) < 0.5, 12.5, 18.5)
    hour = np.clip(rng.normal(peak, 3.0), 6.0, 22.99)
    moment = start + day * 86_400 + (hour * 3600).astype(np.int64)
    moment += rng.integers(0, 60, size.checkins)
    stays = np.array([DEFAULT_VENUE_STAYS[name] for name in VENUE_TYPES]) * 60
    typical = stays[venue_type[venue - 1]]
    stay = np.clip(rng.lognormal(0.0, 0.5, size.checkins) * typical * 0.8, 60, 86_400)
    # Nobody checks out after the bench's clock.
    leaves = np.minimum(moment + stay.astype(np.int64), int(now.timestamp()))
    checked_out = np.where(rng.random(size.checkins) < 0.65, leaves, -1)
    # Rows go in in time order, as uploads would arrive, and there is one
    # visit per resident, venue and instant, as the upload path keeps it:
    # one sort on a key of (time, resident, venue) does both.
    span = (int(moment.max()) - start + 1) * (size.residents + 1) * (size.venues + 1)
    if span < 2**62:
        key = ((moment - start) * (size.residents + 1) + resident) * (
            size.venues + 1
        ) + venue
        order = np.argsort(key)
        distinct = np.concatenate(([True], np.diff(key[order]) != 0))
    else:
        order = np.lexsort((venue, resident, moment))
        distinct = np.concatenate(
            (
                [True],
                (np.diff(moment[order]) != 0)
                | (np.diff(resident[order]) != 0)
                | (np.diff(venue[order]) != 0),
            )
        )
    order = order[distinct]
    checkpoint = rng.random(len(order)) < 0.25

    segments = _manifests(rng, size, start)
    cases, positives = _cases(rng, size, start, segments)
    return Population(
        start=start,
        venue_type=venue_type,
        venue_region=venue_region,
        checkin_venue=venue[order],
        checkin_resident=resident[order],
        checkin_in=moment[order],
        checkin_out=checked_out[order],
        checkin_checkpoint=checkpoint,
        segments=segments,
        cases=cases,
        positives=positives,
    )


def _manifests(
    rng: np.random.Generator, size: BenchSize, start: int
) -> list[dict[str, Any]]:
    services = []
    for number in range(size.trains_per_day):
        departs = int(rng.integers(6 * 3600, 20 * 3600))
        services.append(("rail", "CR", f"G{100 + number}", departs, 5 * 3600, 8))
    for number in range(size.flights_per_day):
        departs = int(rng.integers(7 * 3600, 22 * 3600))
        services.append(("air", "MU", f"MU{2100 + number}", departs, 7200, 0))
    segments = []
    total = size.rail_passengers + size.air_passengers
    service_of = np.concatenate(
        (
            rng.integers(0, size.trains_per_day, size.rail_passengers),
            rng.integers(
                size.trains_per_day,
                size.trains_per_day + size.flights_per_day,
                size.air_passengers,
            ),
        )
    )
    day_of = rng.integers(0, size.days, total)
    resident_of = rng.integers(1, size.residents + 1, total)
    board = rng.random(total)
    alight = rng.random(total)
    carriage_of = rng.integers(1, 9, total)
    row_of = rng.integers(1, 36, total)
    letter_of = rng.integers(0, 6, total)
    seat_known = rng.random(total) < 0.9
    for index in range(total):
        mode, carrier, number, departs, length, _ = services[service_of[index]]
        service_start = start + int(day_of[index]) * 86_400 + departs
        if mode == "rail":
            dep = service_start + int(board[index] * length / 3)
            arr = service_start + length - int(alight[index] * length / 3)
            carriage = f"{carriage_of[index]:02d}"
            seat = f"{row_of[index] % 20 + 1}{'ABCDF'[letter_of[index] % 5]}"
        else:
            dep, arr = service_start, service_start + length
            carriage = None
            seat = f"{row_of[index]}{'ABCDEF'[letter_of[index]]}"
        segments.append(
            {
                "resident_id": int(resident_of[index]),
                "mode": mode,
                "carrier": carrier,
                "service_number": number,
                "service_date": _local_date(service_start),
                "carriage": carriage,
                "seat": seat if seat_known[index] else None,
                "dep_at": dep,
                "arr_at": arr,
            }
        )
    return segments


def _cases(
    rng: np.random.Generator,
    size: BenchSize,
    start: int,
    segments: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # A third of the cases travelled during their window, so that journeys
    # are traced as well as venues; their journeys fall early enough that
    # onset and diagnosis come before the bench's clock.
    eligible = [
        index
        for index, segment in enumerate(segments)
        if start + 2 * 86_400 <= segment["dep_at"] < start + (size.days - 4) * 86_400
    ]
    travellers = rng.choice(
        eligible, min(size.cases // 3, len(eligible)), replace=False
    )
    chosen: list[tuple[int, int | None]] = [
        (segments[int(index)]["resident_id"], segments[int(index)]["dep_at"])
        for index in travellers
    ]
    taken = {rid for rid, _ in chosen}
    while len(chosen) < size.cases:
        rid = int(rng.integers(1, size.residents + 1))
        if rid not in taken:
            taken.add(rid)
            chosen.append((rid, None))
    cases, positives = [], []
    for number, (rid, travelled) in enumerate(chosen):
        if travelled is not None:
            onset = travelled + int(rng.integers(3600, 36 * 3600))
        else:
            onset = start + int(rng.integers(4 * 86_400, (size.days - 2) * 86_400))
        diagnosed = onset + int(rng.integers(12 * 3600, 48 * 3600))
        with_onset = number % 5 != 4
        cases.append(
            {
                "resident_id": rid,
                "source_id": f"BENCH-CASE-{number:04d}",
                "onset_at": onset if with_onset else None,
                "diagnosed_at": diagnosed,
                "isolated_at": diagnosed + 7200,
            }
        )
        if not with_onset:
            positives.append(
                {
                    "resident_id": rid,
                    "source_id": f"BENCH-LAB-{number:04d}",
                    "sampled_at": diagnosed - int(rng.integers(6 * 3600, 30 * 3600)),
                }
            )
    return cases, positives


def _local_date(moment: int) -> date:
    return (datetime.fromtimestamp(moment, UTC) + ZONE_OFFSET).date()


# Loading


class _Texts:
    """Instants as the database's text, looked up rather than formatted.

    Every instant of the bench is a whole second inside a few weeks, so the
    text of each second is made once and check-ins index into the table;
    formatting ten million datetimes one by one would cost more than the
    load itself.
    """

    def __init__(self, start: int, days: int, pattern: str) -> None:
        self.start = start
        first = datetime.fromtimestamp(start, UTC)
        day_texts = [
            (first + timedelta(days=n)).strftime("%Y-%m-%d ") for n in range(days + 3)
        ]
        second_texts = [
            f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{pattern}"
            for s in range(86_400)
        ]
        self.table = np.array(
            [day + second for day in day_texts for second in second_texts],
            dtype=object,
        )

    def of(self, moments: np.ndarray) -> np.ndarray:
        return self.table[moments - self.start]


def _instant(moment: int | None) -> datetime | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC)


@contextmanager
def _without_secondary_structures(engine: Engine) -> Iterator[None]:
    """Drop the check-in table's indexes (and on PostgreSQL its foreign keys)
    for a bulk load, and build them again after it."""
    table = Checkin.__table__
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        # On PostgreSQL the indexes are rebuilt as the database defines them,
        # which for the day-partitioned table differs from the model (its
        # unique indexes carry the partition key).
        definitions = _index_definitions(connection, table) if postgres else {}
        for index in table.indexes:
            index.drop(connection)
        if postgres:
            for constraint in table.foreign_key_constraints:
                connection.execute(sa.schema.DropConstraint(constraint))
    yield
    with engine.begin() as connection:
        if postgres:
            connection.execute(sa.text("SET maintenance_work_mem = '1GB'"))
        for index in table.indexes:
            if index.name in definitions:
                connection.execute(sa.text(definitions[str(index.name)]))
            else:
                index.create(connection)
        if postgres:
            for constraint in table.foreign_key_constraints:
                connection.execute(sa.schema.AddConstraint(constraint))
        if not postgres:
            # SQLite's ANALYZE reads every entry of every index unless told to
            # sample; a sample is all the planner needs.
            connection.execute(sa.text("PRAGMA analysis_limit=1000"))
        connection.execute(sa.text("ANALYZE"))


def _index_definitions(connection: sa.Connection, table: sa.Table) -> dict[str, str]:
    found = {}
    for index in table.indexes:
        text = connection.execute(
            sa.text("SELECT pg_get_indexdef(to_regclass(:name))"), {"name": index.name}
        ).scalar_one()
        if text:
            # A partitioned table's index is shown as made ON ONLY the
            # parent; made over the whole table it covers every partition.
            found[str(index.name)] = text.replace(" ON ONLY ", " ON ", 1)
    return found


def load(
    engine: Engine,
    population: Population,
    size: BenchSize,
    progress: Callable[[str, int, int], None],
) -> None:
    """Write the generated city into a freshly migrated database."""
    postgres = engine.dialect.name == "postgresql"
    texts = _Texts(population.start, size.days, "+00" if postgres else ".000000")
    from healthcode.feeds.models import FeedImport

    with engine.begin() as connection:
        import_id = connection.execute(
            sa.insert(FeedImport).returning(FeedImport.id),
            {
                "kind": "bench",
                "department": "bench",
                "file_name": "bench",
                "sha256": "0" * 64,
                "zone": "Asia/Shanghai",
                "mode": "bench",
                "started_at": _instant(population.start),
            },
        ).scalar_one()
    _load_residents(engine, size, texts, postgres, progress)
    _load_venues(engine, population, size, texts, postgres)
    _load_records(engine, population, import_id, texts, postgres, progress)
    if postgres:
        # Migrations make the partitions of the days around the wall clock;
        # the bench's days are its own.
        first = datetime.fromtimestamp(population.start, UTC)
        with engine.begin() as connection:
            for table in PARTITIONED:
                create_day_partitions(
                    connection,
                    table,
                    days_between(first, NOW + timedelta(days=1), BENCH_ZONE),
                    BENCH_ZONE,
                )
    with _without_secondary_structures(engine):
        _load_checkins(engine, population, texts, postgres, progress)
        progress("indexes and keys", 0, 1)
    progress("indexes and keys", 1, 1)


def _rows_in(
    engine: Engine,
    table: str,
    columns: Sequence[str],
    rows: Callable[[int, int], list[tuple[Any, ...]]],
    total: int,
    postgres: bool,
    progress: Callable[[str, int, int], None] | None = None,
    copy_text: Callable[[int, int], str] | None = None,
) -> None:
    """Write ``total`` rows made a chunk at a time by ``rows(start, end)``.

    On PostgreSQL ``copy_text(start, end)``, when given, makes the chunk's
    COPY text directly, which for the big tables is much quicker than
    turning each value of each row into text on its own.
    """
    names = ", ".join(columns)
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        cursor = raw.cursor()
        try:
            if postgres:
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for start in range(0, total, CHUNK):
                        end = min(start + CHUNK, total)
                        if copy_text is not None:
                            copy.write(copy_text(start, end))
                        else:
                            copy.write(_copy_text(rows(start, end)))
                        if progress:
                            progress(table, end, total)
            else:
                marks = ", ".join("?" for _ in columns)
                statement = f"INSERT INTO {table} ({names}) VALUES ({marks})"
                for start in range(0, total, CHUNK):
                    end = min(start + CHUNK, total)
                    cursor.executemany(statement, rows(start, end))
                    # A commit per chunk keeps the write-ahead log short: a
                    # single transaction of ten million rows would hold
                    # every page in the log until the end.
                    raw.commit()
                    if progress:
                        progress(table, end, total)
        finally:
            cursor.close()


def _copy_text(rows: list[tuple[Any, ...]]) -> str:
    # COPY's text format: tab-separated, \N for null. No bench value holds a
    # tab, a newline or a backslash.
    return "".join(
        "\t".join("\\N" if value is None else str(value) for value in row) + "\n"
        for row in rows
    )


def _load_residents(
    engine: Engine,
    size: BenchSize,
    texts: _Texts,
    postgres: bool,
    progress: Callable[[str, int, int], None],
) -> None:
    registered = texts.of(np.array([texts.start]))[0]
    from healthcode.status.services import active_rule_set

    label = active_rule_set().label

    # Every bench resident bears the same name, so it is sealed and indexed
    # once; each number is sealed and indexed on its own.
    name = stored_personal_values("E000000000", "居民", None)
    seal = Resident.__table__.c.doc_number_sealed.type.process_bind_param
    index = Resident.__table__.c.doc_number_index.type.process_bind_param

    def residents(start: int, end: int) -> list[tuple[Any, ...]]:
        return [
            (
                rid,
                "passport",
                "CHN",
                seal(f"E{rid:09d}", None),
                index(f"E{rid:09d}", None),
                name["name_sealed"],
                name["name_index"],
                DISTRICTS[rid % len(DISTRICTS)],
                "confirmed",
                registered,
                registered,
            )
            for rid in range(start + 1, end + 1)
        ]

    def statuses(start: int, end: int) -> list[tuple[Any, ...]]:
        return [
            (rid, "green", "[]", registered, label) for rid in range(start + 1, end + 1)
        ]

    _rows_in(
        engine,
        "residents",
        (
            "id",
            "doc_kind",
            "doc_country",
            "doc_number_sealed",
            "doc_number_index",
            "name_sealed",
            "name_index",
            "region_code",
            "identity_state",
            "identity_confirmed_at",
            "registered_at",
        ),
        residents,
        size.residents,
        postgres,
        progress,
    )
    _rows_in(
        engine,
        "statuses",
        ("resident_id", "colour", "reasons", "as_of", "rule_set"),
        statuses,
        size.residents,
        postgres,
        progress,
    )
    if postgres:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('residents', 'id'),"
                    " (SELECT max(id) FROM residents))"
                )
            )


def _load_venues(
    engine: Engine,
    population: Population,
    size: BenchSize,
    texts: _Texts,
    postgres: bool,
) -> None:
    created = texts.of(np.array([texts.start]))[0]
    kinds = population.venue_type.tolist()
    regions = population.venue_region.tolist()

    def venues(start: int, end: int) -> list[tuple[Any, ...]]:
        return [
            (
                vid + 1,
                f"{VENUE_TYPES[kinds[vid]]} {vid + 1}",
                f"{vid + 1} Bench Road",
                DISTRICTS[regions[vid]],
                VENUE_TYPES[kinds[vid]],
                DEFAULT_VENUE_STAYS[VENUE_TYPES[kinds[vid]]],
                created,
            )
            for vid in range(start, end)
        ]

    _rows_in(
        engine,
        "venues",
        (
            "id",
            "name",
            "address",
            "region_code",
            "venue_type",
            "default_stay_minutes",
            "created_at",
        ),
        venues,
        size.venues,
        postgres,
    )


def _load_records(
    engine: Engine,
    population: Population,
    import_id: int,
    texts: _Texts,
    postgres: bool,
    progress: Callable[[str, int, int], None],
) -> None:
    from healthcode.feeds.models import CaseReport, LabResult

    segments = population.segments
    dep = texts.of(np.array([segment["dep_at"] for segment in segments])).tolist()
    arr = texts.of(np.array([segment["arr_at"] for segment in segments])).tolist()

    def journeys(start: int, end: int) -> list[tuple[Any, ...]]:
        return [
            (
                segments[index]["resident_id"],
                "railway" if segments[index]["mode"] == "rail" else "aviation",
                f"BENCH-SEG-{index}",
                "bench",
                import_id,
                segments[index]["mode"],
                segments[index]["carrier"],
                segments[index]["service_number"],
                segments[index]["service_date"].isoformat(),
                segments[index]["carriage"],
                segments[index]["seat"],
                "西安北",
                "610112",
                dep[index],
                "北京西",
                "110106",
                arr[index],
                "[]",
            )
            for index in range(start, end)
        ]

    _rows_in(
        engine,
        "travel_segments",
        (
            "resident_id",
            "department",
            "source_id",
            "content_hash",
            "import_id",
            "mode",
            "carrier",
            "service_number",
            "service_date",
            "carriage",
            "seat",
            "dep_station",
            "dep_code",
            "dep_at",
            "arr_station",
            "arr_code",
            "arr_at",
            "stops",
        ),
        journeys,
        len(segments),
        postgres,
        progress,
    )
    # Cases and lab results are a few hundred rows; the ORM handles them.
    common = {"content_hash": "bench", "import_id": import_id}
    with engine.begin() as connection:
        connection.execute(
            sa.insert(CaseReport),
            [
                {
                    **common,
                    "department": "health",
                    "resident_id": case["resident_id"],
                    "source_id": case["source_id"],
                    "classification": "confirmed",
                    "onset_at": _instant(case["onset_at"]),
                    "diagnosed_at": _instant(case["diagnosed_at"]),
                    "isolated_at": _instant(case["isolated_at"]),
                    "released_at": None,
                }
                for case in population.cases
            ],
        )
        if population.positives:
            connection.execute(
                sa.insert(LabResult),
                [
                    {
                        **common,
                        "department": "health",
                        "resident_id": lab["resident_id"],
                        "source_id": lab["source_id"],
                        "sampled_at": _instant(lab["sampled_at"]),
                        "reported_at": None,
                        "method": "pcr",
                        "result": "positive",
                        "lab": None,
                    }
                    for lab in population.positives
                ],
            )


def _load_checkins(
    engine: Engine,
    population: Population,
    texts: _Texts,
    postgres: bool,
    progress: Callable[[str, int, int], None],
) -> None:
    def columns(start: int, end: int, null: str | None) -> Iterator[Any]:
        out = population.checkin_out[start:end]
        has_out = out >= 0
        out_text = np.full(end - start, null, dtype=object)
        out_text[has_out] = texts.of(out[has_out])
        source = np.where(
            population.checkin_checkpoint[start:end],
            "checkpoint-scan",
            "resident-scan",
        ).tolist()
        ids = range(start + 1, end + 1)
        return zip(
            ids,
            population.checkin_venue[start:end].tolist(),
            population.checkin_resident[start:end].tolist(),
            texts.of(population.checkin_in[start:end]).tolist(),
            out_text.tolist(),
            source,
            strict=True,
        )

    def checkins(start: int, end: int) -> list[tuple[Any, ...]]:
        return [
            (cid, vid, rid, came, left, source, f"bench:{cid}")
            for cid, vid, rid, came, left, source in columns(start, end, None)
        ]

    def checkin_text(start: int, end: int) -> str:
        return "".join(
            f"{cid}\t{vid}\t{rid}\t{came}\t{left}\t{source}\tbench:{cid}\n"
            for cid, vid, rid, came, left, source in columns(start, end, "\\N")
        )

    _rows_in(
        engine,
        "checkins",
        (
            "id",
            "venue_id",
            "resident_id",
            "checked_in_at",
            "checked_out_at",
            "source",
            "idempotency_key",
        ),
        checkins,
        population.checkins,
        postgres,
        progress,
        checkin_text,
    )
    if postgres:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('checkins', 'id'),"
                    " (SELECT max(id) FROM checkins))"
                )
            )


# Measuring


@dataclass
class SparkFigures:
    """The same trace as a Spark job in local mode, on the traced data."""

    master: str
    export_seconds: float
    job_seconds: float
    import_seconds: float
    found: int
    written: int


@dataclass
class Figures:
    backend: str
    load_seconds: float = 0.0
    find_seconds: float = 0.0
    write_seconds: float = 0.0
    recolor_seconds: float = 0.0
    found: int = 0
    venue_found: int = 0
    travel_found: int = 0
    written: int = 0
    statuses_changed: int = 0
    exposed: int = 0
    peak_mb: float = 0.0
    sample_cases: int = 0
    sample_exposures: int = 0
    sample_agrees: bool = False
    rerun_written: int = -1
    mismatches: list[str] = field(default_factory=list)
    spark: SparkFigures | None = None

    @property
    def matching_seconds(self) -> float:
        return self.find_seconds + self.write_seconds


def _child_trace(url: str, now: datetime, policy: TracingPolicy, queue: Any) -> None:
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        report = trace(session, now=now, policy=policy)
    peak_kb = _peak_kb()
    engine.dispose()
    queue.put(
        {
            "find_seconds": report.find_seconds,
            "write_seconds": report.write_seconds,
            "recolor_seconds": report.recolor_seconds,
            "found": report.found,
            "venue_found": sum(case.venue_found for case in report.cases),
            "travel_found": sum(case.travel_found for case in report.cases),
            "written": report.written,
            "statuses_changed": report.statuses_changed,
            "exposed": len(report.exposed_residents),
            "peak_mb": peak_kb / 1024,
        }
    )


def _peak_kb() -> int:
    """This process's own peak resident memory, in kB.

    On Linux ``ru_maxrss`` of a process started by fork and exec keeps the
    peak of the forked copy of its parent, which here holds the whole
    generated city; ``VmHWM`` is the peak of the process's own memory.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _trace_in_child(url: str, now: datetime, policy: TracingPolicy) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child_trace, args=(url, now, policy, queue))
    process.start()
    try:
        while True:
            try:
                result = queue.get(timeout=1)
                break
            except queue_module.Empty:
                if not process.is_alive():
                    raise RuntimeError(
                        "The tracing child process ended without a result"
                        f" (exit code {process.exitcode})."
                    ) from None
    finally:
        process.join(timeout=60)
    return result  # type: ignore[no-any-return]


def check_sample(
    engine: Engine,
    now: datetime,
    policy: TracingPolicy,
    sample: int,
    seed: int,
) -> tuple[int, int, list[str]]:
    """Compare the written exposures of a sample of cases with the reference.

    Returns the cases and exposures compared and a description of every
    difference (empty when the two agree exactly).
    """
    with engine.connect() as connection:
        ids = sorted(
            connection.execute(sa.text("SELECT id FROM case_reports")).scalars()
        )
        rng = np.random.default_rng(seed)
        chosen = sorted(
            int(i) for i in rng.choice(ids, min(sample, len(ids)), replace=False)
        )
        windows = infectious_windows(connection, now, policy, chosen)
        expected = reference_exposures(connection, windows, now, policy)
        rows = connection.execute(
            sa.select(
                Exposure.resident_id,
                Exposure.case_resident_id,
                Exposure.case_report_id,
                Exposure.kind,
                Exposure.place,
                Exposure.starts_at,
                Exposure.ends_at,
                Exposure.overlap_minutes,
            ).where(Exposure.case_report_id.in_(chosen))
        ).all()
    written = {tuple(row) for row in rows}
    problems = [f"missing {item}" for item in sorted(expected - written)[:5]]
    problems += [f"unexpected {item}" for item in sorted(written - expected)[:5]]
    return len(chosen), len(expected), problems


def spark_trace(
    console: Console,
    engine: Engine,
    policy: TracingPolicy,
    spark: Any,
    master: str,
) -> SparkFigures:
    """Time the Spark trace's three steps on data the single-machine trace
    has just traced: it must find as many exposures and write none."""
    from healthcode.checkins.spark import export_trace, import_trace, run_trace

    with tempfile.TemporaryDirectory() as folder:
        snapshot, result = f"{folder}/snapshot", f"{folder}/result"
        started = time.perf_counter()
        with console.status("Spark: writing the snapshot"):
            export_trace(engine, snapshot, NOW, policy=policy)
        exported = time.perf_counter()
        run_trace(spark, snapshot, result, console=console)
        ran = time.perf_counter()
        with console.status("Spark: importing the result"):
            report = import_trace(engine, snapshot, result)
        done = time.perf_counter()
    return SparkFigures(
        master,
        exported - started,
        ran - exported,
        done - ran,
        report.found,
        report.written,
    )


def run_backend(
    console: Console,
    backend: str,
    url: str,
    population: Population,
    size: BenchSize,
    policy: TracingPolicy,
    spark: tuple[Any, str] | None = None,
) -> Figures:
    figures = Figures(backend)
    engine = make_engine(url)
    migrate(engine)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, Any] = {}

        def advance(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"{backend}: {table}", total=total)
            bar.update(tasks[table], completed=done)

        load(engine, population, size, advance)
    figures.load_seconds = time.perf_counter() - started
    console.print(
        f"{backend}: loaded {population.checkins:,} check-ins,"
        f" {len(population.segments):,} journeys and {len(population.cases)} cases"
        f" in {figures.load_seconds:.1f} s"
    )
    with console.status(f"{backend}: tracing in a child process"):
        for name, value in _trace_in_child(url, NOW, policy).items():
            setattr(figures, name, value)
    with console.status(f"{backend}: checking a sample against the reference"):
        cases, exposures, problems = check_sample(
            engine, NOW, policy, size.sample, size.seed
        )
    figures.sample_cases, figures.sample_exposures = cases, exposures
    figures.sample_agrees = not problems
    figures.mismatches = problems
    with (
        console.status(f"{backend}: tracing the same data again"),
        Session(engine) as session,
        session.begin(),
    ):
        figures.rerun_written = trace(session, now=NOW, policy=policy).written
    if spark is not None:
        figures.spark = spark_trace(console, engine, policy, *spark)
    engine.dispose()
    return figures


def run_bench(
    console: Console,
    size: BenchSize,
    *,
    backends: Sequence[str] = ("sqlite", "postgresql"),
    postgres_url: str = DEFAULT_POSTGRES,
    policy: TracingPolicy | None = None,
    spark: tuple[Any, str] | None = None,
) -> list[Figures]:
    """Generate the city once, then load and trace it on each backend."""
    policy = policy or TracingPolicy()
    with console.status("generating the city"):
        started = time.perf_counter()
        population = generate(size)
    console.print(
        f"generated {size.residents:,} residents, {size.venues:,} venues,"
        f" {population.checkins:,} check-ins over {size.days} days,"
        f" {len(population.segments):,} journeys, {len(population.cases)} cases"
        f" in {time.perf_counter() - started:.1f} s"
    )
    results = []
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            results.append(
                run_backend(console, "sqlite", url, population, size, policy, spark)
            )
    if "postgresql" in backends:
        if postgres_reachable(postgres_url):
            with throwaway_postgres(postgres_url) as url:
                results.append(
                    run_backend(
                        console, "postgresql", url, population, size, policy, spark
                    )
                )
        else:
            shown = sa.make_url(postgres_url).render_as_string(hide_password=True)
            console.print(
                f"[yellow]PostgreSQL at {shown} is not reachable; its figures are"
                " not measured.[/yellow]"
            )
    return results


def _spark_rows(row: Callable[[str, Callable[[Figures], str]], None]) -> None:
    def spark(shown: Callable[[SparkFigures], str]) -> Callable[[Figures], str]:
        return lambda f: "-" if f.spark is None else shown(f.spark)

    row("Spark: master", spark(lambda s: s.master))
    row("Spark: snapshot export s", spark(lambda s: f"{s.export_seconds:.2f}"))
    row("Spark: job s", spark(lambda s: f"{s.job_seconds:.2f}"))
    row("Spark: import s", spark(lambda s: f"{s.import_seconds:.2f}"))
    row("Spark: exposures found (exact: as above)", spark(lambda s: f"{s.found:,}"))
    row("Spark: exposures written (exact: 0)", spark(lambda s: f"{s.written:,}"))


def print_figures(console: Console, results: Sequence[Figures]) -> bool:
    """Print the figures; return whether every backend met the targets."""
    table = Table("", *(fig.backend for fig in results), title="tracing benchmark")

    def row(label: str, value: Callable[[Figures], str]) -> None:
        table.add_row(label, *(value(fig) for fig in results))

    row("load (not measured against the target) s", lambda f: f"{f.load_seconds:.1f}")
    row("find exposures s", lambda f: f"{f.find_seconds:.2f}")
    row("write exposures s", lambda f: f"{f.write_seconds:.2f}")
    row("find + write s", lambda f: f"{f.matching_seconds:.2f}")
    row("exposures found", lambda f: f"{f.found:,}")
    row("  at venues", lambda f: f"{f.venue_found:,}")
    row("  on trains and flights", lambda f: f"{f.travel_found:,}")
    row("exposures written", lambda f: f"{f.written:,}")
    row("residents exposed", lambda f: f"{f.exposed:,}")
    row("recolour s", lambda f: f"{f.recolor_seconds:.2f}")
    row("statuses changed", lambda f: f"{f.statuses_changed:,}")
    row("peak memory of the tracer MB", lambda f: f"{f.peak_mb:.0f}")
    row(
        "reference on a sample",
        lambda f: (
            f"{'agrees' if f.sample_agrees else 'DIFFERS'}: {f.sample_cases} cases,"
            f" {f.sample_exposures:,} exposures"
        ),
    )
    row("second run writes", lambda f: f"{f.rerun_written:,}")
    if any(fig.spark is not None for fig in results):
        _spark_rows(row)
    console.print(table)
    console.print(
        f"targets: find + write under {TARGET_SECONDS:.0f} s and the tracer under"
        f" {TARGET_MB:,.0f} MB; the reference must agree exactly"
    )
    ok = True
    for fig in results:
        if fig.spark is not None and (
            fig.spark.found != fig.found or fig.spark.written != 0
        ):
            console.print(
                f"[red]{fig.backend}: the Spark trace found {fig.spark.found:,}"
                f" exposures and wrote {fig.spark.written:,}[/red]"
            )
            ok = False
        for problem in fig.mismatches:
            console.print(f"[red]{fig.backend}: {problem}[/red]")
        if (
            not fig.sample_agrees
            or fig.rerun_written != 0
            or fig.matching_seconds >= TARGET_SECONDS
            or fig.peak_mb >= TARGET_MB
        ):
            ok = False
    return ok
