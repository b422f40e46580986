"""Officials' work: overrides, bulk overrides, appeals, searches, statistics.

An override is a record, not an edit: an official sets a colour for a
resident with a reason and an expiry, the record goes into the rules' facts
(``overrides``), and the resident's status shows it first among its reasons,
with the author's role and when it ends, above the computed reasons it
overrides. When it expires the computed colour returns by itself.

One action that overrides more residents than the policy's threshold (100 by
default) is a bulk override: it needs a stated legal basis and waits until a
second official approves it. Each resident then
carries an override of their own, which they see and can appeal.

Audit entries for these acts are written by the callers, after the act, in
the same transaction (see :mod:`healthcode.audit.services`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from healthcode.identity.documents import Document
from healthcode.identity.models import Resident
from healthcode.identity.services import find_resident, search_by_name
from healthcode.officials.errors import (
    AppealOpen,
    AppealReviewed,
    BulkOverrideDecided,
    InvalidOverride,
    InvalidReview,
    InvalidSearch,
    LegalBasisRequired,
    SecondOfficialRequired,
    UnknownAppeal,
    UnknownBulkOverride,
    UnknownOverride,
)
from healthcode.officials.models import Appeal, BulkOverride, Override
from healthcode.status.models import Status, StatusEvent
from healthcode.status.services import current_status, recolor_residents

__all__ = [
    "OVERRIDE_COLOURS",
    "OverrideOutcome",
    "OverridePolicy",
    "Statistics",
    "approve_bulk_override",
    "appeals",
    "appeals_of",
    "end_override",
    "file_appeal",
    "reject_bulk_override",
    "review_appeal",
    "search_residents",
    "set_override",
    "statistics",
]

log = structlog.get_logger(__name__)

#: Grey means "identity being confirmed", which an override cannot say.
OVERRIDE_COLOURS = ("green", "yellow", "red")
# SQLite allows 32766 bound parameters per statement; ids go in slices.
_SLICE = 900


@dataclass(frozen=True)
class OverridePolicy:
    """How far ahead an override may end, and when one action is a bulk one."""

    bulk_threshold: int = 100
    max_lifetime: timedelta = timedelta(days=30)
    max_residents: int = 100_000


@dataclass
class OverrideOutcome:
    """Overrides made at once, or the bulk override waiting for approval."""

    overrides: list[Override] = field(default_factory=list)
    bulk: BulkOverride | None = None


def _check_override(
    resident_ids: Sequence[int],
    colour: str,
    reason: str,
    expires_at: datetime,
    now: datetime,
    policy: OverridePolicy,
) -> list[int]:
    if colour not in OVERRIDE_COLOURS:
        raise InvalidOverride(f"An override sets green, yellow or red, not {colour!r}.")
    if not reason or not reason.strip():
        raise InvalidOverride("An override needs a reason the resident can read.")
    if expires_at <= now:
        raise InvalidOverride("An override must expire in the future.")
    if expires_at > now + policy.max_lifetime:
        raise InvalidOverride(
            f"An override may last at most {policy.max_lifetime.days} days; set an"
            " earlier expiry and renew it if it is still needed."
        )
    ids = sorted(set(resident_ids))
    if not ids:
        raise InvalidOverride("An override needs at least one resident.")
    if len(ids) > policy.max_residents:
        raise InvalidOverride(
            f"One action may override at most {policy.max_residents} residents."
        )
    return ids


def _known(session: Session, ids: Sequence[int]) -> None:
    found = 0
    for start in range(0, len(ids), _SLICE):
        chunk = ids[start : start + _SLICE]
        found += int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(Resident)
                .where(Resident.id.in_(chunk))
            )
            or 0
        )
    if found != len(ids):
        raise InvalidOverride(
            f"{len(ids) - found} of the {len(ids)} resident ids are not registered"
            " residents."
        )


def _apply(
    session: Session,
    ids: Sequence[int],
    colour: str,
    reason: str,
    expires_at: datetime,
    author_id: int,
    author_role: str,
    now: datetime,
    *,
    legal_basis: str | None,
    bulk_id: int | None,
) -> list[Override]:
    made = [
        Override(
            resident_id=rid,
            colour=colour,
            reason=reason,
            author_id=author_id,
            author_role=author_role,
            created_at=now,
            expires_at=expires_at,
            legal_basis=legal_basis,
            bulk_id=bulk_id,
        )
        for rid in ids
    ]
    session.add_all(made)
    session.flush()
    cause = f"bulk-override:{bulk_id}" if bulk_id else f"override:{made[0].id}"
    recolor_residents(session, ids, now, cause)
    return made


def set_override(
    session: Session,
    *,
    resident_ids: Sequence[int],
    colour: str,
    reason: str,
    expires_at: datetime,
    author_id: int,
    author_role: str,
    now: datetime,
    legal_basis: str | None = None,
    policy: OverridePolicy = OverridePolicy(),
) -> OverrideOutcome:
    """Override the colour of residents, or propose a bulk override.

    Up to ``policy.bulk_threshold`` residents are overridden at once and
    recoloured in this transaction. More than that needs ``legal_basis``
    and is stored as a pending :class:`BulkOverride` for a second official.
    """
    ids = _check_override(resident_ids, colour, reason, expires_at, now, policy)
    _known(session, ids)
    if len(ids) > policy.bulk_threshold:
        if not legal_basis or not legal_basis.strip():
            raise LegalBasisRequired(
                f"Overriding more than {policy.bulk_threshold} residents in one"
                " action needs a stated legal basis; give legalBasis."
            )
        bulk = BulkOverride(
            colour=colour,
            reason=reason,
            legal_basis=legal_basis,
            expires_at=expires_at,
            resident_ids=ids,
            author_id=author_id,
            author_role=author_role,
            created_at=now,
            state="pending",
        )
        session.add(bulk)
        session.flush()
        log.info("bulk_override_proposed", bulk_id=bulk.id, residents=len(ids))
        return OverrideOutcome(bulk=bulk)
    made = _apply(
        session,
        ids,
        colour,
        reason,
        expires_at,
        author_id,
        author_role,
        now,
        legal_basis=legal_basis,
        bulk_id=None,
    )
    log.info("override_set", residents=len(ids), colour=colour, author_id=author_id)
    return OverrideOutcome(overrides=made)


def _pending_bulk(session: Session, bulk_id: int) -> BulkOverride:
    bulk = session.get(BulkOverride, bulk_id, with_for_update=True)
    if bulk is None:
        raise UnknownBulkOverride("No bulk override has that id.")
    if bulk.state != "pending":
        raise BulkOverrideDecided(f"The bulk override was already {bulk.state}.")
    return bulk


def approve_bulk_override(
    session: Session,
    bulk_id: int,
    approver_id: int,
    now: datetime,
    note: str | None = None,
) -> OverrideOutcome:
    """A second official's approval: every resident gets their override now."""
    bulk = _pending_bulk(session, bulk_id)
    if approver_id == bulk.author_id:
        raise SecondOfficialRequired(
            "A bulk override needs a second official's approval; the official who"
            " proposed it cannot approve it."
        )
    if bulk.expires_at <= now:
        raise InvalidOverride(
            "The bulk override expired before it was approved; propose it again."
        )
    bulk.state = "approved"
    bulk.decided_by = approver_id
    bulk.decided_at = now
    bulk.decision_note = note
    made = _apply(
        session,
        bulk.resident_ids,
        bulk.colour,
        bulk.reason,
        bulk.expires_at,
        bulk.author_id,
        bulk.author_role,
        now,
        legal_basis=bulk.legal_basis,
        bulk_id=bulk.id,
    )
    log.info("bulk_override_approved", bulk_id=bulk.id, approver_id=approver_id)
    return OverrideOutcome(overrides=made, bulk=bulk)


