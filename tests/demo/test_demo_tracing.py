"""The demo's second day traces the reported case and shows what it caused."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from sqlalchemy.orm import Session

from healthcode.db import make_engine
from healthcode.demo.run import DemoResult, run_demo
from healthcode.status.services import current_status

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=ZONE)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, str]:
    output = io.StringIO()
    result = run_demo(
        residents=2000,
        directory=tmp_path_factory.mktemp("demo-tracing"),
        now=NOW,
        seed=11,
        console=Console(file=output, width=160, color_system=None),
    )
    return result, output.getvalue()


def test_day_two_lists_the_exposures_of_the_reported_case(demo):
    result, output = demo

    assert result.problems == []
    assert "Exposures traced from case CASE2-000001" in output
    assert "11 check-ins uploaded, 6 exposures found, 6 written" in output
    assert output.count("YELLOW-EXPOSURE") == 6
    assert "小寨牛肉面馆" in output
    assert "长安大厦 B 座" in output


def test_every_contact_shows_the_exposure_among_the_reasons_for_yellow(demo):
    result, _ = demo
    engine = make_engine(result.database_url)

    with Session(engine) as session:
        views = [
            current_status(session, result.resident_ids[person.index], NOW)
            for person in result.city.by_role("contact")
        ]
        plain = [
            current_status(session, result.resident_ids[person.index], NOW)
            for person in result.city.by_role("plain")[:3]
        ]
    engine.dispose()

    assert [view.colour for view in views] == ["yellow"] * 6
    for view in views:
        exposure = [r for r in view.reasons if r["rule"] == "YELLOW-EXPOSURE"]
        assert len(exposure) == 1
        assert exposure[0]["evidence"]["ref"]["recordId"] == "CASE2-000001"
    assert [view.colour for view in plain] == ["green"] * 3
