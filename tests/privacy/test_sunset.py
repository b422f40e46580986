"""The sunset: every personal row gone, the counts and a verifiable log kept."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import healthcode.models  # noqa: F401
from healthcode.accounts.models import Account
from healthcode.accounts.services import create_api_key, create_official
from healthcode.audit.models import AuditEntry
from healthcode.audit.services import append
from healthcode.config import get_settings
from healthcode.db import Base
from healthcode.family.services import register_self
from healthcode.feeds.services import import_feed
from healthcode.identity.documents import parse_document
from healthcode.officials.services import file_appeal
from healthcode.privacy.cli import sunset_command
from healthcode.privacy.config import get_privacy_settings
from healthcode.privacy.errors import SunsetNotConfirmed
from healthcode.privacy.models import AuditSeal, DailyCount
from healthcode.privacy.seals import SealKeys, verify_audit
from healthcode.privacy.sunset import KEPT_TABLES, SUNSET_PHRASE, sunset
from healthcode.status.services import recolor_residents

from .support import add_checkin, add_declaration

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=ZONE)
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
# People of the example identities file, searched for in the file afterwards.
PERSONAL = ("610113196702282566", "张晓明", "Anna Schmidt", "C01X00T47")
PHONE = "+8613912345678"


def _world(engine: Engine) -> int:
    """Residents, records, statuses over days, accounts, staff, visits, audit."""
    report = import_feed(
        engine,
        "identities",
        EXAMPLES / "identities.csv",
        now=NOW - timedelta(days=3),
        zone=ZONE,
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    assert report.committed, report.errors
    with Session(engine) as session, session.begin():
        account = Account(phone=PHONE, created_at=NOW - timedelta(days=2))
        session.add(account)
        session.flush()
        document = parse_document("cn-id", PERSONAL[0], today=NOW.date())
        resident = register_self(
            session, account.id, document, PERSONAL[1], NOW - timedelta(days=2)
        )
        add_declaration(session, resident.id, NOW - timedelta(days=1))
        add_checkin(session, resident.id, NOW - timedelta(days=1))
        file_appeal(session, resident.id, account.id, "Please look again.", NOW)
        official, _ = create_official(
            session, "reviewer", "health-official", "correct horse battery", NOW
        )
        create_api_key(session, "checkpoint", "gate-1", NOW, created_by=official.id)
        append(
            session,
            at=NOW,
            actor=f"official:{official.id}",
            action="resident.read",
            subject=f"resident:{resident.id}",
            purpose="reviewing the appeal",
        )
    return len(report.affected_residents)


@pytest.fixture
def keys(tmp_path: Path) -> SealKeys:
    return SealKeys(tmp_path / "data-keys")


def _rows(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(table)))


def test_the_sunset_empties_every_table_but_the_kept_ones(
    engine: Engine, keys: SealKeys
) -> None:
    residents = _world(engine)

    report = sunset(engine, NOW, keys, zone=ZONE, confirmation=SUNSET_PHRASE)

    left = {
        table.name: _rows(engine, table)
        for table in Base.metadata.sorted_tables
        if table.name not in KEPT_TABLES
    }
    assert {name: n for name, n in left.items() if name != "audit_entries"} == {
        name: 0 for name in left if name != "audit_entries"
    }
    assert report.deleted["residents"] == residents
    assert report.deleted["accounts"] == 1
    assert report.deleted["officials"] == 1
    assert report.deleted["checkins"] == 1
    assert report.audit_intact


def test_the_sunset_keeps_counts_by_day_colour_and_district(
    engine: Engine, keys: SealKeys
) -> None:
    residents = _world(engine)

    report = sunset(engine, NOW, keys, zone=ZONE, confirmation=SUNSET_PHRASE)

    with Session(engine) as session:
        counts = session.scalars(sa.select(DailyCount)).all()
    by_day: dict[object, int] = {}
    for row in counts:
        by_day[row.day] = by_day.get(row.day, 0) + row.residents
    assert report.days_counted == 4
    assert sorted(by_day) == [NOW.date() - timedelta(days=n) for n in (3, 2, 1, 0)]
    assert set(by_day.values()) == {residents}
    assert {row.colour for row in counts} <= {"green", "grey", "yellow", "red"}
    assert {row.region_code for row in counts} >= {"610113", "310115"}


def test_after_the_sunset_the_log_is_one_verifiable_entry(
    engine: Engine, keys: SealKeys
) -> None:
    _world(engine)

    report = sunset(engine, NOW, keys, zone=ZONE, confirmation=SUNSET_PHRASE)

    with Session(engine) as session:
        entries = session.scalars(sa.select(AuditEntry)).all()
        seals = session.scalars(sa.select(AuditSeal)).all()
        verdict = verify_audit(session, keys)
    assert [entry.action for entry in entries] == ["privacy.sunset"]
    assert entries[0].details["deleted"]["residents"] == report.deleted["residents"]
    assert [(seal.kind, seal.id) for seal in seals] == [("purge", report.seal_id)]
    assert verdict.intact, verdict.problem


def test_the_sqlite_file_holds_no_trace_of_anyone(
    tmp_path: Path, keys: SealKeys
) -> None:
    from healthcode.db import open_database

    path = tmp_path / "city.db"
    engine = open_database(f"sqlite:///{path}")
    _world(engine)
    with engine.connect() as connection:
        # What the file holds of each person: their sealed values.
        sealed = [
            value.encode()
            for row in connection.execute(
                sa.text("SELECT doc_number_sealed, name_sealed FROM residents")
            )
            for value in row
        ]
    before = path.read_bytes() + Path(f"{path}-wal").read_bytes()

    sunset(engine, NOW, keys, zone=ZONE, confirmation=SUNSET_PHRASE)
    engine.dispose()

    after = path.read_bytes()
    wal = Path(f"{path}-wal")
    after += wal.read_bytes() if wal.exists() else b""
    assert sealed and all(value in before for value in sealed)
    assert [value for value in sealed if value in after] == []
    assert [value for value in PERSONAL + (PHONE,) if value.encode() in before] == []
    assert [value for value in PERSONAL + (PHONE,) if value.encode() in after] == []


@pytest.mark.parametrize("phrase", ["", "yes", "delete all"])
def test_without_the_phrase_nothing_is_deleted(
    engine: Engine, keys: SealKeys, phrase: str
) -> None:
    residents = _world(engine)

    with pytest.raises(SunsetNotConfirmed):
        sunset(engine, NOW, keys, zone=ZONE, confirmation=phrase)

    from healthcode.identity.models import Resident

    assert _rows(engine, Resident.__table__) == residents


# The command.


@pytest.fixture
def invoke(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("HEALTHCODE_DATA_KEY_DIR", str(tmp_path / "data-keys"))
    get_settings.cache_clear()
    get_privacy_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The command as the package registers it."""

    app.command("sunset")(sunset_command)
    runner = CliRunner()

    def run(*arguments: str, input: str | None = None):
        return runner.invoke(
            app, ["sunset", *arguments], input=input, env={"COLUMNS": "200"}
        )

    yield run
    get_settings.cache_clear()
    get_privacy_settings.cache_clear()


