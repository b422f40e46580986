"""Appending to the audit log and checking its chain.

The log records every official's read of identifiable data and every write
made by anyone other than the resident concerned: departments' feeds,
officials' overrides and reviews, guardians' changes, checkpoints' look-ups.
An entry is appended in the transaction of the act it records, so an act
and its entry commit or vanish together.

Each entry holds the hash of the one before it. The hash covers a canonical
JSON form of every field, so that :func:`verify_log` finds the first entry
that was changed, removed or put out of order. Changing an entry *and* every
hash after it is not detected by the chain alone; that needs the newest hash
copied somewhere the database's owner cannot write, which this module does
not do yet.

Append to the log as the last step of a transaction. Appends queue on one
row (:class:`~healthcode.audit.models.AuditHead`); taking that lock last
keeps a transaction that also writes statuses from waiting for it while
holding the status writers' lock in the other order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthcode.audit.errors import AuditHeadMissing
from healthcode.audit.models import AuditEntry, AuditHead

__all__ = ["GENESIS", "VerifyReport", "append", "entry_hash", "verify_log"]

#: The hash the first entry links to.
GENESIS = "0" * 64


def _plain(value: Any, where: str) -> Any:
    # Only values that come back from a JSON column exactly as they went in
    # may enter the hash: floats and instants could be re-rendered.
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item, where) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item, where) for key, item in value.items()}
    if isinstance(value, datetime):
        return _instant(value)
    raise TypeError(f"audit {where} may hold only JSON text, numbers and lists")


def _instant(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("an audit instant must be aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    *,
    id: int,
    at: datetime,
    actor: str,
    actor_role: str | None,
    action: str,
    subject: str | None,
    purpose: str | None,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The SHA-256, in hex, of an entry's canonical form."""
    canonical = orjson.dumps(
        {
            "id": id,
            "at": _instant(at),
            "actor": actor,
            "actorRole": actor_role,
            "action": action,
            "subject": subject,
            "purpose": purpose,
            "details": _plain(dict(details), "details"),
            "prev": prev_hash,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    actor_role: str | None = None,
    subject: str | None = None,
    purpose: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry, linked to the newest, inside ``session``'s transaction."""
    plain = _plain(dict(details or {}), "details")
    head = session.execute(
        sa.update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_id=AuditHead.last_id + 1)
        .returning(AuditHead.last_id, AuditHead.last_hash)
    ).one_or_none()
    if head is None:
        raise AuditHeadMissing(
            "The audit log's head row is missing; run the database migrations."
        )
    number, prev = int(head[0]), head[1]
    digest = entry_hash(
        id=number,
        at=at,
        actor=actor,
        actor_role=actor_role,
        action=action,
        subject=subject,
        purpose=purpose,
        details=plain,
        prev_hash=prev,
    )
    entry = AuditEntry(
        id=number,
        at=at,
        actor=actor,
        actor_role=actor_role,
        action=action,
        subject=subject,
        purpose=purpose,
        details=plain,
        prev_hash=prev,
        hash=digest,
    )
    session.add(entry)
    session.flush()
    session.execute(
        sa.update(AuditHead).where(AuditHead.id == 1).values(last_hash=digest)
    )
    return entry


@dataclass(frozen=True)
class VerifyReport:
    """What a check of the chain found; ``first_broken`` is None when intact."""

    entries: int
    first_broken: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def verify_log(
    session: Session,
    *,
    batch: int = 5000,
    start_id: int = 1,
    start_prev: str = GENESIS,
) -> VerifyReport:
    """Walk the log in order and name the first entry whose link is broken.

    A log whose oldest entries were purged by retention is walked from
    ``start_id``, the first entry kept, which must link to ``start_prev``,
    the hash a signed purge seal vouches for (see
    :func:`healthcode.privacy.seals.verify_audit`).
    """
    expected_id = start_id
    prev = start_prev
    count = 0
    last = start_id - 1
    while True:
        # Plain rows rather than objects: a walk over millions of entries
        # should not fill the session's identity map.
        table = AuditEntry.__table__
        rows = session.execute(
            sa.select(table).where(table.c.id > last).order_by(table.c.id).limit(batch)
        ).all()
        if not rows:
            break
        for entry in rows:
            count += 1
            if entry.id != expected_id:
                return VerifyReport(
                    count,
                    entry.id,
                    f"Entry {entry.id} follows entry {expected_id - 1}: the entries"
                    " between them are missing.",
                )
            if entry.prev_hash != prev:
                return VerifyReport(
                    count,
                    entry.id,
                    f"Entry {entry.id} does not link to entry {entry.id - 1}: one of"
                    " the two was changed or replaced.",
                )
            digest = entry_hash(
                id=entry.id,
                at=entry.at,
                actor=entry.actor,
                actor_role=entry.actor_role,
                action=entry.action,
                subject=entry.subject,
                purpose=entry.purpose,
                details=entry.details,
                prev_hash=entry.prev_hash,
            )
            if digest != entry.hash:
                return VerifyReport(
                    count,
                    entry.id,
                    f"Entry {entry.id} was changed: its contents no longer match"
                    " its hash.",
                )
            prev = entry.hash
            expected_id += 1
            last = entry.id
    head = session.get(AuditHead, 1)
    if head is None:
        return VerifyReport(count, expected_id, "The audit log's head row is missing.")
    if head.last_id != last or head.last_hash != prev:
        return VerifyReport(
            count,
            last + 1,
            f"The log ends at entry {last} but its head says {head.last_id}: entries"
            " at the end are missing or the head was changed.",
        )
    return VerifyReport(count)
