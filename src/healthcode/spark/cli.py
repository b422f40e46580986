"""``healthcode spark``: the full recolour and contact tracing on Spark.

``recolor`` and ``trace`` run all three steps from one machine: write the
snapshot, run the job on ``--master`` (local mode by default), import the
results. ``export`` and ``import`` are the first and last steps alone, for
a cluster where the job in between is started with ``spark-submit`` (see
:mod:`healthcode.spark.submit` and docs/scaling.md).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from healthcode.checkins.cli import _clock
from healthcode.db import open_database
from healthcode.spark.files import join

spark_app = typer.Typer(
    no_args_is_help=True,
    help="The full recolour and contact tracing as Spark jobs.",
)


class Job(StrEnum):
    recolor = "recolor"
    trace = "trace"


MasterOption = Annotated[
    str,
    typer.Option(help="Spark master: local[N], spark://host:port, yarn, k8s://..."),
]
WorkOption = Annotated[
    str | None,
    typer.Option(
        help="Where the snapshot and results go (a folder or a URI that the"
        " driver and every executor read); a temporary folder, removed"
        " afterwards, when not given."
    ),
]
DriverHostOption = Annotated[
    str,
    typer.Option(
        help="Address executors reach the driver at; local masters always use"
        " the loopback address."
    ),
]
PartitionsOption = Annotated[
    int | None, typer.Option(help="Partitions to spread the work over.")
]
NowOption = Annotated[
    str | None,
    typer.Option(help="The job's clock, ISO 8601 with offset (default: now)."),
]


@contextmanager
def _work(location: str | None) -> Iterator[str]:
    if location is not None:
        yield location
        return
    folder = tempfile.mkdtemp(prefix="healthcode-spark-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _export_bar(console: Console, label: str) -> Iterator[Callable[..., None]]:
    with Progress(
        "{task.description:<32}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, Any] = {}

        def advance(*args: Any) -> None:
            name, done, total = args if len(args) == 3 else (label, *args)
            if name not in tasks:
                tasks[name] = bar.add_task(f"snapshot: {name}", total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield advance


def _session(master: str, driver_host: str) -> Any:
    from healthcode.spark.session import spark_session

    return spark_session(master, driver_host=driver_host)


@spark_app.command("recolor")
def recolor_command(
    master: MasterOption = "local[2]",
    work: WorkOption = None,
    now: NowOption = None,
    partitions: PartitionsOption = None,
    driver_host: DriverHostOption = "127.0.0.1",
) -> None:
    """Re-evaluate every resident on Spark; the same results as healthcode recolor."""
    from healthcode.status import spark as steps

    started = time.perf_counter()
    report = _all_steps(
        steps.JOB,
        (steps.export_recolor, steps.run_recolor, steps.import_recolor),
        "residents",
        master,
        work,
        now,
        partitions,
        driver_host,
    )
    report.seconds = time.perf_counter() - started
    Console().print(
        f"{report.residents} residents evaluated on {master},"
        f" {report.written} statuses written, {report.colour_changes} changed"
        f" colour, {report.rule_failures} rule failures, {report.seconds:.2f} s"
    )


@spark_app.command("trace")
def trace_command(
    master: MasterOption = "local[2]",
    work: WorkOption = None,
    now: NowOption = None,
    partitions: PartitionsOption = None,
    driver_host: DriverHostOption = "127.0.0.1",
) -> None:
    """Trace every case on Spark; the same exposures as healthcode trace."""
    from healthcode.checkins import spark as steps

    started = time.perf_counter()
    report = _all_steps(
        steps.JOB,
        (steps.export_trace, steps.run_trace, steps.import_trace),
        "visits",
        master,
        work,
        now,
        partitions,
        driver_host,
    )
    Console().print(
        f"{len(report.cases)} cases traced on {master}: {report.found} exposures"
        f" found, {report.written} new, {report.statuses_changed} colours changed,"
        f" {time.perf_counter() - started:.2f} s"
    )


def _all_steps(
    job: str,
    steps: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    exporting: str,
    master: str,
    work: str | None,
    clock: str | None,
    partitions: int | None,
    driver_host: str,
) -> Any:
    """Export, run on ``master`` and import, with a bar for each step.

    The export's bar is closed before the job's opens, so the bars stand in
    the order their steps ran.
    """
    export, run, load = steps
    console = Console()
    now = _clock(clock)
    engine = open_database(must_exist=True)
    try:
        with _work(work) as folder:
            snapshot = join(folder, job, "snapshot")
            result = join(folder, job, "result")
            spark = _session(master, driver_host)
            with _export_bar(console, exporting) as exported:
                export(engine, snapshot, now, progress=exported)
            run(spark, snapshot, result, partitions=partitions, console=console)
            return load(engine, snapshot, result)
    finally:
        engine.dispose()


@spark_app.command("export")
def export_command(
    job: Annotated[Job, typer.Argument(help="Which job the snapshot is for.")],
    snapshot: Annotated[str, typer.Argument(help="Folder or URI to write it to.")],
    now: NowOption = None,
) -> None:
    """Write the snapshot a job reads (the first step, for spark-submit)."""
    console = Console()
    moment = _clock(now)
    engine = open_database(must_exist=True)
    try:
        if job is Job.recolor:
            from healthcode.status.spark import export_recolor

            with _export_bar(console, "residents") as exported:
                written = export_recolor(engine, snapshot, moment, progress=exported)
            console.print(
                f"snapshot of {written.residents} residents in {written.parts}"
                f" files at {snapshot}"
            )
        else:
            from healthcode.checkins.spark import export_trace

            with _export_bar(console, "visits") as exported:
                traced = export_trace(engine, snapshot, moment, progress=exported)
            console.print(
                f"snapshot of {traced.windows} case windows, {traced.visits}"
                f" visits and {traced.journeys} journeys at {snapshot}"
            )
    finally:
        engine.dispose()


@spark_app.command("import")
def import_command(
    job: Annotated[Job, typer.Argument(help="Which job made the result.")],
    snapshot: Annotated[str, typer.Argument(help="The snapshot the job read.")],
    result: Annotated[str, typer.Argument(help="The job's result.")],
) -> None:
    """Load a job's result into the database in one transaction (the last step)."""
    console = Console()
    engine = open_database(must_exist=True)
    try:
        if job is Job.recolor:
            from healthcode.status.spark import import_recolor

            report = import_recolor(engine, snapshot, result)
            console.print(
                f"{report.residents} residents evaluated, {report.written} statuses"
                f" written, {report.colour_changes} changed colour"
            )
        else:
            from healthcode.checkins.spark import import_trace

            traced = import_trace(engine, snapshot, result)
            _print_cases(console, traced)
    finally:
        engine.dispose()


def _print_cases(console: Console, report: Any) -> None:
    table = Table("case report", "at venues", "on journeys", "new", title="exposures")
    for case in report.cases:
        table.add_row(
            str(case.case_report_id),
            str(case.venue_found),
            str(case.travel_found),
            str(case.written),
        )
    console.print(table)
    console.print(
        f"{report.found} exposures, {report.written} new,"
        f" {report.statuses_changed} colours changed"
    )
