"""The migration that seals residents and phones, on a database held in clear.

A database is brought up to the revision before it, given residents and
accounts in clear as the earlier schema stored them, and then migrated: every
value is sealed, found through its blind index and read back as it was; on
SQLite not one of them is left in the file. Downgrading opens them again.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import healthcode.models  # noqa: F401
from healthcode.accounts.models import Account
from healthcode.db import make_engine
from healthcode.identity.documents import mod11_2_check
from healthcode.identity.models import Resident
from healthcode.identity.services import search_by_name

POSTGRES_ENV = "HEALTHCODE_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"{POSTGRES_ENV} is not set, so the PostgreSQL tests do not run."


def _number(sequence: int) -> str:
    body = f"610113198004{sequence // 1000 + 1:02d}{sequence % 1000:03d}"
    return body + mod11_2_check(body)


# More than one batch of the migration, so that its walk is exercised.
PEOPLE = [(_number(n), f"周慧{chr(0x4E00 + n)}") for n in range(2300)]
PHONES = [f"+86139{n:08d}" for n in range(30)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database, no migration run."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    name = f"healthcode_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(admin.url.set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        admin.dispose()


def _to(engine: Engine, *revisions: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("healthcode") / "migrations")
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        for revision in revisions:
            if down:
                command.downgrade(config, revision)
            else:
                command.upgrade(config, revision)


def _clear_population(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO residents (id, doc_kind, doc_country, doc_number, name,"
                " birth_date, identity_state, registered_at) VALUES (:id, 'cn-id',"
                " '', :number, :name, :born, 'confirmed', '2026-03-01 00:00:00')"
            ),
            [
                {"id": n + 1, "number": number, "name": name, "born": "1980-04-05"}
                for n, (number, name) in enumerate(PEOPLE)
            ],
        )
        connection.execute(
            sa.text(
                "INSERT INTO accounts (id, phone, resident_id, created_at) VALUES"
                " (:id, :phone, :rid, '2026-03-01 00:00:00')"
            ),
            [{"id": n + 1, "phone": p, "rid": n + 1} for n, p in enumerate(PHONES)],
        )


def _raw(engine: Engine, query: str) -> list[tuple[str, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(query))]


def test_clear_rows_are_sealed_indexed_and_read_back(blank: Engine) -> None:
    _to(blank, "0002", "0005")
    _clear_population(blank)

    _to(blank, "heads")

    stored = _raw(blank, "SELECT doc_number_sealed, name_sealed FROM residents")
    phones = _raw(blank, "SELECT phone_sealed FROM accounts")
    number, name = PEOPLE[2100]
    with Session(blank) as session:
        found = session.scalars(
            sa.select(Resident).where(Resident.doc_number_index == number)
        ).one()
        account = session.scalars(
            sa.select(Account).where(Account.phone_index == PHONES[7])
        ).one()
        by_name = search_by_name(session, name)
        by_year = search_by_name(session, "周慧", born_in=1980, limit=5000)
        names = session.scalars(sa.select(Resident.name).order_by(Resident.id)).all()
    assert len(stored) == len(PEOPLE)
    assert all(a.startswith("v1:") and b.startswith("v1:") for a, b in stored)
    assert all(phone.startswith("v1:") for (phone,) in phones)
    assert (found.id, found.name, found.doc_number) == (2101, name, number)
    assert (account.id, account.phone) == (8, PHONES[7])
    assert [r.id for r in by_name] == [2101]
    assert len(by_year) == len(PEOPLE)
    assert names == [name for _, name in PEOPLE]


def test_a_migrated_sqlite_file_holds_no_clear_value(blank: Engine) -> None:
    if blank.dialect.name != "sqlite":
        pytest.skip("The file of a SQLite database is what is read here.")
    _to(blank, "0002", "0005")
    _clear_population(blank)

    _to(blank, "heads")
    blank.dispose()
    database = Path(blank.url.database or "")
    raw = b"".join(
        Path(f"{database}{suffix}").read_bytes()
        for suffix in ("", "-wal", "-journal")
        if Path(f"{database}{suffix}").exists()
    )

    left = [
        value
        for value in [*(n for n, _ in PEOPLE[::50]), *(m for _, m in PEOPLE[::50])]
        if value.encode("utf-8") in raw
    ]
    assert b"residents" in raw
    assert len(left) == 0
    assert not any(phone.encode() in raw for phone in PHONES)


def test_downgrading_opens_the_values_again(blank: Engine) -> None:
    _to(blank, "0002", "0005")
    _clear_population(blank)
    _to(blank, "heads")

    _to(blank, "0005", down=True)

    people = _raw(blank, "SELECT doc_number, name FROM residents ORDER BY id")
    phones = _raw(blank, "SELECT phone FROM accounts ORDER BY id")
    assert people == PEOPLE
    assert phones == [(phone,) for phone in PHONES]
