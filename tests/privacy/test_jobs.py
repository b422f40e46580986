"""The daily job: when it runs, what it does, and its life in the service."""

from __future__ import annotations

import time as clocks
import warnings
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.exceptions import StarletteDeprecationWarning

from healthcode.accounts.stores import MemoryStore
from healthcode.audit.models import AuditEntry
from healthcode.audit.services import append
from healthcode.config import Settings
from healthcode.feeds.models import Declaration
from healthcode.partitions import PARTITIONED, partitions_of
from healthcode.privacy.config import get_privacy_settings
from healthcode.privacy.jobs import next_run, run_daily
from healthcode.privacy.models import AuditSeal, DailyCount
from healthcode.privacy.retention import RetentionPolicy
from healthcode.privacy.seals import SealKeys, verify_audit
from healthcode.status.models import StatusEvent

from .support import Outbox, add_declaration, add_resident

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ZONE = ZoneInfo("Asia/Shanghai")
AT = time(3, 30)


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=ZONE)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (local(10, 1, 0), local(10, 3, 30)),
        (local(10, 3, 30), local(11, 3, 30)),
        (local(10, 3, 29, 59), local(10, 3, 30)),
        (local(10, 23, 59), local(11, 3, 30)),
    ],
)
def test_the_next_run_is_the_next_time_the_local_clock_shows(
    after: datetime, expected: datetime
) -> None:
    found = next_run(after, AT, ZONE)

    assert found == expected


def test_the_next_run_of_a_utc_instant_is_counted_in_the_zone() -> None:
    # 20:00 UTC is 04:00 the next morning in Shanghai, past 03:30.
    after = datetime(2026, 3, 10, 20, 0, tzinfo=ZoneInfo("UTC"))

    found = next_run(after, AT, ZONE)

    assert found == local(12, 3, 30)


def test_a_day_of_the_job_purges_counts_yesterday_and_seals(
    engine: Engine, tmp_path: Path
) -> None:
    keys = SealKeys(tmp_path / "data-keys")
    with Session(engine) as session, session.begin():
        resident = add_resident(session, "610113199001011230", "周慧敏", local(1, 9))
        old = add_declaration(session, resident, local(1, 9))
        add_declaration(session, resident, local(25, 9))
        session.add(
            StatusEvent(
                resident_id=resident,
                at=local(1, 9),
                old_colour=None,
                new_colour="green",
                reasons=[],
                cause="register",
            )
        )
        append(session, at=local(1, 9), actor="system", action="test.act")
    now = local(30, 3, 30)

    report = run_daily(engine, now, RetentionPolicy(zone=ZONE), keys)

    with Session(engine) as session:
        declarations = session.scalars(sa.select(Declaration.id)).all()
        counts = session.scalars(sa.select(DailyCount)).all()
        seals = session.scalars(sa.select(AuditSeal)).all()
        actions = session.scalars(
            sa.select(AuditEntry.action).order_by(AuditEntry.id)
        ).all()
        verdict = verify_audit(session, keys)
    assert report.counted_day == date(2026, 3, 29)
    assert report.purge.deleted["declarations"] == 1
    assert old not in declarations and len(declarations) == 1
    assert [(c.day, c.colour, c.region_code, c.residents) for c in counts] == [
        (date(2026, 3, 29), "green", "610113", 1)
    ]
    assert [(s.kind, s.last_id) for s in seals] == [("head", 2)]
    assert actions == ["test.act", "privacy.purge"]
    assert verdict.intact, verdict.problem
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            made = {
                table: {p.name for p in partitions_of(connection, table)}
                for table in PARTITIONED
            }
        # Today (30 March) and the seven days after it, for both tables.
        for table in PARTITIONED:
            assert {f"{table}_2026_03_30", f"{table}_2026_04_06"} <= made[table]
    else:
        assert report.partitions_created == []


# The job inside the service.


class RunningClock:
    """A clock that shows ``start`` when first read and then runs in real time.

    Starting at the first reading rather than at creation keeps a slow
    start-up from carrying the clock past the job's time unseen.
    """

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.began: float | None = None

    def __call__(self) -> datetime:
        if self.began is None:
            self.began = clocks.monotonic()
        return self.start + timedelta(seconds=clocks.monotonic() - self.began)


@pytest.fixture
def daily_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HEALTHCODE_DATA_KEY_DIR", str(tmp_path / "data-keys"))
    monkeypatch.setenv("HEALTHCODE_DAILY_JOB_AT", "03:30")
    get_privacy_settings.cache_clear()
    yield tmp_path / "data-keys"
    get_privacy_settings.cache_clear()


def _app(engine: Engine, tmp_path: Path, clock: object):
    from healthcode.service.app import create_app

    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        key_dir=str(tmp_path / "keys"),
        region="610100",
        sign_in_sender="console",
    )
    return create_app(
        settings, clock=clock, store=MemoryStore(), sender=Outbox(), engine=engine
    )


def _seals(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(sa.select(AuditSeal.kind)))


def test_the_service_runs_the_job_at_its_time(
    engine: Engine, tmp_path: Path, daily_env: Path
) -> None:
    app = _app(engine, tmp_path, RunningClock(local(10, 3, 29, 59)))

    with TestClient(app, base_url="https://testserver"):
        deadline = clocks.monotonic() + 15
        while not _seals(engine) and clocks.monotonic() < deadline:
            clocks.sleep(0.1)
        seals = _seals(engine)

    assert seals == ["head"]
    assert (daily_env / "seal" / "current").exists()


def test_the_service_does_not_run_the_job_before_its_time(
    engine: Engine, tmp_path: Path, daily_env: Path
) -> None:
    app = _app(engine, tmp_path, RunningClock(local(10, 3, 0)))

    with TestClient(app, base_url="https://testserver") as client:
        answer = client.get("/v1/health")
        clocks.sleep(0.5)

    assert answer.status_code == 200
    assert _seals(engine) == []


def test_the_job_can_be_switched_off(
    engine: Engine,
    tmp_path: Path,
    daily_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEALTHCODE_DAILY_JOB", "false")
    get_privacy_settings.cache_clear()
    app = _app(
        engine,
        tmp_path,
        RunningClock(
            local(
                10,
                3,
                29,
                59,
            )
        ),
    )

    with TestClient(app, base_url="https://testserver"):
        clocks.sleep(1.5)

    assert _seals(engine) == []
