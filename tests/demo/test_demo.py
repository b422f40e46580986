"""The demo job, run on a small city, and the city it builds."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import typer
from rich.console import Console
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from healthcode.codes import qr
from healthcode.codes.keys import KeyStore
from healthcode.codes.services import local_verifier
from healthcode.db import make_engine
from healthcode.demo.city import COLUMNS, EXPECTED, build_city, write_day_one
from healthcode.demo.cli import demo_command
from healthcode.demo.errors import DatabaseNotEmpty
from healthcode.demo.run import DemoResult, run_demo
from healthcode.identity.documents import mod11_2_check
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.privacy.crypto import DataKeys
from healthcode.privacy.errors import DataKeyError
from healthcode.privacy.keycheck import check_data_keys
from healthcode.privacy.types import using_keys
from healthcode.status.models import Status
from healthcode.status.services import current_status

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=ZONE)
RESIDENTS = 2000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, str]:
    directory = tmp_path_factory.mktemp("demo")
    output = io.StringIO()
    console = Console(file=output, width=120, color_system=None)
    result = run_demo(
        residents=RESIDENTS,
        directory=directory,
        database_url=None,
        now=NOW,
        seed=7,
        console=console,
    )
    return result, output.getvalue()


@pytest.fixture(autouse=True)
def _demo_keys(demo: tuple[DemoResult, str]) -> Iterator[None]:
    """Read the demo's database with the data keys it keeps in its folder."""
    with using_keys(DataKeys(demo[0].directory / "data-keys")):
        yield


def _resident_id(result: DemoResult, role: str) -> int:
    person = result.city.by_role(role)[0]
    return result.resident_ids[person.index]


def test_demo_ends_ok_with_every_check_held(demo: tuple[DemoResult, str]) -> None:
    result, output = demo

    problems = result.problems

    assert problems == []
    assert result.ok
    assert "All checks held" in output
    assert all(report.committed for _, _, report in result.imports)


