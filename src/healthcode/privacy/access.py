"""A resident's access to everything held about them, and to who saw it.

:func:`subject_access` gathers, for one resident: their registration, every
department record about them, their status and its history, their visits
and exposures, the overrides and appeals of their colour, the phone that
holds their code and the guardians who do, and every audit entry about
them: each official's read and search that found them, each write by a
department, a guardian or an official, and each checkpoint look-up. What
it returns is what is stored; the caller decides what a screen shows in
full (the HTTP answer masks the document number and the phone).

An audit entry is about a resident when its subject names them, when it
lists them among the residents an act touched (a search, a bulk override),
or when it records an import that wrote one of their records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from healthcode.accounts.models import Account
from healthcode.audit.models import AuditEntry
from healthcode.checkins.models import Checkin, Exposure, Venue
from healthcode.family.models import Guardianship
from healthcode.feeds.models import (
    CaseReport,
    Declaration,
    IdentityRecord,
    LabResult,
    QuarantineOrder,
    TravelSegment,
    Vaccination,
)
from healthcode.identity.errors import UnknownResident
from healthcode.identity.models import Resident
from healthcode.officials.models import Appeal, Override
from healthcode.status.models import Status, StatusEvent

__all__ = ["RECORD_KINDS", "SubjectAccess", "audit_entries_about", "subject_access"]

#: Department records by the name of their feed kind.
RECORD_KINDS: dict[str, Any] = {
    "identities": IdentityRecord,
    "lab-results": LabResult,
    "vaccinations": Vaccination,
    "cases": CaseReport,
    "orders": QuarantineOrder,
    "travel": TravelSegment,
    "declarations": Declaration,
}

# Columns that say nothing to the person: how the importer tells a resent
# record from a corrected one.
# Keyed blind indexes are the database's means of finding a value, not data
# about the resident: the values themselves are shown, opened, instead.
_INTERNAL = frozenset(
    {
        "content_hash",
        "doc_number_index",
        "name_index",
        "name_year_index",
        "phone_index",
    }
)


@dataclass(frozen=True)
class SubjectAccess:
    """Everything held about one resident, as stored, oldest first within each."""

    resident: dict[str, Any]
    records: dict[str, list[dict[str, Any]]]
    status: dict[str, Any] | None
    history: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    exposures: list[dict[str, Any]]
    overrides: list[dict[str, Any]]
    appeals: list[dict[str, Any]]
    account: dict[str, Any] | None
    guardians: list[dict[str, Any]]
    accesses: list[dict[str, Any]] = field(default_factory=list)


def _plain(row: Any) -> dict[str, Any]:
    mapper = sa.inspect(type(row))
    return {
        attribute.key: getattr(row, attribute.key)
        for attribute in mapper.column_attrs
        if attribute.key not in _INTERNAL
    }


def _all(session: Session, model: Any, *where: Any, order: Any) -> list[dict[str, Any]]:
    return [
        _plain(row)
        for row in session.scalars(sa.select(model).where(*where).order_by(*order))
    ]


def subject_access(session: Session, resident_id: int) -> SubjectAccess:
    """Everything held about ``resident_id``; :class:`UnknownResident` if none."""
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise UnknownResident("No resident has that id.")
    records = {
        kind: _all(session, model, model.resident_id == resident_id, order=(model.id,))
        for kind, model in RECORD_KINDS.items()
    }
    status = session.get(Status, resident_id)
    account = session.scalars(
        sa.select(Account).where(Account.resident_id == resident_id)
    ).one_or_none()
    imports = sorted({row["import_id"] for rows in records.values() for row in rows})
    return SubjectAccess(
        resident=_plain(resident),
        records=records,
        status=_plain(status) if status is not None else None,
        history=_all(
            session,
            StatusEvent,
            StatusEvent.resident_id == resident_id,
            order=(StatusEvent.at, StatusEvent.id),
        ),
        visits=_visits(session, resident_id),
        exposures=_all(
            session,
            Exposure,
            Exposure.resident_id == resident_id,
            order=(Exposure.starts_at, Exposure.id),
        ),
        overrides=_all(
            session, Override, Override.resident_id == resident_id, order=(Override.id,)
        ),
        appeals=_all(
            session, Appeal, Appeal.resident_id == resident_id, order=(Appeal.id,)
        ),
        account=_plain(account) if account is not None else None,
        guardians=_all(
            session,
            Guardianship,
            Guardianship.dependent_id == resident_id,
            order=(Guardianship.id,),
        ),
        accesses=audit_entries_about(session, resident_id, imports),
    )


def _visits(session: Session, resident_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(Checkin, Venue.name)
        .join(Venue, Venue.id == Checkin.venue_id)
        .where(Checkin.resident_id == resident_id)
        .order_by(Checkin.checked_in_at, Checkin.id)
    )
    return [{**_plain(visit), "venue_name": name} for visit, name in rows]


def audit_entries_about(
    session: Session, resident_id: int, import_ids: list[int]
) -> list[dict[str, Any]]:
    """The audit entries about a resident, oldest first, without other people.

    An entry's details may list other residents an act touched as well;
    the details are left out, and the entry shows who acted, in what role,
    what they did, when, and the purpose they stated.
    """
    about = [AuditEntry.subject == f"resident:{resident_id}"]
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        details = sa.cast(AuditEntry.details, JSONB)
        about.append(details.contains({"residents": [resident_id]}))
        if import_ids:
            about.append(details["importId"].astext.in_([str(i) for i in import_ids]))
    else:
        listed = sa.func.json_each(AuditEntry.details, "$.residents").table_valued(
            "value"
        )
        # A count of residents is a number under the same key, so only an
        # array is searched.
        is_list = sa.func.json_type(AuditEntry.details, "$.residents") == "array"
        named = sa.select(1).select_from(listed).where(listed.c.value == resident_id)
        about.append(sa.and_(is_list, sa.exists(named)))
        if import_ids:
            about.append(
                sa.func.json_extract(AuditEntry.details, "$.importId").in_(import_ids)
            )
    rows = session.execute(
        sa.select(
            AuditEntry.id,
            AuditEntry.at,
            AuditEntry.actor,
            AuditEntry.actor_role,
            AuditEntry.action,
            AuditEntry.purpose,
        )
        .where(sa.or_(*about))
        .order_by(AuditEntry.id)
    )
    return [
        {
            "entry": entry_id,
            "at": at,
            "actor": actor,
            "actor_role": role,
            "action": action,
            "purpose": purpose,
        }
        for entry_id, at, actor, role, action, purpose in rows
    ]
