"""``healthcode demo``: the main job on a synthetic city, end to end."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from healthcode.config import get_settings
from healthcode.demo.city import MIN_RESIDENTS
from healthcode.demo.run import DEFAULT_DIRECTORY, run_demo
from healthcode.errors import HealthcodeError
from healthcode.log import configure


def demo_command(
    residents: Annotated[
        int,
        typer.Option(
            min=MIN_RESIDENTS, help="How many residents the synthetic city has."
        ),
    ] = 20000,
    directory: Annotated[
        Path,
        typer.Option(
            file_okay=False,
            help="Where the feeds are written, and the SQLite database unless"
            " --database-url is given.",
        ),
    ] = DEFAULT_DIRECTORY,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="An empty database to use instead of a fresh SQLite file in the"
            " directory, e.g. postgresql+psycopg://postgres@127.0.0.1/demo.",
        ),
    ] = None,
    now: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"],
            help="The moment of day two, with its offset (default: now);"
            " day one is 24 hours earlier.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the city; the same seed, the same city.")
    ] = 7,
) -> None:
    """Build a synthetic Xi'an, import two days of its feeds, show the colours."""
    # The demo's own tables say what the importer and the recolour job did;
    # their per-step log lines would only interleave with them.
    configure(get_settings().log_format, level=logging.WARNING)
    console = Console()
    try:
        result = run_demo(
            residents=residents,
            directory=directory,
            database_url=database_url,
            now=now,
            seed=seed,
            console=console,
        )
    except HealthcodeError as exc:
        console.print(f"[red]error[/red] {exc.code}: {exc}")
        raise typer.Exit(1) from None
    if not result.ok:
        raise typer.Exit(1)
