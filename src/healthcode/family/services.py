"""Whose codes a phone holds: its own resident, and the dependents it guards.

A phone's account registers as one resident (:func:`register_self`). It may
also hold the codes of family members without a smartphone, added by their
identity document (:func:`add_dependent`). A child under 18 or an adult of
60 or more is added at once; anyone else waits for an official's approval,
since holding an adult's code is holding their health data. A guardian
holds at most 8 dependents and a dependent has at most 3 guardians (both
configurable, :class:`FamilyPolicy`); a refusal names the limit.

Every read of a resident's data through a phone goes through
:func:`require_holder`, so a guardian who was removed, or whose link waits
for approval, sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from healthcode.accounts.models import Account
from healthcode.family.errors import (
    AlreadyGuardian,
    DependentLimit,
    GuardianLimit,
    GuardianshipNotPending,
    IdentityMismatch,
    NotRegistered,
    NotYourDependent,
    OwnDependent,
    ResidentTaken,
    UnknownGuardianship,
)
from healthcode.family.models import Guardianship
from healthcode.identity.documents import Document
from healthcode.identity.errors import AlreadyRegistered
from healthcode.identity.models import Resident
from healthcode.identity.names import search_key
from healthcode.identity.services import find_resident, register_resident

__all__ = [
    "FamilyPolicy",
    "add_dependent",
    "approve_guardianship",
    "dependents_of",
    "pending_guardianships",
    "register_self",
    "remove_dependent",
    "require_holder",
    "resident_of",
]

log = structlog.get_logger(__name__)

LIVE = ("active", "pending")


@dataclass(frozen=True)
class FamilyPolicy:
    """Who may be added without approval, and how many on each side."""

    max_dependents: int = 8
    max_guardians: int = 3
    child_under: int = 18
    elder_from: int = 60
    zone: ZoneInfo = ZoneInfo("Asia/Shanghai")


def _claim(
    session: Session, document: Document, name: str, now: datetime, region: str | None
) -> Resident:
    """The resident with ``document``, registered now if nobody knew them.

    Someone already on record (from the identity registry, or added by a
    guardian) is matched only when the name given is theirs, so that a
    document number alone does not open anyone's record.
    """
    resident = find_resident(session, document)
    if resident is None:
        return register_resident(session, document, name, now, region_code=region)
    if search_key(resident.name) != search_key(name):
        raise IdentityMismatch(
            "The name does not match the one on record for this document; enter"
            " it exactly as the document shows it."
        )
    return resident


def register_self(
    session: Session,
    account_id: int,
    document: Document,
    name: str,
    now: datetime,
    *,
    region_code: str | None = None,
) -> Resident:
    """Make the phone's account the resident who carries ``document``.

    A resident already on record is taken over when the name matches and no
    other phone holds them; otherwise a new resident is registered, grey
    until the identity registry confirms them.
    """
    account = session.get(Account, account_id, with_for_update=True)
    if account is None:
        raise NotRegistered("The signed-in account no longer exists.")
    if account.resident_id is not None:
        raise AlreadyRegistered("This phone is already registered as a resident.")
    resident = _claim(session, document, name, now, region_code)
    holder = session.scalars(
        sa.select(Account.id).where(Account.resident_id == resident.id)
    ).first()
    if holder is not None:
        raise ResidentTaken(
            "Another phone is registered as this resident; ask at a community"
            " office to move the registration."
        )
    account.resident_id = resident.id
    session.flush()
    log.info("resident_claimed", account_id=account.id, resident_id=resident.id)
    return resident


def resident_of(session: Session, account_id: int) -> int:
    """The resident id of the phone's own registration."""
    account = session.get(Account, account_id)
    if account is None or account.resident_id is None:
        raise NotRegistered("This phone has not registered as a resident yet.")
    return account.resident_id


def _age(birth: date, today: date) -> int:
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years


def _basis(birth: date | None, now: datetime, policy: FamilyPolicy) -> str:
    if birth is None:
        return "approval"
    age = _age(birth, now.astimezone(policy.zone).date())
    if age < policy.child_under:
        return "child"
    if age >= policy.elder_from:
        return "elder"
    return "approval"


def _live_count(session: Session, column: sa.Column[int], value: int) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Guardianship)
            .where(column == value, Guardianship.state.in_(LIVE))
        )
        or 0
    )


