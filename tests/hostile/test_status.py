"""Hostile input to ``healthcode status``: errors are printed, never a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
import typer
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from healthcode.config import get_settings
from healthcode.db import open_database
from healthcode.identity.models import Resident
from healthcode.status.cli import status_command

ZHANG = "610113196702282566"


@pytest.fixture
def settings_reset() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_bad_documents_are_refused_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_reset: None
) -> None:
    monkeypatch.setenv("HEALTHCODE_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    app = typer.Typer()
    app.command()(status_command)
    runner = CliRunner()

    results = [
        runner.invoke(app, arguments)
        for arguments in (
            [ZHANG[:-1] + "7"],
            ["６１０１１３１９６７０２２８２５６６\u200b"],
            ["C01X00T47", "--kind", "passport"],
            ["C01X00T47", "--kind", "[/]"],
        )
    ]

    assert [result.exit_code for result in results] == [1, 1, 1, 1]
    assert [type(result.exception) for result in results] == [SystemExit] * 4
    assert all("invalid_document" in result.output for result in results)
    assert not any(ZHANG in result.output for result in results)


def test_an_error_message_with_brackets_is_printed_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings_reset: None
) -> None:
    document = json.loads(
        (resources.files("healthcode.rules") / "data" / "default.json").read_text(
            encoding="utf-8"
        )
    )
    document["rules"][0]["id"] = "[/]"
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(document), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = open_database(url)
    with Session(engine) as session, session.begin():
        # A resident without a status yet, so that showing one loads the rules.
        session.add(
            Resident(
                doc_kind="cn-id",
                doc_country="",
                doc_number=ZHANG,
                name="张晓明",
                identity_state="pending",
                registered_at=datetime(2026, 3, 1, tzinfo=UTC),
            )
        )
    engine.dispose()
    monkeypatch.setenv("HEALTHCODE_DATABASE_URL", url)
    monkeypatch.setenv("HEALTHCODE_RULE_SET", str(rules))
    app = typer.Typer()
    app.command()(status_command)

    result = CliRunner().invoke(app, [ZHANG])

    assert isinstance(result.exception, SystemExit)
    assert result.exit_code == 1
    assert "Rule number 1 has id '[/]'" in result.output
