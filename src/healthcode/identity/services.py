"""Registering residents and finding them by document or name.

A resident may register before any department has heard of them (a visitor
with a passport, a newborn, a new arrival): they are stored at once, and their
code is grey with the reason "identity being confirmed" until the identity
registry feed, an entry record or an official confirms them. Nobody waits on
a blank screen.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from healthcode.identity.documents import Document
from healthcode.identity.errors import AlreadyRegistered, UnknownResident
from healthcode.identity.models import Resident
from healthcode.identity.names import name_year_key, normalize_name, search_key

log = structlog.get_logger(__name__)


def find_resident(session: Session, document: Document) -> Resident | None:
    kind, country, number = document.key
    return session.scalars(
        sa.select(Resident).where(
            Resident.doc_kind == kind,
            Resident.doc_country == country,
            Resident.doc_number_index == number,
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


def search_by_name(
    session: Session, name: str, *, born_in: int | None = None, limit: int = 50
) -> list[Resident]:
    """Residents found by name, through the name's blind indexes.

    Without ``born_in``, the residents whose full name has the search key of
    ``name`` (:func:`search_key`: NFC, case-folded, without spaces or middle
    dots), in any Unicode form: one indexed look-up. With ``born_in``, the
    residents born that year whose name begins with ``name`` (a surname, or
    a full name): the index of the first letter and the year gives the
    candidates, whose names are opened and compared here. A part of a name
    from its middle, or a misspelling, finds nobody: the database holds no
    name in clear to compare with.
    """
    wanted = search_key(name)
    if born_in is None:
        query = sa.select(Resident).where(Resident.name_index == wanted)
        return list(session.scalars(query.order_by(Resident.id).limit(limit)))
    partial = name_year_key(name, date(born_in, 12, 31))
    query = sa.select(Resident).where(Resident.name_year_index == partial)
    found = []
    for resident in session.scalars(query.order_by(Resident.id)):
        if search_key(resident.name).startswith(wanted):
            found.append(resident)
            if len(found) >= limit:
                break
    return found