def reject_bulk_override(
    session: Session, bulk_id: int, official_id: int, now: datetime, note: str
) -> BulkOverride:
    """Turn a proposed bulk override down; nobody's colour changes."""
    bulk = _pending_bulk(session, bulk_id)
    bulk.state = "rejected"
    bulk.decided_by = official_id
    bulk.decided_at = now
    bulk.decision_note = note
    session.flush()
    return bulk


def end_override(
    session: Session, override_id: int, official_id: int, now: datetime
) -> Override:
    """End an override before its expiry; the computed colour returns now."""
    override = session.get(Override, override_id, with_for_update=True)
    if override is None:
        raise UnknownOverride("No override has that id.")
    if (override.ended_at is not None and override.ended_at <= now) or (
        override.expires_at <= now
    ):
        raise InvalidOverride("The override has already ended.")
    override.ended_at = now
    override.ended_by = official_id
    session.flush()
    recolor_residents(
        session, [override.resident_id], now, f"override-end:{override.id}"
    )
    return override


# Appeals


def file_appeal(
    session: Session,
    resident_id: int,
    account_id: int,
    message: str,
    now: datetime,
) -> Appeal:
    """Appeal the resident's current colour; one open appeal at a time."""
    waiting = session.scalars(
        sa.select(Appeal.id).where(
            Appeal.resident_id == resident_id, Appeal.state == "open"
        )
    ).first()
    if waiting is not None:
        raise AppealOpen(
            f"Appeal {waiting} of this resident is still waiting for review; add"
            " to it at a community office instead of filing another."
        )
    view = current_status(session, resident_id, now)
    appeal = Appeal(
        resident_id=resident_id,
        account_id=account_id,
        colour=view.colour,
        rules=[reason.get("rule", "") for reason in view.reasons],
        message=message,
        state="open",
        created_at=now,
    )
    session.add(appeal)
    session.flush()
    log.info("appeal_filed", appeal_id=appeal.id, resident_id=resident_id)
    return appeal


