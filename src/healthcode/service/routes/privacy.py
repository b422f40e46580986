"""What the platform holds about a resident, and every access to it.

A resident asks for their own; a guardian for a dependent's, which is
audited like any read of a person's data by someone else. The answer holds
every stored value except two, which it masks: the document number and the
phone number, which the caller knows already and a screen need not show.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic.alias_generators import to_camel
from sqlalchemy.orm import Session

from healthcode.accounts.senders import mask_phone
from healthcode.audit.services import append
from healthcode.family.services import require_holder, resident_of
from healthcode.identity.documents import Document, DocumentKind
from healthcode.privacy.access import SubjectAccess, subject_access
from healthcode.service.deps import AccountCaller, Db, Now

router = APIRouter(tags=["residents"])

DependentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The resident id.")]


def subject_answer(found: SubjectAccess) -> dict[str, Any]:
    """The answer for ``found``: camelCase columns, number and phone masked.

    Only the names of stored columns are turned into camelCase; what a JSON
    column holds (a status's reasons) is shown as it is stored.
    """
    resident = dict(found.resident)
    resident["doc_number"] = Document(
        kind=DocumentKind(resident["doc_kind"]),
        number=resident["doc_number"],
        country=resident["doc_country"],
    ).masked()
    account = dict(found.account) if found.account is not None else None
    if account is not None:
        account["phone"] = mask_phone(account["phone"])
    return {
        "resident": _camel(resident),
        "records": {
            kind: [_camel(row) for row in rows] for kind, rows in found.records.items()
        },
        "status": _camel(found.status) if found.status is not None else None,
        "history": [_camel(row) for row in found.history],
        "visits": [_camel(row) for row in found.visits],
        "exposures": [_camel(row) for row in found.exposures],
        "overrides": [_camel(row) for row in found.overrides],
        "appeals": [_camel(row) for row in found.appeals],
        "account": _camel(account) if account is not None else None,
        "guardians": [_camel(row) for row in found.guardians],
        "accesses": [_camel(row) for row in found.accesses],
    }


def _camel(row: dict[str, Any]) -> dict[str, Any]:
    return {to_camel(key): value for key, value in row.items()}


@router.get("/v1/residents/me/data")
def my_data(caller: AccountCaller, session: Db) -> dict[str, Any]:
    """Everything held about you, and every access to it by someone else."""
    return subject_answer(subject_access(session, resident_of(session, caller.id)))


@router.get("/v1/dependents/{dependent_id}/data")
def dependent_data(
    dependent_id: DependentId, caller: AccountCaller, session: Db, now: Now
) -> dict[str, Any]:
    """Everything held about a dependent; the guardian's read is audited."""
    holder = require_holder(session, caller.id, dependent_id)
    found = subject_access(session, dependent_id)
    if holder != "self":
        _audit_read(session, caller.actor, dependent_id, now)
    return subject_answer(found)


def _audit_read(session: Session, actor: str, resident_id: int, now: datetime) -> None:
    append(
        session,
        at=now,
        actor=actor,
        actor_role="guardian",
        action="resident.data.read",
        subject=f"resident:{resident_id}",
    )
