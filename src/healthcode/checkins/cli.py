"""``healthcode trace`` and ``healthcode bench tracing``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.checkins.tracing import TraceReport, TracingPolicy, trace
from healthcode.config import get_settings
from healthcode.db import open_database
from healthcode.errors import HealthcodeError
from healthcode.feeds.models import CaseReport


def _clock(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time.") from None
    if moment.utcoffset() is None:
        raise typer.BadParameter(f"{text!r} has no UTC offset.")
    return moment


@contextmanager
def _disposed(engine: Engine) -> Iterator[None]:
    # The command's engine lives as long as the command; its pooled
    # connections are closed here rather than left to the collector.
    try:
        yield
    finally:
        engine.dispose()


def _local(moment: datetime) -> str:
    return moment.astimezone(get_settings().tz).strftime("%m-%d %H:%M")


def print_trace(console: Console, report: TraceReport, *, written: bool = True) -> None:
    """The cases traced, what was found for each, and the totals."""
    table = Table(
        "case record",
        "infectious window",
        "from",
        "at venues",
        "on journeys",
        "new",
        title="exposures by case",
    )
    for case in report.cases:
        table.add_row(
            f"{case.department} {case.source_id}",
            f"{_local(case.window.start)} - {_local(case.window.end)}",
            case.window.basis,
            str(case.venue_found),
            str(case.travel_found),
            str(case.written) if written else "-",
        )
    console.print(table)
    if written:
        console.print(
            f"{len(report.cases)} cases, {report.found} exposures found,"
            f" {report.written} written, {len(report.exposed_residents)} residents"
            f" recoloured, {report.statuses_changed} changed colour"
            f" ({report.find_seconds + report.write_seconds:.2f} s to find and write)"
        )
    else:
        console.print(
            f"{len(report.cases)} cases, {report.found} exposures found;"
            " nothing written (dry run)"
        )


def trace_command(
    case: Annotated[
        list[str] | None,
        typer.Option(
            "--case", help="Trace only this case record id (repeat for more)."
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(help="The tracing clock, ISO 8601 with offset (default: now)."),
    ] = None,
    decay_minutes: Annotated[
        int | None,
        typer.Option(help="Minutes a venue stays infectious after a case left."),
    ] = None,
    seat_rows: Annotated[
        int | None,
        typer.Option(help="Seat-row distance that counts; -1 for the whole carriage."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Find and show, write nothing.")
    ] = False,
) -> None:
    """Find who shared a venue, carriage or flight with each reported case.

    New exposures are written and the exposed residents recoloured in one
    transaction; tracing the same records again adds nothing.
    """
    console = Console()
    clock = _clock(now)
    try:
        policy = TracingPolicy.from_settings()
        if decay_minutes is not None:
            policy = replace(policy, decay=timedelta(minutes=decay_minutes))
        if seat_rows is not None:
            policy = replace(policy, seat_rows=None if seat_rows < 0 else seat_rows)
        engine = open_database()
        with _disposed(engine), Session(engine) as session:
            transaction = session.begin()
            case_ids = None
            if case:
                found = dict(
                    session.execute(
                        sa.select(CaseReport.source_id, CaseReport.id).where(
                            CaseReport.source_id.in_(case)
                        )
                    ).all()
                )
                missing = sorted(set(case) - set(found))
                if missing:
                    raise typer.BadParameter(
                        f"No case record has the id {', '.join(missing)}.",
                        param_hint="--case",
                    )
                case_ids = list(found.values())
            if dry_run:
                report = trace(
                    session,
                    now=clock,
                    policy=policy,
                    case_ids=case_ids,
                    recolor=lambda *_: 0,
                )
                transaction.rollback()
            else:
                report = trace(session, now=clock, policy=policy, case_ids=case_ids)
                transaction.commit()
    except HealthcodeError as exc:
        console.print(f"[red]error[/red] {exc.code}: {exc}")
        raise typer.Exit(1) from None
    print_trace(console, report, written=not dry_run)


def bench_tracing_command(
    checkins: Annotated[int, typer.Option(help="Check-ins to generate.")] = 10_000_000,
    venues: Annotated[int, typer.Option(help="Venues.")] = 100_000,
    residents: Annotated[int, typer.Option(help="Residents.")] = 1_000_000,
    days: Annotated[int, typer.Option(help="Days the check-ins span.")] = 14,
    cases: Annotated[int, typer.Option(help="Reported cases.")] = 100,
    sample: Annotated[
        int, typer.Option(help="Cases checked against the reference.")
    ] = 10,
    backend: Annotated[
        list[str] | None,
        typer.Option(help="sqlite or postgresql (repeat for both; default both)."),
    ] = None,
    postgres_url: Annotated[
        str,
        typer.Option(help="PostgreSQL server; a throwaway database is made on it."),
    ] = "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    spark: Annotated[
        bool,
        typer.Option(
            "--spark", help="Also time the Spark trace (local mode) on the same data."
        ),
    ] = False,
    spark_master: Annotated[str, typer.Option(help="Spark master for --spark.")] = (
        "local[2]"
    ),
) -> None:
    """Trace a generated fortnight of a city's check-ins and journeys."""
    from healthcode.checkins.bench import BenchSize, print_figures, run_bench

    console = Console()
    chosen = tuple(backend or ("sqlite", "postgresql"))
    unknown = sorted(set(chosen) - {"sqlite", "postgresql"})
    if unknown:
        raise typer.BadParameter(
            f"Unknown backend {', '.join(unknown)}.", param_hint="--backend"
        )
    size = BenchSize(
        residents=residents,
        venues=venues,
        checkins=checkins,
        days=days,
        cases=cases,
        sample=sample,
    )
    session = None
    if spark:
        from healthcode.spark.session import spark_session

        with console.status(f"starting Spark on {spark_master}"):
            session = spark_session(spark_master, app_name="healthcode-bench")
    try:
        results = run_bench(
            console,
            size,
            backends=chosen,
            postgres_url=postgres_url,
            spark=None if session is None else (session, spark_master),
        )
    finally:
        if session is not None:
            session.stop()
    met = print_figures(console, results)
    if spark:
        console.print(
            "The Spark figures are local mode on this machine's cores: the same"
            " matching plus writing and reading the snapshot and Spark's own"
            " overhead, so slower here than the single process."
        )
    if any(not fig.sample_agrees or fig.rerun_written != 0 for fig in results):
        raise typer.Exit(1)
    if not met:
        console.print("[yellow]A time or memory target was missed.[/yellow]")
