"""``healthcode import KIND FILE``: bring one department feed file in.

The command is thin: it reads the settings, opens the database, hands the
file to :func:`healthcode.feeds.services.import_feed` with the colour engine
as its recolour step, and prints the report. It exits with status 1 when the
import was refused (all-or-nothing with bad rows, or an unusable file) and 0
otherwise, so that a sending department's script can tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine

from healthcode.errors import HealthcodeError
from healthcode.feeds.formats import FEED_KINDS
from healthcode.feeds.services import ImportReport, Recolor, import_feed

__all__ = ["FEED_KINDS", "import_command", "print_report"]

# Files above this size get a progress bar; smaller ones finish before a
# bar would be worth drawing.
PROGRESS_FROM_BYTES = 2_000_000
# Rejected rows shown in the terminal. A file with more bad rows than this
# has a systematic fault, and the first ones are enough to find it.
MAX_SHOWN_ERRORS = 200


def _check_kind(value: str) -> str:
    if value not in FEED_KINDS:
        raise typer.BadParameter(
            f"{value!r} is not a feed kind; choose one of {', '.join(FEED_KINDS)}."
        )
    return value


def _complete_kind(incomplete: str) -> list[str]:
    return [kind for kind in FEED_KINDS if kind.startswith(incomplete)]


def _recolor() -> Recolor | None:
    try:
        from healthcode.status.services import recolor_residents
    except ImportError:
        return None
    return recolor_residents


def import_command(
    kind: Annotated[
        str,
        typer.Argument(
            help=f"Feed kind: {', '.join(FEED_KINDS)}.",
            callback=_check_kind,
            autocompletion=_complete_kind,
            show_default=False,
        ),
    ],
    file: Annotated[
        Path,
        typer.Argument(
            help="The feed file, .csv or .ndjson.",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad",
            help="Write the good rows and report the bad ones, instead of"
            " refusing the whole file when one row is bad.",
        ),
    ] = False,
    department: Annotated[
        str | None,
        typer.Option(
            help="Sending department, when it is not the kind's usual one.",
            show_default=False,
        ),
    ] = None,
    zone: Annotated[
        str | None,
        typer.Option(
            help="Time zone of timestamps without an offset"
            " [default: HEALTHCODE_ZONE, Asia/Shanghai].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Import one department feed file in a single transaction."""
    from healthcode.config import get_settings
    from healthcode.db import open_database, utcnow

    console = Console()
    try:
        settings = get_settings()
        tz = _zone(zone or settings.zone)
        engine = open_database()
        try:
            report = _run(
                engine,
                kind,
                file,
                tz,
                settings.future_skew,
                skip_bad=skip_bad,
                department=department,
                now=utcnow(),
            )
        finally:
            engine.dispose()
    except HealthcodeError as exc:
        console.print(Text(str(exc), style="bold red"))
        raise typer.Exit(1) from None
    print_report(console, report)
    raise typer.Exit(0 if report.committed else 1)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(
            f"{name!r} is not a time zone name such as Asia/Shanghai.",
            param_hint="--zone",
        ) from None


def _run(
    engine: Engine,
    kind: str,
    file: Path,
    zone: ZoneInfo,
    future_skew: timedelta,
    *,
    skip_bad: bool,
    department: str | None,
    now: datetime,
) -> ImportReport:
    def run(progress: Callable[[int, int], None] | None) -> ImportReport:
        return import_feed(
            engine,
            kind,
            file,
            now=now,
            zone=zone,
            future_skew=future_skew,
            skip_bad=skip_bad,
            department=department,
            recolor=_recolor(),
            progress=progress,
        )

    size = file.stat().st_size
    if size < PROGRESS_FROM_BYTES:
        return run(None)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"Importing {file.name}", total=size)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return run(advance)


def print_report(console: Console, report: ImportReport) -> None:
    """Print the counts of an import and the rows it rejected."""
    counts = Table(
        title=Text(f"{report.kind} from {report.department}: {report.file_name}"),
        show_header=True,
    )
    for heading in (
        "read",
        "imported",
        "updated",
        "unchanged",
        "rejected",
        "statuses changed",
    ):
        counts.add_column(heading, justify="right")
    counts.add_row(
        *(
            str(value)
            for value in (
                report.read,
                report.imported,
                report.updated,
                report.unchanged,
                report.rejected,
                report.statuses_changed,
            )
        )
    )
    console.print(counts)
    if report.committed:
        console.print(
            Text(f"Committed as import {report.import_id} ({report.mode}).", "green")
        )
    else:
        console.print(
            Text(
                "Refused: nothing was written. Correct the rows below and send"
                " the file again, or import it with --skip-bad.",
                "bold red",
            )
        )
    if not report.errors:
        return
    rejected = Table(title="Rejected rows", show_header=True)
    for heading in ("file", "line", "field", "reason"):
        rejected.add_column(heading, justify="right" if heading == "line" else "left")
    # Cells are Text objects so that a bracket in a reason is printed as it
    # is rather than read as console markup.
    for error in report.errors[:MAX_SHOWN_ERRORS]:
        rejected.add_row(
            Text(report.file_name),
            Text(str(error.line)),
            Text(error.field or ""),
            Text(error.reason),
        )
    console.print(rejected)
    hidden = len(report.errors) - MAX_SHOWN_ERRORS
    if hidden > 0:
        console.print(Text(f"{hidden} more faults are not shown; correct these first."))
