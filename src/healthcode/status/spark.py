"""The full recolour as a Spark job: snapshot, evaluate on executors, import.

Three steps, each of which can run on a different machine:

1. :func:`export_recolor` reads every resident's records from the database
   with the very queries :func:`~healthcode.status.services.recolor_all`
   uses, in id ranges, and writes one Parquet row per resident (their
   records as lists, in the order the database gave them, and their stored
   status) plus a manifest: the clock, the records version, the risk areas
   and the text of the rule set.
2. :func:`run_recolor` is the Spark job. Each partition of the snapshot is
   decoded back into the same :class:`~healthcode.status.facts.ResidentRecords`
   and handed to the same code the single-machine path runs
   (``build_facts``, ``evaluate`` and the comparison with the stored status),
   with the rule set compiled on each executor from the manifest's text.
   It writes the statuses that changed and the colour changes as Parquet.
3. :func:`import_recolor` writes those into ``statuses`` and
   ``status_events`` in one transaction, under the recolour guard, and marks
   every other status as checked at the job's clock, as ``recolor_all`` does.

If any import changed records after the snapshot was taken, the import
writes nothing and says so: its statuses were computed from records that no
longer hold, and a new snapshot is needed. A status written after the
snapshot's clock (a status read re-evaluated it) is newer than the job's and
is kept.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from healthcode.config import get_settings
from healthcode.identity.models import Resident
from healthcode.rules.errors import InvalidRuleSet
from healthcode.rules.ruleset import RuleSet, parse_rule_set_text, rule_set_text
from healthcode.spark.errors import SnapshotError, SnapshotOutdated
from healthcode.spark.files import (
    EPOCH,
    FORMAT,
    PartWriter,
    RowCodec,
    chunks,
    instant_from_stored,
    instant_to_stored,
    join,
    read_manifest,
    read_parts,
    read_summary,
    spark_uri,
    write_json,
)
from healthcode.status.facts import Area, ResidentRecords
from healthcode.status.models import Status, StatusEvent
from healthcode.status.services import (
    _EVENT_COLUMNS,
    _RECORD_QUERIES,
    _RESIDENT_QUERY,
    _STATUS_COLUMNS,
    _STATUS_QUERY,
    BATCH,
    RecolorReport,
    _Changes,
    _compute,
    _read_records,
    _read_statuses,
    _records_version,
    _take_guard,
    _write,
    load_areas,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from rich.console import Console

log = structlog.get_logger(__name__)

JOB = "recolor"
# Residents evaluated together on an executor: one call of the shared
# comparison code, as one batch is on a single machine.
EVALUATE_BATCH = 1000

_RESIDENT = RowCodec.of_columns(_RESIDENT_QUERY.selected_columns)
_KINDS = tuple(
    (name, RowCodec.of_columns(query.selected_columns))
    for name, query in _RECORD_QUERIES.items()
)
_STORED = RowCodec.of_columns(list(_STATUS_QUERY.selected_columns)[1:])
STATUS_ROW = RowCodec.of_columns(Status.__table__.c[name] for name in _STATUS_COLUMNS)
EVENT_ROW = RowCodec.of_columns(
    StatusEvent.__table__.c[name] for name in _EVENT_COLUMNS
)
# The job writes one dataset in one pass: each row is a status (``what``
# 0), a change of colour (1) or a partition's counts (2), with the columns
# of the other kinds left empty.
STATUS, EVENT, COUNTS = 0, 1, 2
RESULT_ROW = RowCodec(
    ["what"]
    + [f"status_{name}" for name in STATUS_ROW.names]
    + [f"event_{name}" for name in EVENT_ROW.names]
    + ["residents", "rule_failures"],
    ["int", *STATUS_ROW.kinds, *EVENT_ROW.kinds, "int", "int"],
)
_NO_STATUS = (None,) * len(STATUS_ROW.names)
_NO_EVENT = (None,) * len(EVENT_ROW.names)


def snapshot_schema() -> Any:
    """One row per resident: the resident's columns, each kind of record as
    a list, and the stored status (null for a resident who has none)."""
    import pyarrow as pa

    fields = list(_RESIDENT.arrow_schema())
    fields += [pa.field(name, pa.list_(codec.arrow_struct())) for name, codec in _KINDS]
    fields.append(pa.field("stored", _STORED.arrow_struct()))
    return pa.schema(fields)


@dataclass(slots=True)
class Snapshot:
    location: str
    residents: int
    parts: int
    manifest: dict[str, Any]


def export_recolor(
    engine: Engine,
    location: str,
    now: datetime,
    *,
    cause: str = "recolor",
    rule_set: str | None = None,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> Snapshot:
    """Write the snapshot a Spark recolour at ``now`` reads, to ``location``.

    ``rule_set`` is a shipped name or a file (the configured one by
    default); it is loaded and its own tests run here, so a broken rule set
    stops the job before any executor starts. ``progress`` is told the
    residents written so far and the id span to cover.
    """
    if now.utcoffset() is None:
        raise SnapshotError("The recolour clock must be timezone-aware.")
    now = now.astimezone(UTC)
    text = rule_set_text(rule_set or get_settings().rule_set)
    label = parse_rule_set_text(text).label
    writer = PartWriter(join(location, "residents"), snapshot_schema())
    with engine.connect() as connection:
        version = _records_version(connection)
        low, high = connection.execute(
            sa.select(sa.func.min(Resident.id), sa.func.max(Resident.id))
        ).one()
        areas = load_areas(connection, now)
        if low is not None:
            for start in range(low, high + 1, batch):
                end = start + batch - 1
                residents = _read_records(
                    connection,
                    lambda column, s=start, e=end: column.between(s, e),
                    Resident.id.between(start, end),
                )
                stored = _read_statuses(
                    connection, Status.resident_id.between(start, end)
                )
                writer.write([_snapshot_row(r, stored) for r in residents.values()])
                if progress is not None:
                    progress(min(end, high) - low + 1, high - low + 1)
        connection.rollback()
    writer.close()
    manifest = {
        "format": FORMAT,
        "job": JOB,
        "now": instant_to_stored(now),
        "cause": cause,
        "records_version": version,
        "rule_set": text,
        "rule_set_label": label,
        "areas": [_area_row(area) for area in areas],
        "residents": writer.rows,
        "parts": writer.parts,
    }
    write_json(join(location, "manifest.json"), manifest)
    log.info("spark_recolor_exported", residents=writer.rows, parts=writer.parts)
    return Snapshot(location, writer.rows, writer.parts, manifest)


def _snapshot_row(
    records: ResidentRecords, stored: dict[int, tuple[Any, ...]]
) -> dict[str, Any]:
    row = _RESIDENT.encode(
        (
            records.resident_id,
            records.identity_state,
            records.doc_kind,
            records.region_code,
            records.birth_date,
        )
    )
    for name, codec in _KINDS:
        row[name] = [codec.encode(item) for item in getattr(records, name)]
    status = stored.get(records.resident_id)
    row["stored"] = None if status is None else _STORED.encode(status)
    return row


def _area_row(area: Area) -> list[Any]:
    return [
        area.code,
        area.prefix,
        area.name,
        area.level,
        instant_to_stored(area.starts_at),
        instant_to_stored(area.ends_at),
        area.department,
        area.source_id,
    ]


def _area_of(row: list[Any]) -> Area:
    code, prefix, name, level, starts, ends, department, source_id = row
    return Area(
        code,
        prefix,
        name,
        level,
        instant_from_stored(starts),  # type: ignore[arg-type]
        instant_from_stored(ends),
        department,
        source_id,
    )


# The job


@functools.lru_cache(maxsize=4)
def _rule_set(text: str) -> RuleSet:
    # Each Python worker compiles the rule set once, from the manifest's text.
    return parse_rule_set_text(text)


@dataclass(frozen=True, slots=True)
class _Context:
    now: int
    cause: str
    rule_set: str
    areas: tuple[Area, ...]


def evaluate_partition(context: _Context, rows: Iterable[Any]) -> Iterator[Any]:
    """Evaluate a partition of snapshot rows; runs on an executor.

    Yields a result row for each status that differs from the stored one,
    for each change of colour, and for each batch's counts.
    """
    rule_set = _rule_set(context.rule_set)
    now = EPOCH + timedelta(microseconds=context.now)
    width = len(_RESIDENT.names)
    for chunk in chunks(rows, EVALUATE_BATCH):
        residents: dict[int, ResidentRecords] = {}
        stored: dict[int, tuple[Any, ...]] = {}
        for row in chunk:
            records = ResidentRecords(*_RESIDENT.decode(row[:width]))
            for index, (name, codec) in enumerate(_KINDS):
                getattr(records, name).extend(
                    codec.decode(item) for item in row[width + index] or ()
                )
            residents[records.resident_id] = records
            status = row[width + len(_KINDS)]
            if status is not None:
                stored[records.resident_id] = _STORED.decode(status)
        report = RecolorReport()
        changes = _compute(
            residents, stored, context.areas, rule_set, now, context.cause, report
        )
        for upsert in changes.upserts:
            status = STATUS_ROW.encode_tuple([upsert[n] for n in _STATUS_COLUMNS])
            yield (STATUS, *status, *_NO_EVENT, None, None)
        for event in changes.events:
            change = EVENT_ROW.encode_tuple([event[n] for n in _EVENT_COLUMNS])
            yield (EVENT, *_NO_STATUS, *change, None, None)
        counts = (report.residents, report.rule_failures)
        yield (COUNTS, *_NO_STATUS, *_NO_EVENT, *counts)


def run_recolor(
    spark: SparkSession,
    snapshot: str,
    result: str,
    *,
    partitions: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """The Spark job: evaluate every resident of ``snapshot`` into ``result``."""
    from healthcode.spark.session import run_with_progress

    manifest = read_manifest(snapshot, JOB)
    try:
        # Compiled here first, so that an edited or foreign rule set is named
        # once, rather than failing on every executor.
        _rule_set(manifest["rule_set"])
    except InvalidRuleSet as exc:
        raise SnapshotError(
            f"The rule set in the snapshot manifest at {snapshot} does not"
            f" compile: {exc}"
        ) from None
    context = _Context(
        now=manifest["now"],
        cause=manifest["cause"],
        rule_set=manifest["rule_set"],
        areas=tuple(_area_of(row) for row in manifest["areas"]),
    )
    started = time.perf_counter()
    frame = spark.read.parquet(spark_uri(join(snapshot, "residents")))
    rdd = frame.rdd
    if partitions:
        rdd = rdd.repartition(partitions)
    results = rdd.mapPartitions(functools.partial(evaluate_partition, context))
    changes = join(result, "changes")

    def work() -> tuple[int, int]:
        # The rows are made by RESULT_ROW itself; checking each one against
        # the schema again costs more than evaluating the resident.
        frame = spark.createDataFrame(
            results, RESULT_ROW.spark_schema(), verifySchema=False
        )
        frame.write.mode("overwrite").parquet(spark_uri(changes))
        counts = (
            spark.read.parquet(spark_uri(changes))
            .where(f"what = {COUNTS}")
            .agg({"residents": "sum", "rule_failures": "sum"})
            .first()
        )
        return int(counts["sum(residents)"] or 0), int(
            counts["sum(rule_failures)"] or 0
        )

    residents, failures = run_with_progress(spark, "recolour on Spark", work, console)
    summary = {
        "format": FORMAT,
        "job": JOB,
        "snapshot_now": manifest["now"],
        "records_version": manifest["records_version"],
        "residents": residents,
        "rule_failures": failures,
        "seconds": time.perf_counter() - started,
    }
    write_json(join(result, "summary.json"), summary)
    log.info("spark_recolor_evaluated", residents=residents, rule_failures=failures)
    return summary


# The import


def import_recolor(
    engine: Engine,
    snapshot: str,
    result: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> RecolorReport:
    """Write a Spark recolour's results in one transaction.

    Raises :class:`SnapshotOutdated`, writing nothing, when records changed
    after the snapshot was taken.
    """
    manifest = read_manifest(snapshot, JOB)
    summary = read_summary(result, snapshot, manifest)
    now = EPOCH + timedelta(microseconds=manifest["now"])
    started = time.perf_counter()
    report = RecolorReport(
        residents=summary["residents"], rule_failures=summary["rule_failures"]
    )
    with engine.begin() as connection:
        version = _take_guard(connection, records_changed=False)
        if version != manifest["records_version"]:
            raise SnapshotOutdated(
                "Records changed after the recolour snapshot was taken (records"
                f" version {manifest['records_version']}, now {version}); nothing"
                " was written. Take a new snapshot and run the job again."
            )
        newer = {
            rid
            for (rid,) in connection.execute(
                sa.select(Status.resident_id).where(Status.as_of > now)
            )
        }
        changes = join(result, "changes")
        for batch in chunks(_rows(changes, STATUS, "status_", STATUS_ROW), BATCH):
            upserts = [row for row in batch if row["resident_id"] not in newer]
            _write(connection, _Changes(upserts, []), report, now)
            if progress is not None:
                progress(len(batch))
        for batch in chunks(_rows(changes, EVENT, "event_", EVENT_ROW), BATCH):
            events = [row for row in batch if row["resident_id"] not in newer]
            _write(connection, _Changes([], events), report, now)
        # Every other status was checked at the job's clock too.
        connection.execute(
            sa.update(Status).where(Status.as_of < now).values(as_of=now)
        )
    report.seconds = time.perf_counter() - started
    log.info(
        "spark_recolor_imported",
        residents=report.residents,
        written=report.written,
        colour_changes=report.colour_changes,
        kept_newer=len(newer),
    )
    return report


def _rows(
    location: str, what: int, prefix: str, codec: RowCodec
) -> Iterator[dict[str, Any]]:
    names = [prefix + name for name in codec.names]
    for stored in read_parts(location, names, what):
        values = codec.decode([stored[name] for name in names])
        yield dict(zip(codec.names, values, strict=True))


def recolor_on_spark(
    engine: Engine,
    spark: SparkSession,
    work: str,
    now: datetime,
    *,
    cause: str = "recolor",
    rule_set: str | None = None,
    partitions: int | None = None,
    console: Console | None = None,
    exported: Callable[[int, int], None] | None = None,
) -> RecolorReport:
    """Export, evaluate on Spark and import: the whole of a Spark recolour.

    ``work`` is the location that holds the snapshot and the results (its
    ``recolor/snapshot`` and ``recolor/result``).
    """
    snapshot, result = join(work, JOB, "snapshot"), join(work, JOB, "result")
    started = time.perf_counter()
    export_recolor(
        engine, snapshot, now, cause=cause, rule_set=rule_set, progress=exported
    )
    run_recolor(spark, snapshot, result, partitions=partitions, console=console)
    report = import_recolor(engine, snapshot, result)
    report.seconds = time.perf_counter() - started
    return report
