"""Nothing personal in log lines or error messages.

Each scenario runs with production's JSON logs captured at INFO level and
everything else it prints captured too, then searches what was captured for
every identity number, phone number and name it used. None may appear. The
demo prints a few documents in full on purpose, in its "Try it" section, for
people to look up; that section alone is left out of the search.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
from rich.console import Console
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from healthcode.accounts.services import create_api_key
from healthcode.codes.cli import code_command
from healthcode.config import get_settings
from healthcode.demo.run import run_demo
from healthcode.feeds.cli import import_command
from healthcode.identity.documents import mod11_2_check
from healthcode.status.cli import register_command, status_command

from .support import (
    Clock,
    Outbox,
    json_logs,
    leaks,
    log_texts,
    service,
    sign_in,
    sign_in_official,
)

ZONE = ZoneInfo("Asia/Shanghai")
DEMO_NOW = datetime(2026, 3, 2, 10, 0, tzinfo=ZONE)


def _number(body: str) -> str:
    return body + mod11_2_check(body)


# The scenarios' people: numbers with valid check characters, names in
# several scripts, phones in the forms people type them.
ZHOU = _number("61011319800405123")
QIAN = _number("61011319920817456")
SUN = _number("61010419751111008")
STRANGER = _number("61011319880808321")
NAMES = {
    ZHOU: "周慧敏",
    QIAN: "\U00020164丽华",
    SUN: "阿依古丽·买买提",
    STRANGER: "Élodie Martin",
}
PHONES = ("13912345678", "+86 139 8765 4321", "+4915123456789")


# The demo.


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("demo")
    output = io.StringIO()
    console = Console(file=output, width=200, color_system=None)
    capture = pytest.MonkeyPatch()
    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr("sys.stdout", stdout)
    capture.setattr("sys.stderr", stderr)
    try:
        with json_logs() as lines:
            result = run_demo(
                residents=300,
                directory=directory,
                now=DEMO_NOW,
                seed=7,
                console=console,
            )
    finally:
        capture.undo()
    yield {
        "result": result,
        "lines": lines,
        "console": output.getvalue(),
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
        "directory": directory,
    }


def _feed_values(directory: Path) -> set[str]:
    """Every document number and name in the feeds the demo wrote."""
    values = set()
    for path in directory.glob("day-*/*.csv"):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                for column in ("doc_number", "name"):
                    if row.get(column):
                        values.add(row[column])
    return values


def _demo_values(run: dict[str, Any]) -> set[str]:
    values = _feed_values(run["directory"])
    for person in run["result"].city.people:
        values.update({person.doc_number, person.written_number, person.name})
    return values


def test_the_demo_ran_with_logs_and_planted_bad_rows(demo_run: dict) -> None:
    result = demo_run["result"]

    events = {line.split('"event": "')[1].split('"')[0] for line in demo_run["lines"]}

    assert result.ok, result.problems
    assert len(result.rejected) >= 4
    assert {"feed_imported", "resident_registered", "recolored_all"} <= events
    assert len(_demo_values(demo_run)) > 600


def test_the_demo_logs_no_number_or_name(demo_run: dict) -> None:
    texts = [("log", text) for text in log_texts(demo_run["lines"])]
    texts += [("stdout", demo_run["stdout"]), ("stderr", demo_run["stderr"])]

    found = leaks(texts, _demo_values(demo_run))

    assert found == []


def test_the_demo_reports_rejected_rows_without_their_values(demo_run: dict) -> None:
    result = demo_run["result"]
    texts = [
        (f"{feed.path.name} line {error.line}", f"{error.field} {error.reason}")
        for feed, error in result.rejected
    ]
    texts += [("problem", problem) for problem in result.problems]

    found = leaks(texts, _demo_values(demo_run))

    assert found == []


def test_the_demo_prints_documents_in_full_only_where_it_says_so(
    demo_run: dict,
) -> None:
    console = demo_run["console"]
    before, _, after = console.partition("Try it")
    people = demo_run["result"].city.people
    numbers = {p.doc_number for p in people} | {p.written_number for p in people}

    found = leaks([("report", before)], numbers | {p.name for p in people})

    assert after, "the demo's Try it section is there"
    assert found == []
    assert leaks([("try it", after)], numbers)


# The command line.


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Any]]:
    """Run commands as the package registers them, on a fresh SQLite file."""
    monkeypatch.setenv("HEALTHCODE_DATABASE_URL", f"sqlite:///{tmp_path / 'hc.db'}")
    monkeypatch.setenv("HEALTHCODE_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("HEALTHCODE_REGION", "610100")
    get_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The commands the scenarios use."""

    app.command("import")(import_command)
    app.command("status")(status_command)
    app.command("register")(register_command)
    app.command("code")(code_command)
    runner = CliRunner()
    outputs: list[tuple[str, str]] = []

    def run(*arguments: str) -> Any:
        result = runner.invoke(app, list(arguments), env={"COLUMNS": "200"})
        outputs.append((arguments[0], result.output))
        return result

    run.outputs = outputs  # type: ignore[attr-defined]
    yield run
    get_settings.cache_clear()


