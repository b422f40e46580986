"""``healthcode import``: exit codes, the printed report, options."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from healthcode.config import get_settings
from healthcode.feeds import cli
from healthcode.feeds.cli import FEED_KINDS, import_command
from healthcode.feeds.models import LabResult

from .conftest import EXAMPLES, LI, ZHANG, rows

Writer = Callable[[str, str], Path]
LAB_HEADER = "record_id,doc_number,sampled_at,method,result\n"


@pytest.fixture
def invoke(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    """Run ``healthcode import ...`` against the test's database."""
    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    get_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The command line, as the package registers it."""

    app.command("import")(import_command)
    runner = CliRunner()

    def run(*arguments: str) -> Result:
        return runner.invoke(app, ["import", *arguments], env={"COLUMNS": "200"})

    yield run
    get_settings.cache_clear()


def test_feed_kinds_are_exposed() -> None:
    assert "lab-results" in FEED_KINDS
    assert len(FEED_KINDS) == 8


def test_good_file_exits_0_with_the_counts(invoke: Callable[..., Result]) -> None:
    result = invoke("identities", str(EXAMPLES / "identities.csv"))

    assert result.exit_code == 0, result.output
    assert "identities from public-security: identities.csv" in result.output
    assert "Committed as import 1 (all-or-nothing)." in result.output
    for heading in ("read", "imported", "updated", "unchanged", "rejected"):
        assert heading in result.output
    assert "statuses changed" in result.output


def test_refused_file_exits_1_and_lists_the_rejected_rows(
    invoke: Callable[..., Result], write: Writer, engine: Engine
) -> None:
    invoke("identities", str(EXAMPLES / "identities.csv"))
    path = write(
        "labs.csv",
        LAB_HEADER
        + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-2,{LI},2099-03-09T08:00:00,pcr,negative\n",
    )

    result = invoke("lab-results", str(path))

    assert result.exit_code == 1
    assert "Refused: nothing was written." in result.output
    assert "labs.csv" in result.output
    assert "sampled_at" in result.output
    assert "after the import time" in result.output
    assert LI not in result.output
    assert rows(engine, "SELECT count(*) FROM lab_results") == [(0,)]


def test_skip_bad_exits_0_and_still_lists_the_rejected_rows(
    invoke: Callable[..., Result], write: Writer, engine: Engine
) -> None:
    invoke("identities", str(EXAMPLES / "identities.csv"))
    path = write(
        "labs.csv",
        LAB_HEADER
        + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-2,{LI},2026-03-09T08:00:00,pcr,[maybe]\n",
    )

    result = invoke("lab-results", str(path), "--skip-bad")

    assert result.exit_code == 0, result.output
    assert "Committed as import 2 (skip-bad)." in result.output
    # The brackets are printed as they are, not read as console markup.
    assert "The value '[maybe]' is not one of: negative, positive." in result.output
    assert rows(engine, "SELECT source_id FROM lab_results") == [("L-1",)]


def test_zone_option_reads_naive_times(
    invoke: Callable[..., Result], write: Writer, engine: Engine
) -> None:
    invoke("identities", str(EXAMPLES / "identities.csv"))
    path = write(
        "labs.csv", LAB_HEADER + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
    )

    result = invoke("lab-results", str(path), "--zone", "UTC")

    assert result.exit_code == 0, result.output
    with engine.connect() as connection:
        stored = connection.execute(sa.select(LabResult.sampled_at)).scalar_one()
    assert stored == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def test_department_option_names_the_sender(
    invoke: Callable[..., Result], engine: Engine
) -> None:
    invoke("identities", str(EXAMPLES / "identities.csv"))

    result = invoke(
        "lab-results", str(EXAMPLES / "lab-results.csv"), "--department", "lab-xian-3"
    )

    assert result.exit_code == 0, result.output
    assert "lab-results from lab-xian-3" in result.output
    assert rows(engine, "SELECT DISTINCT department FROM lab_results") == [
        ("lab-xian-3",)
    ]


def test_progress_bar_path_imports_the_same(
    invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "PROGRESS_FROM_BYTES", 0)

    result = invoke("identities", str(EXAMPLES / "identities.ndjson"))

    assert result.exit_code == 0, result.output
    assert "Committed as import 1" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("tests", "x.csv"), "'tests' is not a feed kind; choose one of identities"),
        (
            ("lab-results", "labs.csv", "--zone", "Mars/Olympus"),
            "'Mars/Olympus' is not",
        ),
    ],
)
def test_usage_mistakes_exit_2(
    invoke: Callable[..., Result],
    write: Writer,
    arguments: tuple[str, ...],
    message: str,
) -> None:
    path = write("labs.csv", LAB_HEADER)
    arguments = tuple(str(path) if a == "labs.csv" else a for a in arguments)

    result = invoke(*arguments)

    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_unknown_file_format_exits_1(
    invoke: Callable[..., Result], write: Writer
) -> None:
    path = write("labs.txt", LAB_HEADER)

    result = invoke("lab-results", str(path))

    assert result.exit_code == 1
    assert "labs.txt does not end in .csv, .ndjson or .jsonl" in result.output
