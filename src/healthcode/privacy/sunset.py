"""The end of the emergency: every personal record deleted, counts kept.

:func:`sunset` first counts every day of the status history by colour and
district into ``daily_counts``, then, in one transaction, seals the audit
log's head as a purge seal, deletes every audit entry behind it and empties
every table that holds anything about a person: residents, their records,
statuses and history, accounts, families, check-ins, officials' work, and
the staff and keys that did it. What stays is what names nobody: the daily
counts, the audit seals, and the rows that order writers. One last audit
entry records the sunset itself. The freed space is overwritten or given
back, so the database's files hold no copy of what went.

Known shortcoming: PostgreSQL's write-ahead log and any archive or replica
of it still hold the rows until they are recycled; those are the
operator's to expire, with the backups.

It asks for a confirmation, the phrase :data:`SUNSET_PHRASE`, and refuses
without it. The keys in the data key directory are not touched; destroying
them afterwards makes every backup of the database taken before the sunset
unreadable where fields are encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import healthcode.models  # noqa: F401  (every table, for the list below)
from healthcode.accounts.services import note_api_keys_changed
from healthcode.audit.models import AuditHead
from healthcode.audit.services import append
from healthcode.db import Base
from healthcode.privacy.counts import record_counts, replay_counts
from healthcode.privacy.errors import SunsetNotConfirmed
from healthcode.privacy.models import AuditSeal
from healthcode.privacy.seals import SealKeys, seal, verify_audit
from healthcode.status.services import retire_statuses

__all__ = ["KEPT_TABLES", "SUNSET_PHRASE", "SunsetReport", "sunset"]

log = structlog.get_logger(__name__)

#: What has to be typed, or given as the flag's meaning, before the sunset.
SUNSET_PHRASE = "delete all personal data"

#: Tables that name nobody and stay. Every other table is emptied, so a
#: table added later is deleted by default rather than kept by mistake.
KEPT_TABLES = frozenset(
    {"daily_counts", "audit_seals", "audit_head", "recolor_guard", "alembic_version"}
)


@dataclass
class SunsetReport:
    """What the sunset counted, sealed and deleted."""

    at: datetime
    days_counted: int = 0
    count_rows: int = 0
    seal_id: int | None = None
    audit_intact: bool = True
    deleted: dict[str, int] = field(default_factory=dict)


def sunset(
    engine: Engine,
    now: datetime,
    keys: SealKeys,
    *,
    zone: ZoneInfo,
    confirmation: str,
) -> SunsetReport:
    """Count, seal and delete, as the module says; ``confirmation`` must match.

    Days are counted in ``zone``. Whether the audit log was intact before it
    went is kept in the last entry, so that a sunset cannot quietly bury a
    broken log.
    """
    if confirmation.strip().lower() != SUNSET_PHRASE:
        raise SunsetNotConfirmed(
            f"The sunset deletes all personal data; it runs only when"
            f" confirmed with the phrase '{SUNSET_PHRASE}'."
        )
    report = SunsetReport(at=now)
    with Session(engine) as session, session.begin():
        counts = replay_counts(session, zone, now.astimezone(zone).date())
        report.days_counted = len(counts)
        report.count_rows = record_counts(session, counts)
    with Session(engine) as session, session.begin():
        before = verify_audit(session, keys)
        report.audit_intact = before.intact
        report.seal_id = _seal_everything(session, now, keys)
        present = set(sa.inspect(session.connection()).get_table_names())
        cleared = [
            table
            for table in reversed(Base.metadata.sorted_tables)
            if table.name not in KEPT_TABLES and table.name in present
        ]
        report.deleted = _clear(session, cleared)
        # Every status is gone: statuses kept in the store (for the service's
        # hot paths) are retired with them, as after any status write.
        retire_statuses(session.connection())
        # Every API key is gone too: a device's key checked a moment ago and
        # kept in the store must not be accepted for the minute it is kept.
        note_api_keys_changed(session)
        append(
            session,
            at=now,
            actor="operator",
            action="privacy.sunset",
            details={
                "daysCounted": report.days_counted,
                "auditIntact": before.intact,
                "auditFirstBroken": before.first_broken,
                "sealId": report.seal_id,
                "deleted": dict(sorted(report.deleted.items())),
            },
        )
    _compact(engine)
    log.info(
        "sunset_done",
        days_counted=report.days_counted,
        rows_deleted=sum(report.deleted.values()),
        seal_id=report.seal_id,
    )
    return report


def _seal_everything(session: Session, now: datetime, keys: SealKeys) -> int | None:
    head = session.get(AuditHead, 1)
    if head is None or head.last_id == 0:
        return None
    sealed_before = session.scalar(
        sa.select(sa.func.max(AuditSeal.last_id)).where(AuditSeal.kind == "purge")
    )
    if int(sealed_before or 0) >= head.last_id:
        return None
    return seal(session, "purge", int(head.last_id), head.last_hash, now, keys).id


def _clear(session: Session, tables: list[sa.Table]) -> dict[str, int]:
    """Empty ``tables`` (children before parents); return rows per table.

    PostgreSQL truncates, which gives the tables new files and unlinks the
    old ones at commit, so the rows do not linger as dead tuples. SQLite
    deletes with secure deletion on, which overwrites the freed space.
    """
    counts: dict[str, int] = {}
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        for table in tables:
            counts[table.name] = int(
                session.scalar(sa.select(sa.func.count()).select_from(table)) or 0
            )
        names = ", ".join(
            connection.dialect.identifier_preparer.quote(t.name) for t in tables
        )
        session.execute(sa.text(f"TRUNCATE {names}"))
        return counts
    session.execute(sa.text("PRAGMA secure_delete = ON"))
    for table in tables:
        counts[table.name] = int(session.execute(table.delete()).rowcount or 0)
    return counts


def _compact(engine: Engine) -> None:
    # SQLite keeps freed pages in the file and old pages in its write-ahead
    # log; rebuilding the file and emptying the log leaves no copy behind.
    if engine.dialect.name != "sqlite":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM")
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
