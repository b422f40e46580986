"""A copy of the database alone names nobody.

A population is built through the paths people and departments use: the
identity registry's feed, sign-in with a phone, registration in the app,
a guardian adding dependents, an official's search, a checkpoint's look-up,
and, on SQLite, the demo. Then the raw database is searched for every
document number, name and phone used: the bytes of the SQLite file and its
write-ahead log, or a ``pg_dump`` of the PostgreSQL database. None may be
there; each is still found through the service, which holds the keys.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.services import create_api_key
from healthcode.feeds.services import import_feed
from healthcode.identity.documents import mod11_2_check
from healthcode.identity.models import Resident
from healthcode.status.services import recolor_residents

from .support import NOW, service, sign_in, sign_in_official

ZONE = ZoneInfo("Asia/Shanghai")


def _number(body: str) -> str:
    return body + mod11_2_check(body)


# From the registry's feed; the first signs in and registers in the app too.
FED = {
    _number("61011319800405123"): "周慧敏",
    _number("61011319920817456"): "\U00020164丽华",
    _number("61010419751111008"): "阿依古丽·买买提",
    _number("61011319491001002"): "王秀英",
}
# Registered in the app only: a mainland card with a lowercase x typed, and
# a passport.
APP_NUMBER = "61011319880808321"
APP_NUMBER += mod11_2_check(APP_NUMBER)
APP_NAME = "Élodie Martin"
PASSPORT, PASSPORT_NAME = "C03005988", "Anna Schmidt"
# Added by a guardian: a child the registry has not heard of.
CHILD = _number("61011320180505001")
CHILD_NAME = "李小龙"
PHONES = ("13912345678", "+86 139 8765 4321", "+4915123456789")
E164 = ("+8613912345678", "+8613987654321", "+4915123456789")


def _import_identities(engine: Engine, folder: Path) -> None:
    lines = [
        "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,"
        "confirmed_at"
    ]
    lines += [
        f"PS-{n},cn-id,{number},,{name},610113,confirmed,2026-03-01T09:00:00"
        for n, (number, name) in enumerate(FED.items())
    ]
    path = folder / "identities.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_feed(
        engine,
        "identities",
        path,
        now=NOW,
        zone=ZONE,
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    assert report.committed, report.errors


def _build_population(engine: Engine, folder: Path) -> None:
    """Everyone, through the service; asserts that each step worked."""
    _import_identities(engine, folder)
    first, grandmother = list(FED)[0], list(FED)[3]
    with service(engine, folder) as (http, outbox, clock):
        me = sign_in(http, outbox, PHONES[0])
        other = sign_in(http, outbox, PHONES[1])
        guardian = sign_in(http, outbox, PHONES[2])
        answers = [
            http.post(
                "/v1/residents/me",
                json={"document": {"number": first}, "name": FED[first]},
                headers=me,
            ),
            http.post(
                "/v1/residents/me",
                json={
                    "document": {"number": APP_NUMBER[:-1] + APP_NUMBER[-1].lower()},
                    "name": APP_NAME,
                },
                headers=other,
            ),
            http.post(
                "/v1/dependents",
                json={"document": {"number": grandmother}, "name": FED[grandmother]},
                headers=guardian,
            ),
            http.post(
                "/v1/dependents",
                json={"document": {"number": CHILD}, "name": CHILD_NAME},
                headers=guardian,
            ),
            http.post(
                "/v1/dependents",
                json={
                    "document": {
                        "kind": "passport",
                        "number": PASSPORT,
                        "country": "DEU",
                    },
                    "name": PASSPORT_NAME,
                },
                headers=guardian,
            ),
        ]
        official = sign_in_official(
            engine, http, "searcher", "health-official", clock.now
        )
        found = http.post(
            "/v1/officials/search",
            json={"name": FED[first], "purpose": "tracing a reported case"},
            headers=official,
        )
        with Session(engine) as session, session.begin():
            _, key = create_api_key(session, "checkpoint", "gate-1", clock.now)
        looked_up = http.post(
            "/v1/checkpoints/lookup",
            json={"document": {"kind": "cn-id", "number": grandmother}},
            headers={"X-API-Key": key},
        )
    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    assert [r["name"] for r in found.json()] == [FED[first]]
    assert looked_up.status_code == 200, looked_up.text


def _personal_values() -> set[str]:
    values = {*FED, *FED.values(), APP_NUMBER, APP_NAME, CHILD, CHILD_NAME}
    values |= {PASSPORT, PASSPORT_NAME, *PHONES, *E164}
    values |= {phone[3:] for phone in E164 if phone.startswith("+86")}
    # A name's parts are names too: a surname with its given name.
    values |= {name.split("·")[0] for name in FED.values() if "·" in name}
    return values


def _hits(raw: bytes, values: Iterable[str]) -> list[str]:
    """The values found in ``raw``, as their length only (never the value)."""
    found = []
    for value in sorted(values):
        forms = {value, value.upper(), value.lower()}
        if any(form.encode("utf-8") in raw for form in forms):
            found.append(f"a value of {len(value)} characters")
    return found


def _sqlite_bytes(engine: Engine) -> bytes:
    database = Path(engine.url.database or "")
    engine.dispose()
    return b"".join(
        Path(f"{database}{suffix}").read_bytes()
        for suffix in ("", "-wal", "-journal")
        if Path(f"{database}{suffix}").exists()
    )


def _postgres_dump(engine: Engine) -> bytes:
    url = engine.url
    if shutil.which("pg_dump") is None:
        pytest.fail("pg_dump is not installed, so the database cannot be dumped.")
    dumped = subprocess.run(
        [
            "pg_dump",
            "--no-password",
            "--host",
            url.host or "127.0.0.1",
            "--port",
            str(url.port or 5432),
            "--username",
            url.username or "postgres",
            "--dbname",
            url.database or "",
        ],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")
    return dumped.stdout


def _raw_copy(engine: Engine) -> bytes:
    if engine.dialect.name == "postgresql":
        return _postgres_dump(engine)
    return _sqlite_bytes(engine)


def test_a_copy_of_the_database_names_nobody(engine: Engine, tmp_path: Path) -> None:
    _build_population(engine, tmp_path)
    with engine.connect() as connection:
        residents = connection.scalar(sa.select(sa.func.count()).select_from(Resident))

    raw = _raw_copy(engine)

    assert residents == 7
    assert len(raw) > 10_000
    # The search itself finds what is there: the dump holds the resident
    # table's name and a department's name in clear.
    assert _hits(raw, ["residents", "public-security"]) != []
    assert _hits(raw, _personal_values()) == []


def test_each_value_is_still_found_and_read_through_the_keys(
    engine: Engine, tmp_path: Path
) -> None:
    _build_population(engine, tmp_path)
    child, passport = CHILD, PASSPORT

    with Session(engine) as session:
        by_number = session.scalars(
            sa.select(Resident).where(Resident.doc_number_index == child)
        ).one()
        by_passport = session.scalars(
            sa.select(Resident).where(
                Resident.doc_kind == "passport",
                Resident.doc_country == "DEU",
                Resident.doc_number_index == passport,
            )
        ).one()
        stored = sorted(session.scalars(sa.select(Resident.name)))

    assert by_number.name == CHILD_NAME
    assert by_passport.name == PASSPORT_NAME
    assert stored == sorted([*FED.values(), APP_NAME, CHILD_NAME, PASSPORT_NAME])


def test_the_demo_database_names_nobody(tmp_path: Path) -> None:
    from healthcode.demo.run import run_demo

    result = run_demo(
        residents=200,
        directory=tmp_path / "demo",
        now=NOW.astimezone(ZONE).replace(hour=10, minute=0),
        seed=3,
        console=Console(file=io.StringIO(), width=200, color_system=None),
    )
    people = result.city.people
    values: set[str] = set()
    for person in people:
        values |= {person.doc_number, person.written_number, person.name}
    engine = sa.create_engine(result.database_url)

    raw = _sqlite_bytes(engine)

    assert result.ok, result.problems
    assert len(people) >= 200
    assert _hits(raw, ["residents"]) != []
    assert _hits(raw, values) == []