def add_dependent(
    session: Session,
    guardian_id: int,
    document: Document,
    name: str,
    now: datetime,
    policy: FamilyPolicy = FamilyPolicy(),
) -> Guardianship:
    """Link the guardian's account to the resident who carries ``document``.

    The dependent is registered if nobody knew them. The link is active at
    once for a child or an elderly person and pending an official's
    approval for anyone else, or anyone whose birth date is unknown.
    """
    # Locking the guardian's row makes two additions by one guardian at the
    # same moment queue, so that they cannot both pass the limit check.
    guardian = session.get(Account, guardian_id, with_for_update=True)
    if guardian is None:
        raise NotRegistered("The signed-in account no longer exists.")
    resident = _claim(session, document, name, now, None)
    # The dependent's row is locked too, after the guardian's (always in that
    # order), so that two guardians adding them at once count each other.
    session.execute(
        sa.select(Resident.id).where(Resident.id == resident.id).with_for_update()
    )
    if guardian.resident_id == resident.id:
        raise OwnDependent(
            "That is your own document; your code is under /v1/residents/me."
        )
    existing = session.scalars(
        sa.select(Guardianship).where(
            Guardianship.guardian_id == guardian_id,
            Guardianship.dependent_id == resident.id,
            Guardianship.state.in_(LIVE),
        )
    ).first()
    if existing is not None:
        raise AlreadyGuardian(
            f"You already hold this dependent's code (link {existing.id},"
            f" {existing.state})."
        )
    held = _live_count(session, Guardianship.guardian_id, guardian_id)
    if held >= policy.max_dependents:
        raise DependentLimit(
            f"A guardian may hold at most {policy.max_dependents} dependents, and"
            f" you hold {held}; remove one before adding another."
        )
    guardians = _live_count(session, Guardianship.dependent_id, resident.id)
    if guardians >= policy.max_guardians:
        raise GuardianLimit(
            f"A dependent may have at most {policy.max_guardians} guardians, and"
            " this one has that many already; one of them must remove the link"
            " first."
        )
    basis = _basis(resident.birth_date, now, policy)
    link = Guardianship(
        guardian_id=guardian_id,
        dependent_id=resident.id,
        state="pending" if basis == "approval" else "active",
        basis=basis,
        created_at=now,
    )
    session.add(link)
    session.flush()
    log.info(
        "dependent_added",
        guardianship_id=link.id,
        guardian_id=guardian_id,
        dependent_id=resident.id,
        state=link.state,
    )
    return link


def dependents_of(session: Session, guardian_id: int) -> list[Guardianship]:
    """The guardian's live links (active and pending), oldest first."""
    return list(
        session.scalars(
            sa.select(Guardianship)
            .where(
                Guardianship.guardian_id == guardian_id,
                Guardianship.state.in_(LIVE),
            )
            .order_by(Guardianship.id)
        )
    )


def remove_dependent(
    session: Session, guardian_id: int, dependent_id: int, now: datetime
) -> Guardianship:
    """End the guardian's link to the dependent; it stops giving access at once."""
    link = session.scalars(
        sa.select(Guardianship).where(
            Guardianship.guardian_id == guardian_id,
            Guardianship.dependent_id == dependent_id,
            Guardianship.state.in_(LIVE),
        )
    ).first()
    if link is None:
        raise NotYourDependent("You hold no dependent with that id.")
    link.state = "removed"
    link.removed_at = now
    link.removed_by = f"account:{guardian_id}"
    session.flush()
    log.info("dependent_removed", guardianship_id=link.id)
    return link


def require_holder(session: Session, account_id: int, resident_id: int) -> str:
    """Say how the account holds the resident's code: ``self`` or ``guardian``.

    Raises :class:`NotYourDependent` for anyone else, including a guardian
    whose link was removed or still waits for approval.
    """
    account = session.get(Account, account_id)
    if account is not None and account.resident_id == resident_id:
        return "self"
    active = session.scalars(
        sa.select(Guardianship.id).where(
            Guardianship.guardian_id == account_id,
            Guardianship.dependent_id == resident_id,
            Guardianship.state == "active",
        )
    ).first()
    if active is None:
        raise NotYourDependent("You hold no dependent with that id.")
    return "guardian"


def pending_guardianships(session: Session, *, limit: int = 100) -> list[Guardianship]:
    """Links waiting for an official's approval, oldest first."""
    return list(
        session.scalars(
            sa.select(Guardianship)
            .where(Guardianship.state == "pending")
            .order_by(Guardianship.id)
            .limit(limit)
        )
    )


def approve_guardianship(
    session: Session, guardianship_id: int, official_id: int, now: datetime
) -> Guardianship:
    """An official's approval of a pending link; it is active from ``now``."""
    link = session.get(Guardianship, guardianship_id, with_for_update=True)
    if link is None:
        raise UnknownGuardianship("No guardianship has that id.")
    if link.state != "pending":
        raise GuardianshipNotPending(
            f"The guardianship is {link.state}, not waiting for approval."
        )
    link.state = "active"
    link.approved_at = now
    link.approved_by = official_id
    session.flush()
    log.info("guardianship_approved", guardianship_id=link.id, official_id=official_id)
    return link
