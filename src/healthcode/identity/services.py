"""Registering residents and finding them by document or name.

A resident may register before any department has heard of them (a visitor
with a passport, a newborn, a new arrival): they are stored at once, and their
code is grey with the reason "identity being confirmed" until the identity
registry feed, an entry record or an official confirms them. Nobody waits on
a blank screen.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from healthcode.identity.documents import Document
from healthcode.identity.errors import AlreadyRegistered, UnknownResident
from healthcode.identity.models import Resident
from healthcode.identity.names import normalize_name, search_key

log = structlog.get_logger(__name__)


def find_resident(session: Session, document: Document) -> Resident | None:
    kind, country, number = document.key
    return session.scalars(
        sa.select(Resident).where(
            Resident.doc_kind == kind,
            Resident.doc_country == country,
            Resident.doc_number == number,
        )
    ).one_or_none()


def get_resident(session: Session, document: Document) -> Resident:
    resident = find_resident(session, document)
    if resident is None:
        raise UnknownResident("No resident has that identity document.")
    return resident


def register_resident(
    session: Session,
    document: Document,
    name: str,
    now: datetime,
    *,
    region_code: str | None = None,
) -> Resident:
    """Store a new resident, pending confirmation, and give them a status.

    The status is computed in the same transaction, so the resident sees a
    grey code with its reason from the first moment, never no code at all.
    """
    from healthcode.status.services import recolor_residents

    if find_resident(session, document) is not None:
        raise AlreadyRegistered("A resident with that identity document exists.")
    kind, country, number = document.key
    resident = Resident(
        doc_kind=kind,
        doc_country=country,
        doc_number=number,
        name=normalize_name(name),
        birth_date=document.birth_date,
        region_code=region_code,
        identity_state="pending",
        registered_at=now,
    )
    session.add(resident)
    session.flush()
    recolor_residents(session, [resident.id], now, "register")
    log.info("resident_registered", resident_id=resident.id, doc_kind=kind)
    return resident


def search_by_name(session: Session, name: str, *, limit: int = 50) -> list[Resident]:
    """Residents whose name matches ``name`` exactly, in any Unicode form.

    The comparison is on :func:`search_key` (NFC, case-folded, without spaces
    or middle dots), computed in Python, so a name with characters beyond the
    Basic Multilingual Plane matches the same way as any other.
    """
    wanted = search_key(name)
    found = []
    # The LIKE on one character narrows the scan but is still a scan of the
    # name column; at city scale this wants an indexed search key (a keyed
    # blind index once names are encrypted at rest). LIKE compares case on
    # PostgreSQL, and beyond ASCII on SQLite, so the character is looked for
    # in each of its cases; the exact comparison is the search key's.
    narrow = sa.or_(
        *(Resident.name.like(f"%{variant}%") for variant in _first_chars(name))
    )
    for resident in session.scalars(sa.select(Resident).where(narrow)):
        if search_key(resident.name) == wanted:
            found.append(resident)
            if len(found) >= limit:
                break
    return found


def _first_chars(name: str) -> list[str]:
    normalised = normalize_name(name)
    first = normalised[0]
    # LIKE treats these as wildcards; a name never needs them, but a search
    # string must not turn into "match everyone".
    if first in "%_\\":
        return [""]
    cases = {first, first.lower(), first.upper(), first.title(), first.casefold()}
    return sorted(cases)
