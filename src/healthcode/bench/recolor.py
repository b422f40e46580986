"""``healthcode bench recolor``: full-recolour throughput against a plain loop.

The population is written straight into the tables (the import path is
measured separately, at the end, with a real feed file of new lab results).
For each backend the batch recolour runs in a child process, so that its
peak memory is its own, and then a plain per-resident loop (one query per
table per resident, one write per resident, the way a first version would
be written) runs on a sample of the same residents; the ratio of the two
rates is printed beside them.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.config import get_settings
from healthcode.db import make_engine, migrate, postgres_reachable, throwaway_postgres
from healthcode.feeds.models import (
    Declaration,
    FeedImport,
    LabResult,
    QuarantineOrder,
    RiskArea,
    TravelSegment,
    Vaccination,
)
from healthcode.identity.documents import mod11_2_check
from healthcode.identity.models import Resident, personal_values
from healthcode.log import configure
from healthcode.status.engine import evaluate
from healthcode.status.facts import ResidentRecords, build_facts
from healthcode.status.models import Status
from healthcode.status.services import (
    _RECORD_QUERIES,
    active_rule_set,
    load_areas,
    recolor_all,
    recolor_residents,
)

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DISTRICTS = ("610102", "610103", "610104", "610111", "610112", "610113", "610116")
BASELINE_SAMPLE = 4000


def document_of(index: int) -> tuple[str, date]:
    """A valid mainland identity number, unique per index, and its birth date."""
    born = date(1940, 1, 1) + timedelta(days=index // 1000)
    body = f"{DISTRICTS[index % len(DISTRICTS)]}{born:%Y%m%d}{index % 1000:03d}"
    return body + mod11_2_check(body), born


def build_population(
    engine: Engine, residents: int, now: datetime, seed: int = 11
) -> int:
    """Residents with about five records each; returns the number of records."""
    rng = random.Random(seed)
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
                "started_at": now,
            },
        ).scalar_one()
        connection.execute(
            sa.insert(RiskArea),
            [
                {
                    "department": "health-commission",
                    "source_id": "bench-area-1",
                    "content_hash": "x",
                    "import_id": import_id,
                    "code": "420106",
                    "name": None,
                    "level": "high",
                    "starts_at": now - timedelta(days=5),
                    "ends_at": None,
                }
            ],
        )
    records = 0
    chunk = 20_000
    for start in range(0, residents, chunk):
        rows: dict[Any, list[dict[str, Any]]] = {
            Resident: [],
            LabResult: [],
            Vaccination: [],
            Declaration: [],
            TravelSegment: [],
            QuarantineOrder: [],
        }
        for index in range(start, min(start + chunk, residents)):
            rid = index + 1
            number, born = document_of(index)
            rows[Resident].append(
                {
                    "id": rid,
                    "doc_kind": "cn-id",
                    "doc_country": "",
                    **personal_values(number, "居民", born),
                    "birth_date": born,
                    "region_code": number[:6],
                    "street": None,
                    "identity_state": "pending" if rng.random() < 0.01 else "confirmed",
                    "identity_confirmed_at": now - timedelta(days=30),
                    "registered_at": now - timedelta(days=30),
                }
            )
            common = {
                "department": "health",
                "content_hash": "x",
                "import_id": import_id,
            }
            for test in range(rng.choice((2, 3, 3, 4))):
                rows[LabResult].append(
                    {
                        **common,
                        "resident_id": rid,
                        "source_id": f"t{rid}-{test}",
                        "sampled_at": now - timedelta(hours=rng.randrange(1, 24 * 20)),
                        "reported_at": None,
                        "method": "pcr",
                        "result": "positive" if rng.random() < 0.002 else "negative",
                        "lab": None,
                    }
                )
            for dose in range(rng.choice((0, 1, 2, 2, 3))):
                rows[Vaccination].append(
                    {
                        **common,
                        "resident_id": rid,
                        "source_id": f"v{rid}-{dose}",
                        "administered_at": now - timedelta(days=400 - 60 * dose),
                        "product": "Sinovac",
                        "dose_number": dose + 1,
                    }
                )
            if rng.random() < 0.1:
                rows[Declaration].append(
                    {
                        **common,
                        "department": "resident",
                        "resident_id": rid,
                        "source_id": f"d{rid}",
                        "declared_at": now - timedelta(hours=rng.randrange(1, 48)),
                        "fever": rng.random() < 0.05,
                        "respiratory": False,
                        "visited_code": None,
                        "visited_place": None,
                        "visited_from": None,
                        "visited_to": None,
                    }
                )
            if rng.random() < 0.05:
                dep = now - timedelta(days=rng.randrange(1, 10))
                rows[TravelSegment].append(
                    {
                        **common,
                        "department": "railway",
                        "resident_id": rid,
                        "source_id": f"r{rid}",
                        "mode": "rail",
                        "carrier": "CR",
                        "service_number": "G572",
                        "service_date": dep.date(),
                        "carriage": "05",
                        "seat": "12F",
                        "dep_station": "武汉",
                        "dep_code": "420106" if rng.random() < 0.5 else "110105",
                        "dep_at": dep,
                        "arr_station": "西安北",
                        "arr_code": "610112",
                        "arr_at": dep + timedelta(hours=5),
                        "stops": [{"station": "郑州东", "code": "410184"}],
                    }
                )
            if rng.random() < 0.003:
                rows[QuarantineOrder].append(
                    {
                        **common,
                        "resident_id": rid,
                        "source_id": f"o{rid}",
                        "kind": "home-observation",
                        "starts_at": now - timedelta(days=2),
                        "ends_at": now + timedelta(days=5),
                    }
                )
        with engine.begin() as connection:
            for model, batch in rows.items():
                if batch:
                    connection.execute(sa.insert(model), batch)
                    if model is not Resident:
                        records += len(batch)
    return records


@dataclass
class SparkFigures:
    """The same full recolour as a Spark job in local mode, on the same data."""

    master: str
    residents: int
    export_seconds: float
    job_seconds: float
    import_seconds: float
    written: int

    @property
    def seconds(self) -> float:
        return self.export_seconds + self.job_seconds + self.import_seconds


@dataclass
class Figures:
    backend: str
    residents: int
    seconds: float
    peak_mb: float
    baseline_rate: float
    import_seconds: float = 0.0
    import_changed: int = 0
    spark: SparkFigures | None = None

    @property
    def rate(self) -> float:
        return self.residents / self.seconds if self.seconds else 0.0


def _child_recolor(url: str, now: datetime, queue: Any) -> None:
    configure(get_settings().log_format, logging.WARNING)
    engine = make_engine(url)
    report = recolor_all(engine, now)
    # The job's own process and, once the pool has been joined, the largest
    # of its worker processes; each is a separate address space, so the
    # figure that matters for a machine is their sum.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cores = os.cpu_count() or 1
    queue.put((report.residents, report.seconds, (own + workers * cores) / 1024))


def _run_in_child(url: str, now: datetime) -> tuple[int, float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child_recolor, args=(url, now, queue))
    process.start()
    result = queue.get()
    process.join()
    return result  # type: ignore[no-any-return]


def plain_loop_rate(engine: Engine, now: datetime, sample: int) -> float:
    """Residents per second of the same recolour done one resident at a time."""
    rule_set = active_rule_set()
    with engine.connect() as connection:
        areas = load_areas(connection, now)
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        connection = session.connection()
        for rid in range(1, sample + 1):
            resident = session.get(Resident, rid)
            if resident is None:
                continue
            records = ResidentRecords(
                rid,
                resident.identity_state,
                resident.doc_kind,
                resident.region_code,
                resident.birth_date,
            )
            for name, query in _RECORD_QUERIES.items():
                column = query.selected_columns[0]
                getattr(records, name).extend(
                    connection.execute(query.where(column == rid)).all()
                )
            result = evaluate(rule_set, build_facts(records, areas, now), now)
            status = session.get(Status, rid) or Status(resident_id=rid)
            status.colour = result.colour
            status.reasons = result.reasons
            status.as_of = now
            status.changes_at = result.changes_at
            status.changes_to = result.changes_to
            status.recheck_at = result.recheck_at
            status.rule_set = rule_set.label
            session.add(status)
            session.flush()
    return sample / (time.perf_counter() - started)


def _lab_file(path: Path, residents: int, count: int, now: datetime) -> Path:
    rng = random.Random(5)
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["record_id", "doc_kind", "doc_number", "sampled_at", "method", "result"]
        )
        for index in rng.sample(range(residents), count):
            number = document_of(index)[0]
            writer.writerow(
                [
                    f"bench-new-{index}",
                    "cn-id",
                    number,
                    (local - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "pcr",
                    "positive" if rng.random() < 0.01 else "negative",
                ]
            )
    return path


def spark_recolor(
    console: Console, engine: Engine, now: datetime, spark: Any, master: str
) -> SparkFigures:
    """Time the Spark recolour's three steps on a database that the forked
    pool has just recoloured at ``now``: every resident is evaluated again,
    and since the statuses are already right, none should be written."""
    from healthcode.status.spark import export_recolor, import_recolor, run_recolor

    with tempfile.TemporaryDirectory() as folder:
        snapshot, result = f"{folder}/snapshot", f"{folder}/result"
        started = time.perf_counter()
        with console.status("Spark: writing the snapshot"):
            export_recolor(engine, snapshot, now)
        exported = time.perf_counter()
        summary = run_recolor(spark, snapshot, result, console=console)
        ran = time.perf_counter()
        with console.status("Spark: importing the result"):
            report = import_recolor(engine, snapshot, result)
        done = time.perf_counter()
    return SparkFigures(
        master,
        summary["residents"],
        exported - started,
        ran - exported,
        done - ran,
        report.written,
    )


def run_backend(
    console: Console,
    backend: str,
    url: str,
    residents: int,
    now: datetime,
    spark: tuple[Any, str] | None = None,
) -> Figures:
    engine = make_engine(url)
    migrate(engine)
    with console.status(f"{backend}: building {residents:,} residents"):
        started = time.perf_counter()
        records = build_population(engine, residents, now)
    console.print(
        f"{backend}: {residents:,} residents, {records:,} records"
        f" ({records / residents:.1f} each)"
        f" built in {time.perf_counter() - started:.1f} s"
    )
    with console.status(f"{backend}: full recolour"):
        count, seconds, peak = _run_in_child(url, now)
    with console.status(f"{backend}: plain per-resident loop on a sample"):
        baseline = plain_loop_rate(engine, now, min(BASELINE_SAMPLE, residents))
    figures = Figures(backend, count, seconds, peak, baseline)
    if spark is not None:
        figures.spark = spark_recolor(console, engine, now, *spark)
    figures.import_seconds, figures.import_changed = _timed_import(
        engine, residents, now
    )
    engine.dispose()
    return figures


def _timed_import(engine: Engine, residents: int, now: datetime) -> tuple[float, int]:
    from healthcode.feeds.services import import_feed

    with tempfile.TemporaryDirectory() as folder:
        path = _lab_file(
            Path(folder) / "lab-results.csv", residents, min(10_000, residents), now
        )
        started = time.perf_counter()
        report = import_feed(
            engine,
            "lab-results",
            path,
            now=now,
            zone=ZoneInfo("Asia/Shanghai"),
            future_skew=timedelta(minutes=5),
            recolor=recolor_residents,
        )
        elapsed = time.perf_counter() - started
    if not report.committed or report.rejected:
        raise RuntimeError(f"bench import refused: {report.errors[:3]}")
    return elapsed, report.statuses_changed


def _iter_backends(
    console: Console, sqlite_path: Path, postgres_url: str
) -> Iterator[tuple[str, str]]:
    yield "sqlite", f"sqlite:///{sqlite_path}"
    if not postgres_reachable(postgres_url):
        console.print(
            f"[yellow]PostgreSQL at {sa.make_url(postgres_url).host} is not"
            " reachable; its figures are not measured.[/yellow]"
        )
        return
    with throwaway_postgres(postgres_url) as url:
        yield "postgresql", url


def _spark_lines() -> list[tuple[str, Callable[[Figures], str]]]:
    def spark(shown: Callable[[SparkFigures], str]) -> Callable[[Figures], str]:
        return lambda f: "-" if f.spark is None else shown(f.spark)

    return [
        ("Spark: master", spark(lambda s: s.master)),
        ("Spark: snapshot export, s", spark(lambda s: f"{s.export_seconds:.2f}")),
        ("Spark: job, s", spark(lambda s: f"{s.job_seconds:.2f}")),
        ("Spark: import, s", spark(lambda s: f"{s.import_seconds:.2f}")),
        (
            "Spark: all three steps, residents/s",
            spark(lambda s: f"{s.residents / s.seconds:,.0f}"),
        ),
        (
            "Spark: ratio to the forked pool",
            lambda f: (
                "-"
                if f.spark is None
                else f"{(f.spark.residents / f.spark.seconds) / f.rate:.2f}x"
            ),
        ),
        (
            "Spark: statuses it rewrote (exact: 0)",
            spark(lambda s: f"{s.written:,}"),
        ),
    ]


def bench_recolor_command(
    residents: Annotated[int, typer.Option(help="Population size.")] = 200_000,
    postgres_url: Annotated[
        str,
        typer.Option(
            help="PostgreSQL server to measure on, in a database the bench"
            " creates and drops."
        ),
    ] = DEFAULT_POSTGRES,
    spark: Annotated[
        bool,
        typer.Option(
            "--spark",
            help="Also time the Spark recolour (local mode) on the same data.",
        ),
    ] = False,
    spark_master: Annotated[
        str, typer.Option(help="Spark master for --spark.")
    ] = "local[2]",
) -> None:
    """Residents per second for a full recolour, beside a plain per-resident loop."""
    console = Console()
    # Figures, not log lines, are what this command prints.
    configure(get_settings().log_format, logging.WARNING)
    now = datetime.now(UTC).replace(microsecond=0)
    session = None
    if spark:
        from healthcode.spark.session import spark_session

        with console.status(f"starting Spark on {spark_master}"):
            started = time.perf_counter()
            session = spark_session(spark_master, app_name="healthcode-bench")
        console.print(
            f"Spark session on {spark_master} started in"
            f" {time.perf_counter() - started:.1f} s (not counted below)"
        )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for backend, url in _iter_backends(
            console, Path(folder) / "bench.db", postgres_url
        ):
            rows.append(
                run_backend(
                    console,
                    backend,
                    url,
                    residents,
                    now,
                    None if session is None else (session, spark_master),
                )
            )
    if session is not None:
        session.stop()
    table = Table("figure", *(fig.backend for fig in rows), title="recolour benchmark")
    lines = [
        ("residents", lambda f: f"{f.residents:,}"),
        ("full recolour, seconds", lambda f: f"{f.seconds:.2f}"),
        ("full recolour, residents/s", lambda f: f"{f.rate:,.0f}"),
        ("plain per-resident loop, residents/s", lambda f: f"{f.baseline_rate:,.0f}"),
        (
            "ratio, batch to plain loop",
            lambda f: f"{f.rate / f.baseline_rate:.1f}x" if f.baseline_rate else "-",
        ),
        ("peak memory, MB (job + workers)", lambda f: f"{f.peak_mb:,.0f}"),
        (
            "10,000 new lab results: import to statuses, s",
            lambda f: f"{f.import_seconds:.2f}",
        ),
        ("colours changed by them", lambda f: f"{f.import_changed:,}"),
    ]
    if spark:
        lines += _spark_lines()
    for label, shown in lines:
        table.add_row(label, *(shown(fig) for fig in rows))
    console.print(table)
    if spark:
        console.print(
            "The Spark figures are local mode on this machine's cores: the same"
            " work as the forked pool plus writing and reading the snapshot and"
            " Spark's own overhead, so slower here; Spark pays where executors"
            " on many machines share the evaluation."
        )
    for fig in rows:
        verdicts = [
            ("≥ 30,000 residents/s", fig.rate >= 30_000),
            ("peak < 1,024 MB", fig.peak_mb < 1024),
            ("new results in statuses within 5 s", fig.import_seconds <= 5),
        ]
        console.print(
            f"{fig.backend}: "
            + "; ".join(
                f"{label} {'[green]met[/green]' if ok else '[red]NOT met[/red]'}"
                for label, ok in verdicts
            )
        )