def _identities_with_bad_rows(folder: Path) -> Path:
    header = (
        "record_id,doc_kind,doc_number,doc_country,name,birth_date,region_code,"
        "street,outcome,confirmed_at\n"
    )
    good = "".join(
        f"PS-{index},cn-id,{number},,{NAMES[number]},,610113,,confirmed,"
        "2026-03-01T09:00:00\n"
        for index, number in enumerate((ZHOU, QIAN), start=1)
    )
    wrong_check = ZHOU[:17] + ("0" if ZHOU[17] != "0" else "1")
    bad = (
        # A wrong check character.
        f"PS-3,cn-id,{wrong_check},,{NAMES[ZHOU]},,610113,,confirmed,"
        "2026-03-01T09:00:00\n"
        # A column shifted by one: the name where the number belongs, the
        # number where the name belongs, a phone where the time belongs.
        f"PS-4,cn-id,{NAMES[SUN]},,{SUN},,610113,,confirmed,{PHONES[0]}\n"
        # A phone in the outcome, the number in the region.
        f"PS-5,cn-id,{SUN},,{NAMES[SUN]},,{SUN},,{PHONES[1]},2026-03-01T09:00:00\n"
        # A name in the birth date and the street.
        f"PS-6,cn-id,{STRANGER},,{NAMES[STRANGER]},{NAMES[STRANGER]},610113,"
        f"{NAMES[ZHOU]},confirmed,2026-03-01T09:00:00\n"
    )
    path = folder / "identities.csv"
    path.write_text(header + good + bad, encoding="utf-8")
    return path


