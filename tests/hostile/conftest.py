"""Helpers for the hostile tests: a fixed clock, feed files, registered residents."""

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

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The import clock of every hostile feed test: 2026-03-10 12:00 in Shanghai.
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=SHANGHAI)
SKEW = timedelta(minutes=5)
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

# Residents of the example identities file.
ZHANG = "610113196702282566"
LI = "42010620010923415X"
ANNA_PASSPORT = "C01X00T47"

# Values that must never appear in a message or a log line, whichever field
# of a row they were put into.
PERSONAL = (
    ZHANG,
    "张晓明",
    "Anna Schmidt",
    "Zhang San",
    "WANG Wei",
    "138-1234-5678",
    "+86 138 1234 5678",
    "6101 1319 6702 2825 66",
)

Writer = Callable[..., Path]


def run(engine: Engine, kind: str, path: Path, **options: Any) -> ImportReport:
    """Import with the tests' clock, zone and skew unless told otherwise."""
    options.setdefault("now", NOW)
    options.setdefault("zone", SHANGHAI)
    options.setdefault("future_skew", SKEW)
    return import_feed(engine, kind, path, **options)


def rows(engine: Engine, query: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(query), params)]


def reasons(report: ImportReport) -> str:
    """Every field and reason of a report, as one text to search for leaks."""
    return "\n".join(f"{error.field} {error.reason}" for error in report.errors)


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Write a feed file (text or bytes) into the test's folder; return its path."""

    def writer(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return writer


@pytest.fixture
def registered(engine: Engine) -> Engine:
    """The engine, with the residents of the example identities file registered."""
    report = run(engine, "identities", EXAMPLES / "identities.csv")
    assert report.committed, report.errors
    return engine
