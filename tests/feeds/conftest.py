"""Fixtures and helpers shared by the feed tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.feeds.services import ImportReport, import_feed
from healthcode.identity.models import Resident

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The import clock of every feed test: 2026-03-10 12:00 in Shanghai.
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=SHANGHAI)
SKEW = timedelta(minutes=5)
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

# Residents of the example files, by mainland identity number or passport.
ZHANG = "610113196702282566"
LI = "42010620010923415X"
AYGUL = "110105198503121234"
RARE = "310115199207042317"
CHEN = "440305197801153421"
ANNA_PASSPORT = "C01X00T47"


def run(engine: Engine, kind: str, path: Path, **options: Any) -> ImportReport:
    """Import with the tests' clock, zone and skew unless told otherwise."""
    options.setdefault("now", NOW)
    options.setdefault("zone", SHANGHAI)
    options.setdefault("future_skew", SKEW)
    return import_feed(engine, kind, path, **options)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count()).select_from(sa.table(table))
        ).scalar_one()


def rows(engine: Engine, query: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(query), params))


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a feed file into the test's folder and return its path."""

    def writer(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return writer


@pytest.fixture
def registered(engine: Engine) -> Engine:
    """The engine, with the residents of the example identities file registered."""
    report = run(engine, "identities", EXAMPLES / "identities.csv")
    assert report.committed, report.errors
    return engine


def resident_id(engine: Engine, number: str) -> int:
    query = sa.select(Resident.id).where(Resident.doc_number_index == number)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())
