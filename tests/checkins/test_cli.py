"""``healthcode trace`` and a small ``healthcode bench tracing``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import typer
from rich.console import Console
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from healthcode.checkins.bench import BenchSize, print_figures, run_bench
from healthcode.checkins.cli import trace_command
from healthcode.config import get_settings

from .support import NOW, World, at


@pytest.fixture
def invoke(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    """Run ``healthcode trace ...`` against the test's database."""
    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    get_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The command line, as the package registers it."""

    app.command("trace")(trace_command)
    runner = CliRunner()

    def run(*arguments: str) -> Result:
        return runner.invoke(app, ["trace", *arguments], env={"COLUMNS": "200"})

    yield run
    get_settings.cache_clear()


@pytest.fixture
def traced_case(world: World) -> World:
    case, contact, other = world.residents(3)
    venue = world.venue("restaurant", "Cafe")
    world.visit(case, venue, at(9, 10, 0), at(9, 11, 0))
    world.visit(contact, venue, at(9, 10, 30), at(9, 12, 0))
    world.visit(other, venue, at(9, 10, 45), at(9, 11, 15))
    world.case(case, onset=at(9, 20, 0), diagnosed=at(10, 8, 0))
    return world


def test_trace_prints_each_case_and_writes_once(invoke, traced_case):
    now = NOW.isoformat()

    first = invoke("--now", now)
    again = invoke("--now", now)

    assert first.exit_code == 0, first.output
    assert "exposures by case" in first.output
    assert "health REC-" in first.output
    assert "onset" in first.output
    assert (
        "1 cases, 2 exposures found, 2 written, 2 residents recoloured,"
        " 2 changed colour"
    ) in first.output
    assert "2 exposures found, 0 written, 0 residents recoloured" in again.output
    assert traced_case.count("exposures") == 2


def test_a_dry_run_writes_nothing(invoke, traced_case):
    result = invoke("--now", NOW.isoformat(), "--dry-run")

    assert result.exit_code == 0, result.output
    assert "2 exposures found; nothing written (dry run)" in result.output
    assert traced_case.count("exposures") == 0


def test_the_decay_can_be_set_on_the_command_line(invoke, traced_case):
    result = invoke("--now", NOW.isoformat(), "--decay-minutes", "0")

    assert result.exit_code == 0, result.output
    assert "2 exposures found" in result.output
    assert traced_case.count("exposures") == 2


def test_an_unknown_case_record_is_refused(invoke, traced_case):
    result = invoke("--case", "CASE-NOPE", "--now", NOW.isoformat())

    assert result.exit_code == 2
    assert "No case record has the id CASE-NOPE." in result.output
    assert traced_case.count("exposures") == 0


def test_a_clock_without_an_offset_is_refused(invoke):
    result = invoke("--now", "2026-03-10T12:00:00")

    assert result.exit_code == 2
    assert "has no UTC offset" in result.output


def test_a_small_bench_agrees_with_its_reference(tmp_path):
    console = Console(file=(tmp_path / "bench.txt").open("w"), width=120)
    size = BenchSize(
        residents=3000,
        venues=300,
        checkins=30_000,
        cases=12,
        trains_per_day=4,
        flights_per_day=3,
        rail_passengers=1500,
        air_passengers=900,
        sample=4,
    )

    [figures] = run_bench(console, size, backends=("sqlite",))
    met = print_figures(console, [figures])
    console.file.close()

    assert figures.sample_agrees, figures.mismatches
    assert figures.sample_exposures > 0
    assert figures.found == figures.written > 0
    assert figures.venue_found > 0 and figures.travel_found > 0
    assert figures.rerun_written == 0
    assert met
    assert "tracing benchmark" in (tmp_path / "bench.txt").read_text()
