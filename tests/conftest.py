"""Databases for the suites: SQLite always, PostgreSQL where one is named.

The ``engine`` fixture is parametrised over both backends. Each test gets a
database in the state the migrations leave it in:

* SQLite: a copy of a file migrated once per session, opened with
  :func:`healthcode.db.open_database` (which finds nothing left to migrate);
* PostgreSQL: one database per session, ``healthcode_test_<random>``, made
  with ``CREATE DATABASE`` on the server that ``HEALTHCODE_TEST_POSTGRES_URL``
  names and dropped at the end. After each test its tables are emptied and
  the rows the migrations seed are put back.

Tests on PostgreSQL carry the ``postgres`` mark and are skipped, with the
reason printed in the header and the summary, when the variable is unset.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.db import Base, make_engine, open_database

# Sealed columns take their keys from HEALTHCODE_DATA_KEY_DIR. The suite
# keeps them in a directory of its own, outside the working tree, which the
# commands that tests start as child processes inherit.
if "HEALTHCODE_DATA_KEY_DIR" not in os.environ:
    _DATA_KEYS = tempfile.mkdtemp(prefix="healthcode-test-keys-")
    os.environ["HEALTHCODE_DATA_KEY_DIR"] = _DATA_KEYS
    atexit.register(shutil.rmtree, _DATA_KEYS, ignore_errors=True)

POSTGRES_ENV = "HEALTHCODE_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"{POSTGRES_ENV} is not set, so the PostgreSQL tests do not run."


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        return f"postgres: {POSTGRES_SKIP}"
    shown = sa.make_url(url).render_as_string(hide_password=True)
    return f"postgres: tests run against a fresh database on {shown}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the whole schema, migrated once per session."""
    path = tmp_path_factory.mktemp("sqlite-template") / "healthcode.db"
    engine = open_database(f"sqlite:///{path}")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a migrated PostgreSQL database made for this session."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    name = f"healthcode_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        open_database(url).dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_seed(postgres_url: str) -> dict[str, list[dict[str, Any]]]:
    """Rows the migrations put in, table by table, to restore after each test."""
    engine = make_engine(postgres_url)
    seed: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = [dict(row) for row in connection.execute(table.select()).mappings()]
            if rows:
                seed[table.name] = rows
    engine.dispose()
    return seed


def _reset_postgres(engine: Engine, seed: dict[str, list[dict[str, Any]]]) -> None:
    tables = Base.metadata.sorted_tables
    names = ", ".join(f'"{table.name}"' for table in tables)
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        for table in tables:
            if table.name in seed:
                connection.execute(table.insert(), seed[table.name])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[Engine]:
    """An engine on a freshly migrated database, SQLite or PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "healthcode.db"
        shutil.copyfile(sqlite_template, path)
        engine = open_database(f"sqlite:///{path}")
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    seed = request.getfixturevalue("postgres_seed")
    engine = open_database(url)
    try:
        yield engine
    finally:
        engine.dispose()
        cleaner = make_engine(url)
        _reset_postgres(cleaner, seed)
        cleaner.dispose()