def appeals(session: Session, state: str | None, *, limit: int = 100) -> list[Appeal]:
    """Appeals, oldest first, of one state or all."""
    query = sa.select(Appeal).order_by(Appeal.id).limit(limit)
    if state is not None:
        query = query.where(Appeal.state == state)
    return list(session.scalars(query))


def appeals_of(session: Session, resident_id: int) -> list[Appeal]:
    return list(
        session.scalars(
            sa.select(Appeal)
            .where(Appeal.resident_id == resident_id)
            .order_by(Appeal.id)
        )
    )


def review_appeal(
    session: Session,
    appeal_id: int,
    *,
    official_id: int,
    official_role: str,
    outcome: str,
    note: str,
    now: datetime,
    colour: str | None = None,
    expires_at: datetime | None = None,
    policy: OverridePolicy = OverridePolicy(),
) -> Appeal:
    """Uphold the colour, or correct it with an override that the note explains."""
    appeal = session.get(Appeal, appeal_id, with_for_update=True)
    if appeal is None:
        raise UnknownAppeal("No appeal has that id.")
    if appeal.state != "open":
        raise AppealReviewed(f"The appeal was already reviewed: {appeal.state}.")
    if outcome == "upheld":
        if colour is not None or expires_at is not None:
            raise InvalidReview(
                "An upheld appeal keeps the colour; send no colour or expiry."
            )
    elif outcome == "corrected":
        if colour is None or expires_at is None:
            raise InvalidReview(
                "A correction needs the colour to set and when it expires."
            )
        outcome_set = set_override(
            session,
            resident_ids=[appeal.resident_id],
            colour=colour,
            reason=note,
            expires_at=expires_at,
            author_id=official_id,
            author_role=official_role,
            now=now,
            policy=policy,
        )
        appeal.override_id = outcome_set.overrides[0].id
    else:
        raise InvalidReview("The outcome is upheld or corrected.")
    appeal.state = outcome
    appeal.reviewed_at = now
    appeal.reviewed_by = official_id
    appeal.review_note = note
    session.flush()
    log.info("appeal_reviewed", appeal_id=appeal.id, outcome=outcome)
    return appeal


# Search and statistics


def search_residents(
    session: Session,
    *,
    document: Document | None = None,
    name: str | None = None,
    born_in: int | None = None,
    limit: int = 20,
) -> list[Resident]:
    """Residents by exact document, or by name (see :func:`search_by_name`)."""
    if document is not None and name is None:
        found = find_resident(session, document)
        return [] if found is None else [found]
    if name is not None and document is None:
        return search_by_name(session, name, born_in=born_in, limit=limit)
    raise InvalidSearch("Search by a document or by a name, one of the two.")


@dataclass(frozen=True)
class Statistics:
    """Counts by colour, by district and colour, and colour changes by day."""

    by_colour: dict[str, int]
    by_district: list[tuple[str | None, str, int]]
    by_day: list[tuple[str, str, int]]


def _local_day(column: Any, dialect: str, zone: ZoneInfo, now: datetime) -> Any:
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone(zone.key, column), "YYYY-MM-DD")
    # SQLite keeps instants as UTC text and knows no zones; the zone's offset
    # at ``now`` is applied to every row, which is exact for zones without
    # daylight saving time, such as Asia/Shanghai.
    offset = now.astimezone(zone).utcoffset() or timedelta(0)
    return sa.func.date(column, f"{int(offset.total_seconds())} seconds")


def statistics(
    session: Session, now: datetime, zone: ZoneInfo, *, days: int = 7
) -> Statistics:
    """Current colours by district, and how many turned each colour per day."""
    by_colour = {
        colour: int(count)
        for colour, count in session.execute(
            sa.select(Status.colour, sa.func.count()).group_by(Status.colour)
        )
    }
    by_district = [
        (region, colour, int(count))
        for region, colour, count in session.execute(
            sa.select(Resident.region_code, Status.colour, sa.func.count())
            .join(Resident, Resident.id == Status.resident_id)
            .group_by(Resident.region_code, Status.colour)
            .order_by(Resident.region_code, Status.colour)
        )
    ]
    local_today = now.astimezone(zone).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    since = local_today - timedelta(days=days - 1)
    day = _local_day(StatusEvent.at, session.get_bind().dialect.name, zone, now)
    by_day = [
        (str(when), colour, int(count))
        for when, colour, count in session.execute(
            sa.select(day, StatusEvent.new_colour, sa.func.count())
            .where(StatusEvent.at >= since, StatusEvent.at <= now)
            .group_by(day, StatusEvent.new_colour)
            .order_by(day, StatusEvent.new_colour)
        )
    ]
    return Statistics(by_colour, by_district, by_day)
