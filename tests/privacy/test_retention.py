"""Retention: each kind goes after its period, counted in local days."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.senders import FileSender, phone_digest
from healthcode.accounts.services import SignInPolicy, request_sign_in_code
from healthcode.accounts.stores import MemoryStore, phone_key
from healthcode.audit.models import AuditEntry
from healthcode.audit.services import append, verify_log
from healthcode.checkins.models import Checkin
from healthcode.feeds.models import Declaration
from healthcode.privacy.models import AuditSeal
from healthcode.privacy.retention import (
    RetentionPolicy,
    purge,
    purge_audit,
    purge_declarations,
    purge_sign_in_file,
)
from healthcode.privacy.seals import SealKeys, verify_audit

from .support import add_checkin, add_declaration, add_resident, audit_guards_dropped

ZONE = ZoneInfo("Asia/Shanghai")
# The purge clock: 2026-03-30, 12:00 in Shanghai.
NOW = datetime(2026, 3, 30, 12, 0, tzinfo=ZONE)
POLICY = RetentionPolicy(zone=ZONE, audit=timedelta(days=30))


def local(day: int, hour: int = 12, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE)


@pytest.fixture
def keys(tmp_path: Path) -> SealKeys:
    return SealKeys(tmp_path / "data-keys")


@pytest.fixture
def resident(engine: Engine) -> int:
    with Session(engine) as session, session.begin():
        return add_resident(session, "610113199001011230", "周慧敏", local(1))


def _audit_at(engine: Engine, *moments: datetime) -> None:
    with Session(engine) as session, session.begin():
        for moment in moments:
            append(session, at=moment, actor="system", action="test.act")


def _ids(engine: Engine, column: sa.Column) -> list[int]:
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(column)).scalars())


# Declarations.


def test_declarations_are_kept_14_local_days_then_go(
    engine: Engine, resident: int
) -> None:
    with Session(engine) as session, session.begin():
        kept = add_declaration(session, resident, local(16, 0, 1))
        gone = add_declaration(session, resident, local(15, 23, 59))
        recent = add_declaration(session, resident, local(29))

    with Session(engine) as session, session.begin():
        deleted = purge_declarations(session, NOW, timedelta(days=14), ZONE)

    assert deleted == 1
    assert _ids(engine, Declaration.id) == sorted([kept, recent])
    assert gone not in _ids(engine, Declaration.id)


def test_the_next_local_day_purges_the_next_declaration(
    engine: Engine, resident: int
) -> None:
    with Session(engine) as session, session.begin():
        add_declaration(session, resident, local(16, 0, 1))
    just_before_midnight = local(30, 23, 59)
    just_after_midnight = local(31, 0, 0)

    with Session(engine) as session, session.begin():
        before = purge_declarations(
            session, just_before_midnight, POLICY.declarations, ZONE
        )
    with Session(engine) as session, session.begin():
        after = purge_declarations(
            session, just_after_midnight, POLICY.declarations, ZONE
        )

    assert (before, after) == (0, 1)


# Check-ins, through the purge of every kind.


def test_checkins_are_kept_21_local_days_then_go(
    engine: Engine, resident: int, keys: SealKeys
) -> None:
    with Session(engine) as session, session.begin():
        kept = add_checkin(session, resident, local(9, 0, 0))
        gone = add_checkin(session, resident, local(8, 23, 59))

    report = purge(engine, NOW, POLICY, keys, kinds=["checkins"])

    assert report.deleted == {"checkins": 1}
    assert report.cutoffs["checkins"] == local(9, 0, 0)
    assert _ids(engine, Checkin.id) == [kept]
    assert gone != kept


def test_a_purge_records_what_it_deleted_in_the_audit_log(
    engine: Engine, resident: int, keys: SealKeys
) -> None:
    with Session(engine) as session, session.begin():
        add_checkin(session, resident, local(1))
        add_declaration(session, resident, local(1))

    purge(engine, NOW, POLICY, keys, kinds=["checkins", "declarations"])

    with Session(engine) as session:
        entry = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()[-1]
    assert entry.action == "privacy.purge"
    assert entry.actor == "system"
    assert entry.details["deleted"] == {"checkins": 1, "declarations": 1}


def test_a_second_purge_at_the_same_moment_deletes_nothing(
    engine: Engine, resident: int, keys: SealKeys
) -> None:
    with Session(engine) as session, session.begin():
        add_checkin(session, resident, local(1))
        add_declaration(session, resident, local(1))
    _audit_at(engine, local(1, month=2))
    purge(engine, NOW, POLICY, keys)

    again = purge(engine, NOW, POLICY, keys)

    assert again.deleted == {
        "audit": 0,
        "checkins": 0,
        "declarations": 0,
        "lab-results": 0,
        "vaccinations": 0,
        "cases": 0,
        "quarantine-orders": 0,
        "journeys": 0,
        "sign-in-codes": 0,
    }
    assert again.problems == []


# Sign-in codes.


def test_the_store_forgets_a_sign_in_code_when_its_life_ends() -> None:
    ticks = [1000.0]
    store = MemoryStore(monotonic=lambda: ticks[0])
    sent: list[str] = []

    class Sender:
        def send(self, phone: str, code: str, valid_until: datetime) -> None:
            sent.append(code)

    policy = SignInPolicy(code_ttl=timedelta(minutes=5))
    request_sign_in_code(store, Sender(), "13912345678", NOW, policy)
    key = phone_key("sign-in", phone_digest("+8613912345678"))
    alive = store.get(key)
    ticks[0] += 5 * 60 + 1

    forgotten = store.get(key)

    assert alive is not None and sent
    assert forgotten is None


def test_expired_codes_leave_the_file_sender_file(tmp_path: Path) -> None:
    path = tmp_path / "codes.ndjson"
    sender = FileSender(path)
    sender.send("+8613912345678", "111111", NOW - timedelta(minutes=1))
    sender.send("+8613912345678", "222222", NOW + timedelta(minutes=4))
    with path.open("ab") as handle:
        handle.write(b"not json\n")

    dropped = purge_sign_in_file(path, NOW)

    assert dropped == 2
    assert sender.codes_for("+8613912345678") == ["222222"]
    assert [orjson.loads(line)["code"] for line in path.read_bytes().splitlines()] == [
        "222222"
    ]


def test_a_missing_sign_in_file_purges_nothing(tmp_path: Path) -> None:
    dropped = purge_sign_in_file(tmp_path / "none.ndjson", NOW)

    assert dropped == 0


# The audit log.


def test_old_audit_entries_go_behind_a_seal_and_the_rest_verifies(
    engine: Engine, keys: SealKeys
) -> None:
    _audit_at(engine, local(1), local(27, 23), local(28, 0), local(29), local(30))

    with Session(engine) as session, session.begin():
        done = purge_audit(session, NOW, timedelta(days=2), ZONE, keys)

    with Session(engine) as session:
        report = verify_audit(session, keys)
        plain = verify_log(session)
        seals = session.scalars(sa.select(AuditSeal)).all()
    assert done.deleted == 2
    assert done.problem is None
    assert _ids(engine, AuditEntry.id) == [3, 4, 5]
    assert [(s.kind, s.last_id) for s in seals] == [("purge", 2)]
    assert report.intact, report.problem
    assert report.entries == 3
    assert not plain.intact


def test_entries_go_only_as_a_run_from_the_start(
    engine: Engine, keys: SealKeys
) -> None:
    # An entry dated later than the one after it (a clock that was behind)
    # stops the run: entry 3 stays, and with it every entry after.
    _audit_at(engine, local(1), local(2), local(29), local(3), local(4))

    with Session(engine) as session, session.begin():
        done = purge_audit(session, NOW, timedelta(days=2), ZONE, keys)

    assert done.deleted == 2
    assert _ids(engine, AuditEntry.id) == [3, 4, 5]


def test_a_second_audit_purge_goes_on_from_the_first_seal(
    engine: Engine, keys: SealKeys
) -> None:
    _audit_at(engine, local(1), local(2))
    with Session(engine) as session, session.begin():
        purge_audit(session, local(10), timedelta(days=2), ZONE, keys)
    _audit_at(engine, local(20), local(29))

    with Session(engine) as session, session.begin():
        done = purge_audit(session, NOW, timedelta(days=2), ZONE, keys)

    with Session(engine) as session:
        report = verify_audit(session, keys)
    assert done.deleted == 1
    assert _ids(engine, AuditEntry.id) == [4]
    assert report.intact, report.problem


def test_the_database_refuses_to_delete_an_entry_no_seal_covers(
    engine: Engine, keys: SealKeys
) -> None:
    _audit_at(engine, local(1), local(2), local(29))
    with Session(engine) as session, session.begin():
        purge_audit(session, NOW, timedelta(days=2), ZONE, keys)

    with pytest.raises(sa.exc.DBAPIError), engine.begin() as connection:
        connection.execute(sa.delete(AuditEntry).where(AuditEntry.id == 3))

    assert _ids(engine, AuditEntry.id) == [3]


def test_the_database_refuses_to_change_a_seal(engine: Engine, keys: SealKeys) -> None:
    _audit_at(engine, local(1), local(29))
    with Session(engine) as session, session.begin():
        purge_audit(session, NOW, timedelta(days=2), ZONE, keys)

    with pytest.raises(sa.exc.DBAPIError), engine.begin() as connection:
        connection.execute(sa.update(AuditSeal).values(last_id=99))


def test_a_broken_log_is_not_purged(engine: Engine, keys: SealKeys) -> None:
    _audit_at(engine, local(1), local(2), local(29))
    with audit_guards_dropped(engine), engine.begin() as connection:
        connection.execute(
            sa.update(AuditEntry).where(AuditEntry.id == 1).values(actor="nobody")
        )

    with Session(engine) as session, session.begin():
        done = purge_audit(session, NOW, timedelta(days=2), ZONE, keys)

    assert done.deleted == 0
    assert done.problem == "Entry 1 was changed: its contents no longer match its hash."
    assert _ids(engine, AuditEntry.id) == [1, 2, 3]


def test_purge_reports_a_broken_log_and_purges_the_rest(
    engine: Engine, resident: int, keys: SealKeys
) -> None:
    _audit_at(engine, local(1, month=2), local(2, month=2), local(29))
    with Session(engine) as session, session.begin():
        add_declaration(session, resident, local(1))
    with audit_guards_dropped(engine), engine.begin() as connection:
        connection.execute(sa.delete(AuditEntry).where(AuditEntry.id == 2))

    report = purge(engine, NOW, POLICY, keys)

    assert report.deleted["audit"] == 0
    assert report.deleted["declarations"] == 1
    assert len(report.problems) == 1
    assert "Audit entries were not purged" in report.problems[0]


def test_a_forged_purge_seal_lets_rows_go_but_is_found(
    engine: Engine, keys: SealKeys
) -> None:
    _audit_at(engine, local(29), local(29), local(30))
    with Session(engine) as session, session.begin():
        session.add(
            AuditSeal(
                kind="purge",
                last_id=2,
                last_hash="f" * 64,
                sealed_at=NOW,
                key_id="0123456789abcdef",
                signature="00" * 64,
            )
        )
    with engine.begin() as connection:
        connection.execute(sa.delete(AuditEntry).where(AuditEntry.id <= 2))

    with Session(engine) as session:
        report = verify_audit(session, keys)

    assert not report.intact
    assert report.first_broken == 2
    assert "does not verify" in (report.problem or "")