def test_command_line_scenarios_print_and_log_no_personal_value(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    feed = _identities_with_bad_rows(tmp_path)

    with json_logs() as lines:
        imported = cli("import", "identities", str(feed), "--skip-bad")
        refused = cli("import", "identities", str(feed))
        cli("status", ZHOU)
        cli("status", QIAN, "--json")
        cli("status", STRANGER)
        cli("status", ZHOU[:17] + "Y")
        cli("register", SUN, NAMES[SUN])
        cli("register", SUN, NAMES[SUN])
        cli("register", ZHOU[:-1], NAMES[ZHOU])
        cli("register", STRANGER, "\u200b" + NAMES[STRANGER])
        coded = cli("code", ZHOU)
        cli("code", STRANGER)
    personal = {*NAMES, *NAMES.values(), *PHONES, ZHOU[:-1], ZHOU[:17] + "Y"}
    texts = [("log", text) for text in log_texts(lines)]
    texts += [(f"output of {name}", output) for name, output in cli.outputs]

    found = leaks(texts, personal)

    assert imported.exit_code == 0, imported.output
    assert "rejected" in imported.output
    assert refused.exit_code == 1
    assert coded.exit_code == 0, coded.output
    assert found == []


# The service.


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[tuple[Any, Outbox, Clock]]:
    with service(engine, tmp_path) as running:
        yield running


def test_service_scenarios_log_and_answer_no_personal_value(
    client: tuple[Any, Outbox, Clock], engine: Engine
) -> None:
    http, outbox, clock = client
    refusals: list[tuple[str, str]] = []

    def call(method: str, path: str, **options: Any) -> Any:
        answer = http.request(method, path, **options)
        if answer.status_code >= 400:
            refusals.append((f"{method} {path} {answer.status_code}", answer.text))
        return answer

    with json_logs() as lines:
        call("POST", "/v1/sign-in/code", json={"phone": "139123"})
        call("POST", "/v1/sign-in/code", json={"phone": NAMES[ZHOU]})
        first = sign_in(http, outbox, PHONES[0])
        second = sign_in(http, outbox, PHONES[1])
        call("POST", "/v1/sign-in/code", json={"phone": PHONES[2]})
        call("POST", "/v1/sign-in/code", json={"phone": PHONES[2]})
        for _ in range(3):
            call(
                "POST",
                "/v1/sign-in",
                json={"phone": PHONES[2], "code": "000000", "client": "app"},
            )
        registration = {"document": {"kind": "cn-id", "number": ZHOU}}
        call(
            "POST",
            "/v1/residents/me",
            json={**registration, "name": NAMES[ZHOU]},
            headers=first,
        )
        call(
            "POST",
            "/v1/residents/me",
            json={**registration, "name": NAMES[QIAN]},
            headers=second,
        )
        call(
            "POST",
            "/v1/residents/me",
            json={"document": {"kind": "cn-id", "number": ZHOU[:-1]}, "name": "x"},
            headers=second,
        )
        call(
            "POST",
            "/v1/residents/me",
            json={"document": {"kind": "cn-id", "number": QIAN}, "name": PHONES[0]},
            headers=second,
        )
        call("GET", "/v1/residents/me/status", headers=first)
        call("GET", "/v1/residents/me/code", headers=first)
        call("GET", "/v1/residents/me/code", headers=second)
        call(
            "POST",
            "/v1/residents/me/declarations",
            json={"fever": True, "respiratory": False},
            headers=first,
        )
        official = sign_in_official(
            engine, http, "searcher", "health-official", clock.now
        )
        for body in (
            {"name": NAMES[ZHOU], "purpose": "tracing a reported case"},
            {"document": {"kind": "cn-id", "number": ZHOU}, "purpose": "tracing"},
            {
                "document": {"kind": "cn-id", "number": STRANGER[:-1]},
                "purpose": "tracing a contact",
            },
        ):
            call("POST", "/v1/officials/search", json=body, headers=official)
        with Session(engine) as session, session.begin():
            _, key = create_api_key(session, "checkpoint", "gate-1", clock.now)
        for number in (ZHOU, STRANGER, STRANGER[:-1]):
            call(
                "POST",
                "/v1/checkpoints/lookup",
                json={"document": {"kind": "cn-id", "number": number}},
                headers={"X-API-Key": key},
            )
        for resident_id in (1, 99):
            call(
                "GET",
                f"/v1/officials/residents/{resident_id}",
                params={"purpose": "reviewing an appeal"},
                headers=official,
            )
    personal = {*NAMES, *NAMES.values(), *PHONES, ZHOU[:-1], STRANGER[:-1]}
    personal |= {phone.replace(" ", "") for phone in PHONES}
    personal |= {"+86" + PHONES[0], "139 8765 4321", "13987654321"}
    texts = [("log", text) for text in log_texts(lines)]

    found = leaks(texts + refusals, personal)

    assert len(refusals) >= 12
    assert sum('"event": "request"' in line for line in lines) >= 25
    assert found == []


# The search itself.


def test_a_name_written_as_json_escapes_is_found() -> None:
    line = '{"event": "oops", "name": "\\u5468\\u6167\\u654f"}'

    found = leaks([("log", text) for text in log_texts([line])], [NAMES[ZHOU]])

    assert found == ["log: a value of 3 characters"]