def test_counts_by_colour_sum_to_the_population(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo

    day_one, day_two = result.counts[1], result.counts[2]

    assert sum(day_one.values()) == RESIDENTS
    assert sum(day_two.values()) == RESIDENTS
    # With 2,000 residents the role sizes give: grey 8 visitors; red 2 cases,
    # 3 in central quarantine, 2 positives, 2 recovering, 4 back from Pudong;
    # yellow 2 released, 8 back from Chenghua, 16 with symptoms, 16 under home
    # observation, 4 whose observation ends before day two.
    assert day_one == {"green": 1933, "yellow": 46, "red": 13, "grey": 8}
    # Day two: the 2 recovering turn green; 2 long street visits, 2 long stays
    # in Wuchang, 2 new positives and the reported case turn red; the 16
    # symptoms and 4 observations lapse; 12 new symptoms, 6 contacts yellow.
    assert day_two == {"green": 1930, "yellow": 46, "red": 16, "grey": 8}


def test_counts_by_district_are_printed_with_real_district_names(
    demo: tuple[DemoResult, str],
) -> None:
    _, output = demo

    table = output[output.index("Colours by district after day 1") :]
    table = table[: table.index("Five residents")]
    rows = [" ".join(line.replace("│", " ").split()) for line in table.splitlines()]

    for code, name in (
        ("610113", "雁塔区"),
        ("610112", "未央区"),
        ("610124", "周至县"),
    ):
        assert any(row.startswith(f"{code} {name} ") for row in rows)
    assert "all 1933 46 13 8 2000" in rows


def test_bad_rows_are_reported_with_their_line_numbers(
    demo: tuple[DemoResult, str],
) -> None:
    result, output = demo

    rejected = [
        (feed.path.name, error.line, error.field) for feed, error in result.rejected
    ]

    assert [(name, field) for name, _, field in rejected] == [
        ("identities.csv", "region_code"),
        ("identities.csv", "doc_number"),
        ("lab-results.csv", "sampled_at"),
        ("lab-results.csv", "sampled_at"),
    ]
    lines = {}
    for name, line, _ in rejected:
        path = result.directory / "day-1" / name
        lines[(name, line)] = path.read_text("utf-8").splitlines()[line - 1]
    identity_lines = [text for (name, _), text in lines.items() if "identities" in name]
    lab_lines = [text for (name, _), text in lines.items() if "lab-results" in name]
    assert ",610199," in identity_lines[0]
    assert "2026-03-04T10:00:00" in lab_lines[0]
    assert "2026-02-30T09:00:00" in lab_lines[1]
    assert "wrong check character" in output
    assert "lies 3 days after the import time" in output


def test_the_files_with_bad_rows_are_imported_with_skip_bad(
    demo: tuple[DemoResult, str],
) -> None:
    result, output = demo

    modes = {
        feed.path.name: report.mode for day, feed, report in result.imports if day == 1
    }

    assert modes["identities.csv"] == "skip-bad"
    assert modes["lab-results.csv"] == "skip-bad"
    assert modes["vaccinations.csv"] == "all-or-nothing"
    assert "imported with --skip-bad" in output


def test_the_reported_case_turns_red_on_day_two(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    person = result.city.by_role("reported-case")[0]

    change = next(c for c in result.changes if c.person == person)

    assert result.colour_of(person, 1) == "green"
    assert result.colour_of(person, 2) == "red"
    assert (change.old, change.new, change.rules, change.causes) == (
        "green",
        "red",
        ("RED-CASE",),
        ("cases",),
    )


def test_a_long_stay_in_the_new_risk_areas_turns_red_a_pass_through_does_not(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    city = result.city

    colours = {
        role: [
            (result.colour_of(p, 1), result.colour_of(p, 2)) for p in city.by_role(role)
        ]
        for role in (
            "county-stay",
            "passed-through",
            "short-connection",
            "street-stay",
            "street-brief",
            "street-neighbour",
        )
    }

    assert set(colours["county-stay"]) == {("green", "red")}
    assert set(colours["street-stay"]) == {("green", "yellow")}
    assert set(colours["passed-through"]) == {("green", "green")}
    assert set(colours["short-connection"]) == {("green", "green")}
    assert set(colours["street-brief"]) == {("green", "green")}
    assert set(colours["street-neighbour"]) == {("green", "green")}


def test_the_red_stay_is_explained_by_its_area_and_minutes(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    resident_id = _resident_id(result, "county-stay")
    engine = make_engine(result.database_url)

    with Session(engine) as session, session.begin():
        view = current_status(session, resident_id, result.city.day_two)
    engine.dispose()

    assert view.colour == "red"
    [reason] = view.reasons
    assert reason["rule"] == "RED-HIGH-RISK-STAY"
    assert reason["evidence"]["areaCode"] == "420106"
    # In Wuchang from 52 hours before day one until 8 hours before it, less
    # up to 90 minutes of jitter; the area holds from 48 hours before day one.
    assert 38 * 60 + 30 <= reason["evidence"]["minutes"] <= 40 * 60
    assert reason["evidence"]["ref"]["department"] == "railway"


def test_every_role_has_the_colour_it_was_built_for(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo

    wrong = [
        (person.role, day, result.colour_of(person, day))
        for person in result.city.people
        for day in (1, 2)
        if result.colour_of(person, day) != EXPECTED[person.role][day - 1]
    ]

    assert wrong == []


def test_special_numbers_are_stored_in_normal_form(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    city = result.city
    lowercase = [p for p in city.people if p.written_number.endswith("x")]
    legacy = [p for p in city.people if len(p.written_number) == 15]
    engine = make_engine(result.database_url)

    with engine.connect() as connection:
        stored = dict(
            connection.execute(sa.select(Resident.id, Resident.doc_number)).all()
        )
    engine.dispose()

    assert len(lowercase) == 3
    assert len(legacy) == 1
    for person in lowercase:
        assert (
            stored[result.resident_ids[person.index]] == person.written_number.upper()
        )
    assert stored[result.resident_ids[legacy[0].index]] == legacy[0].doc_number
    assert len(legacy[0].doc_number) == 18


def test_passport_holders_stay_grey_while_being_confirmed(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    visitors = result.city.by_role("visitor")
    engine = make_engine(result.database_url)
    ids = [result.resident_ids[p.index] for p in visitors]

    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(Status.colour, Status.reasons).where(Status.resident_id.in_(ids))
        ).all()
    engine.dispose()

    assert len(rows) == len(visitors) == 8
    assert {colour for colour, _ in rows} == {"grey"}
    assert {r["rule"] for _, reasons in rows for r in reasons} == {
        "GREY-IDENTITY-PENDING"
    }


def test_output_masks_names_and_documents_except_those_to_try(
    demo: tuple[DemoResult, str],
) -> None:
    result, output = demo
    to_try = {person.index for _, person, _ in result.documents}
    shown = {change.person.index for change in result.changes} | to_try

    leaked_names = [
        p.index for p in result.city.people if p.index in shown and p.name in output
    ]
    leaked_numbers = [
        p.index
        for p in result.city.people
        if p.index not in to_try and p.doc_number in output
    ]

    assert leaked_names == []
    assert leaked_numbers == []
    for _, person, command in result.documents:
        assert command in output
        assert person.doc_number in command or person.written_number in command


def test_the_sample_residents_codes_verify_from_their_pngs(
    demo: tuple[DemoResult, str],
) -> None:
    result, output = demo
    keys = KeyStore(result.directory / "keys")
    verifier = local_verifier(keys)

    decoded = [
        verifier.verify(text, result.city.day_two)
        for code in result.codes
        for text in qr.read_texts(code.path)
    ]

    assert len(result.codes) == 5
    assert all(code.verified for code in result.codes)
    assert [code.path.parent for code in result.codes] == [
        result.directory / "codes"
    ] * 5
    assert [str(code.colour) for code in decoded] == [
        result.colour_of(code.person, 2) for code in result.codes
    ]
    assert [code.masked_name for code in decoded] == [
        mask_name(code.person.name) for code in result.codes
    ]
    assert {code.colour for code in result.codes} >= {"green", "grey", "red"}
    assert all(1 <= code.version <= 7 for code in result.codes)
    assert "read back from their PNGs" in output
    for code in result.codes:
        assert code.path.name in output


def test_each_step_is_timed(demo: tuple[DemoResult, str]) -> None:
    result, output = demo

    names = [step.name for step in result.steps]

    assert names[:3] == ["build the city", "open the database", "write day-one feeds"]
    assert "import day one" in names and "import day two" in names
    assert all(step.seconds >= 0 for step in result.steps)
    assert "Time each step took" in output


def test_a_database_that_holds_residents_is_refused(
    demo: tuple[DemoResult, str], tmp_path: Path
) -> None:
    result, _ = demo
    console = Console(file=io.StringIO())
    # With the database's own keys, so that what refuses it is its residents.
    shutil.copytree(result.directory / "data-keys", tmp_path / "data-keys")

    with pytest.raises(DatabaseNotEmpty) as raised:
        run_demo(
            residents=300,
            directory=tmp_path,
            database_url=result.database_url,
            now=NOW,
            console=console,
        )

    assert f"{RESIDENTS} residents" in str(raised.value)


def test_the_city_is_the_same_for_the_same_seed() -> None:
    first = build_city(500, now=NOW, seed=7)
    again = build_city(500, now=NOW, seed=7)
    other = build_city(500, now=NOW, seed=8)

    numbers = [p.doc_number for p in first.people]

    assert numbers == [p.doc_number for p in again.people]
    assert numbers != [p.doc_number for p in other.people]
    assert len(set(numbers)) == 500


def test_the_city_stands_on_real_districts_and_streets() -> None:
    city = build_city(500, now=NOW, seed=7)

    codes = {d.code for d in city.districts}
    names = {d.name for d in city.districts}

    assert {"610102", "610113", "610124"} <= codes
    assert {"新城区", "雁塔区", "周至县"} <= names
    assert {p.region_code for p in city.people} <= codes
    reported = city.by_role("reported-case")[0]
    assert (reported.region_code, reported.street) == ("610113", "小寨路街道")


def test_day_one_files_have_the_documented_columns(tmp_path: Path) -> None:
    city = build_city(300, now=NOW, seed=7)

    written = write_day_one(city, tmp_path)

    names = [feed.path.name for feed in written]
    assert names == [
        "identities.csv",
        "risk-areas.csv",
        "lab-results.csv",
        "vaccinations.csv",
        "travel-rail.csv",
        "travel-air.csv",
        "declarations.csv",
        "cases.csv",
        "orders.csv",
    ]
    for feed in written:
        with feed.path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle))
        assert tuple(header) == COLUMNS[feed.kind]
    planted = [(p.kind, p.field) for feed in written for p in feed.planted]
    assert planted == [
        ("identities", "region_code"),
        ("identities", "doc_number"),
        ("lab-results", "sampled_at"),
        ("lab-results", "sampled_at"),
    ]


def test_a_too_small_city_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 200 residents"):
        build_city(50, now=NOW)


def test_the_command_exits_zero(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(demo_command)

    outcome = CliRunner().invoke(
        app,
        [
            "--residents",
            "300",
            "--directory",
            str(tmp_path / "out"),
            "--now",
            "2026-03-02T10:00:00+0800",
        ],
    )

    assert outcome.exit_code == 0, outcome.output
    assert "All checks held: 300 residents" in outcome.output
    assert (tmp_path / "out" / "healthcode.db").exists()


@pytest.mark.postgres
def test_the_demo_runs_on_postgresql(tmp_path: Path) -> None:
    url = os.environ.get("HEALTHCODE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("HEALTHCODE_TEST_POSTGRES_URL is not set; no PostgreSQL to use.")
    name = f"healthcode_demo_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    target = sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    try:
        result = run_demo(
            residents=300,
            directory=tmp_path,
            database_url=target,
            now=NOW,
            console=Console(file=io.StringIO()),
        )
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        admin.dispose()

    assert result.problems == []
    assert sum(result.counts[2].values()) == 300


def test_the_demo_keeps_its_keys_in_its_folder_and_prints_the_exports(
    demo: tuple[DemoResult, str],
) -> None:
    result, output = demo
    folder = result.directory.resolve()
    url = sa.make_url(result.database_url).render_as_string(hide_password=True)

    assert f"  export HEALTHCODE_DATABASE_URL={url}\n" in output
    assert f"  export HEALTHCODE_KEY_DIR={folder / 'keys'}\n" in output
    assert f"  export HEALTHCODE_DATA_KEY_DIR={folder / 'data-keys'}\n" in output
    engine = make_engine(result.database_url)
    try:
        check_data_keys(engine, DataKeys(folder / "data-keys"))
        configured = DataKeys(os.environ["HEALTHCODE_DATA_KEY_DIR"])
        with pytest.raises(DataKeyError):
            check_data_keys(engine, configured)
    finally:
        engine.dispose()


def test_the_commands_elsewhere_need_the_demo_data_key_dir(
    demo: tuple[DemoResult, str], tmp_path: Path
) -> None:
    result, _ = demo
    folder = result.directory.resolve()
    _, person, command = result.documents[0]
    status = command.split()[1:]
    body = "61011319991231987"
    environment = {
        name: value
        for name, value in os.environ.items()
        if name != "HEALTHCODE_DATA_KEY_DIR"
    }
    environment |= {
        "HEALTHCODE_DATABASE_URL": result.database_url,
        "HEALTHCODE_KEY_DIR": str(folder / "keys"),
        "COLUMNS": "400",
    }

    def run(arguments: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from healthcode.cli import main; main()"]
            + arguments,
            env=environment | extra,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    for arguments in (status, ["register", body + mod11_2_check(body), "周慧敏"]):
        refused = run(arguments)
        said = refused.stdout + refused.stderr
        assert refused.returncode == 1, said
        assert "error data_key_error:" in said
        assert "HEALTHCODE_DATA_KEY_DIR" in said
        assert person.doc_number not in said
    assert not (tmp_path / "data-keys").exists()

    shown = run(status, HEALTHCODE_DATA_KEY_DIR=str(folder / "data-keys"))
    assert shown.returncode == 0, shown.stdout + shown.stderr