def test_the_command_asks_for_the_phrase_and_refuses_another(
    invoke, engine: Engine
) -> None:
    residents = _world(engine)

    result = invoke(input="yes\n")

    from healthcode.identity.models import Resident

    assert result.exit_code == 1
    assert "Type 'delete all personal data' to go on" in result.output
    assert "sunset_not_confirmed" in result.output
    assert _rows(engine, Resident.__table__) == residents


def test_the_command_runs_when_the_phrase_is_typed(invoke, engine: Engine) -> None:
    _world(engine)

    result = invoke(input=f"{SUNSET_PHRASE}\n")

    from healthcode.identity.models import Resident

    assert result.exit_code == 0, result.output
    assert "residents" in result.output
    assert _rows(engine, Resident.__table__) == 0


def test_the_flag_confirms_without_asking(invoke, engine: Engine) -> None:
    _world(engine)

    result = invoke("--yes-delete-all-personal-data")

    from healthcode.identity.models import Resident

    assert result.exit_code == 0, result.output
    assert "Type" not in result.output
    assert "Kept" in result.output
    assert _rows(engine, Resident.__table__) == 0


def test_after_the_sunset_no_device_key_kept_in_the_store_is_accepted(
    engine: Engine, keys: SealKeys
) -> None:
    # The sunset deletes every API key; a device whose key was checked a
    # moment before must not go on sending data for the minute its checked
    # key is kept in the service's store.
    from healthcode.accounts.services import (
        API_KEY_GENERATION,
        api_key_entry,
        check_api_key,
        live_key_in,
    )
    from healthcode.accounts.stores import MemoryStore, attach_store, detach_store

    store = MemoryStore()
    attach_store(engine, store)
    try:
        with Session(engine) as session, session.begin():
            _, key = create_api_key(session, "checkpoint", "gate-9", NOW)
        with Session(engine) as session:
            check_api_key(session, store, key, store.get(API_KEY_GENERATION), NOW)
        assert live_key_in(
            store.get(api_key_entry(key)), store.get(API_KEY_GENERATION), NOW
        )

        sunset(engine, NOW, keys, zone=ZONE, confirmation=SUNSET_PHRASE)

        kept = live_key_in(
            store.get(api_key_entry(key)), store.get(API_KEY_GENERATION), NOW
        )
        assert kept is None
    finally:
        detach_store(engine, store)
