"""A guardian's dependents: add, list, remove, and their codes and statuses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from sqlalchemy.orm import Session

from healthcode.audit.services import append
from healthcode.family.models import Guardianship
from healthcode.family.services import (
    add_dependent,
    dependents_of,
    remove_dependent,
    require_holder,
)
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.officials.services import appeals_of, file_appeal
from healthcode.service.deps import AccountCaller, Db, Now, Rt
from healthcode.service.routes.residents import (
    appeal_answer,
    declare_for,
    document_of,
    history_of,
    resident_answer,
    status_of,
)
from healthcode.service.schemas import (
    AppealAnswer,
    AppealRequest,
    CodeAnswer,
    DeclarationAnswer,
    DeclarationRequest,
    DependentAnswer,
    DependentRequest,
    HistoryEvent,
    ResidentAnswer,
    StatusAnswer,
)
from healthcode.service.shapes import code_answer

router = APIRouter(tags=["dependents"])

DependentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The resident id.")]


def _answer(session: Session, link: Guardianship) -> DependentAnswer:
    resident = session.get(Resident, link.dependent_id)
    masked = mask_name(resident.name) if resident is not None else ""
    return DependentAnswer(
        guardianship_id=link.id,
        resident_id=link.dependent_id,
        masked_name=masked,
        state=link.state,  # type: ignore[arg-type]
        basis=link.basis,  # type: ignore[arg-type]
        created_at=link.created_at,
    )


@router.post(
    "/v1/dependents",
    status_code=status.HTTP_201_CREATED,
    response_model=DependentAnswer,
)
def add(
    body: DependentRequest, caller: AccountCaller, rt: Rt, session: Db, now: Now
) -> DependentAnswer:
    """Add a family member by identity document.

    A child under 18 or an adult of 60 or more is added at once; anyone else
    is pending until an official approves. A guardian holds at most 8
    dependents and a dependent has at most 3 guardians.
    """
    document = document_of(body.document, rt, now)
    link = add_dependent(session, caller.id, document, body.name, now, rt.family)
    append(
        session,
        at=now,
        actor=caller.actor,
        action="dependent.add",
        subject=f"resident:{link.dependent_id}",
        details={"guardianshipId": link.id, "state": link.state, "basis": link.basis},
    )
    return _answer(session, link)


@router.get("/v1/dependents", response_model=list[DependentAnswer])
def list_dependents(caller: AccountCaller, session: Db) -> list[DependentAnswer]:
    """The guardian's dependents, active and pending."""
    return [_answer(session, link) for link in dependents_of(session, caller.id)]


@router.delete("/v1/dependents/{dependent_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove(
    dependent_id: DependentId, caller: AccountCaller, session: Db, now: Now
) -> Response:
    """Stop holding a dependent's code; access ends at once."""
    link = remove_dependent(session, caller.id, dependent_id, now)
    append(
        session,
        at=now,
        actor=caller.actor,
        action="dependent.remove",
        subject=f"resident:{dependent_id}",
        details={"guardianshipId": link.id},
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/dependents/{dependent_id}", response_model=ResidentAnswer)
def dependent(
    dependent_id: DependentId, caller: AccountCaller, rt: Rt, session: Db, now: Now
) -> ResidentAnswer:
    """The dependent's registration and status."""
    holder = require_holder(session, caller.id, dependent_id)
    return resident_answer(rt, session, dependent_id, holder, now)


@router.get("/v1/dependents/{dependent_id}/status", response_model=StatusAnswer)
def dependent_status(
    dependent_id: DependentId, caller: AccountCaller, rt: Rt, session: Db, now: Now
) -> StatusAnswer:
    """The dependent's colour with its reasons."""
    require_holder(session, caller.id, dependent_id)
    return status_of(rt, session, dependent_id, now)


@router.get("/v1/dependents/{dependent_id}/code", response_model=CodeAnswer)
def dependent_code(
    dependent_id: DependentId, caller: AccountCaller, rt: Rt, session: Db, now: Now
) -> CodeAnswer:
    """A fresh screen code for the dependent, shown on the guardian's phone."""
    require_holder(session, caller.id, dependent_id)
    return code_answer(rt.codes.screen_code(session, dependent_id, now))


@router.get("/v1/dependents/{dependent_id}/paper-code", response_model=CodeAnswer)
def dependent_paper_code(
    dependent_id: DependentId, caller: AccountCaller, rt: Rt, session: Db, now: Now
) -> CodeAnswer:
    """A paper code to print, valid for days and showing no colour.

    A checkpoint reads the colour from the daily status list or asks the
    service. The same text is shown at every door, so a paper code can be
    linked across visits in a way that a screen code cannot.
    """
    require_holder(session, caller.id, dependent_id)
    return code_answer(rt.codes.paper_code(session, dependent_id, now))


@router.get("/v1/dependents/{dependent_id}/history", response_model=list[HistoryEvent])
def dependent_history(
    dependent_id: DependentId, caller: AccountCaller, session: Db
) -> list[HistoryEvent]:
    """Every change of the dependent's colour, oldest first."""
    require_holder(session, caller.id, dependent_id)
    return history_of(session, dependent_id)


@router.post(
    "/v1/dependents/{dependent_id}/declarations",
    status_code=status.HTTP_201_CREATED,
    response_model=DeclarationAnswer,
)
def declare_for_dependent(
    dependent_id: DependentId,
    body: DeclarationRequest,
    caller: AccountCaller,
    rt: Rt,
    now: Now,
) -> DeclarationAnswer:
    """Declare the dependent's health today, as their guardian."""
    with Session(rt.engine) as session:
        require_holder(session, caller.id, dependent_id)
    return declare_for(rt, caller, dependent_id, body, now, guardian=True)


@router.post(
    "/v1/dependents/{dependent_id}/appeals",
    status_code=status.HTTP_201_CREATED,
    response_model=AppealAnswer,
)
def appeal_for_dependent(
    dependent_id: DependentId,
    body: AppealRequest,
    caller: AccountCaller,
    session: Db,
    now: Now,
) -> AppealAnswer:
    """Appeal the dependent's colour, as their guardian."""
    require_holder(session, caller.id, dependent_id)
    appeal = file_appeal(session, dependent_id, caller.id, body.message, now)
    append(
        session,
        at=now,
        actor=caller.actor,
        action="appeal.file",
        subject=f"resident:{dependent_id}",
        details={"appealId": appeal.id},
    )
    return appeal_answer(appeal)


@router.get("/v1/dependents/{dependent_id}/appeals", response_model=list[AppealAnswer])
def dependent_appeals(
    dependent_id: DependentId, caller: AccountCaller, session: Db
) -> list[AppealAnswer]:
    """The dependent's appeals, with their reviews."""
    require_holder(session, caller.id, dependent_id)
    return [appeal_answer(item) for item in appeals_of(session, dependent_id)]
