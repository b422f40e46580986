"""Identical copies of a test database, and their contents side by side."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.db import make_engine


@contextmanager
def twin(engine: Engine, folder: Path) -> Iterator[Engine]:
    """An engine on an exact copy of ``engine``'s database as it is now.

    SQLite copies the file page by page with the backup API; PostgreSQL
    makes a database from the other as its template, which copies its files.
    """
    if engine.dialect.name == "sqlite":
        path = folder / "twin.db"
        copy = make_engine(f"sqlite:///{path}")
        source = engine.raw_connection()
        target = copy.raw_connection()
        try:
            source.driver_connection.backup(target.driver_connection)
        finally:
            target.close()
            source.close()
        yield copy
        copy.dispose()
        return
    name = f"{engine.url.database}_twin_{secrets.token_hex(3)}"
    engine.dispose()
    admin = make_engine(
        engine.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(
            sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{engine.url.database}"')
        )
    copy = make_engine(engine.url.set(database=name).render_as_string(False))
    try:
        yield copy
    finally:
        copy.dispose()
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        admin.dispose()


def statuses(engine: Engine) -> list[tuple[Any, ...]]:
    """Every status, every column, by resident."""
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "SELECT resident_id, colour, reasons, as_of, changes_at,"
                    " changes_to, recheck_at, rule_set FROM statuses"
                    " ORDER BY resident_id"
                )
            )
        ]


def events(engine: Engine) -> list[tuple[Any, ...]]:
    """Every change of colour, every column but the id, in a fixed order."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT resident_id, at, old_colour, new_colour, reasons, cause"
                " FROM status_events"
            )
        )
        return sorted((tuple(row) for row in rows), key=repr)


def exposures(engine: Engine) -> list[tuple[Any, ...]]:
    """Every exposure, every column, in id order."""
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "SELECT id, resident_id, case_resident_id, case_report_id, kind,"
                    " place, place_label, venue_id, starts_at, ends_at,"
                    " overlap_minutes, provenance, found_at FROM exposures"
                    " ORDER BY id"
                )
            )
        ]
