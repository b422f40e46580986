"""A resident's own registration, declarations, code, status and history.

The helpers at the bottom serve a guardian's dependents as well (see
:mod:`healthcode.service.routes.dependents`): whoever holds a resident's
code sees the same things, through :func:`healthcode.family.services.require_holder`.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from fastapi import APIRouter, Request, status
from fastapi.responses import Response
from sqlalchemy.orm import Session

from healthcode.family.services import register_self, resident_of
from healthcode.identity import divisions
from healthcode.identity.documents import Document, DocumentKind, parse_document
from healthcode.identity.errors import UnknownResident
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.officials.models import Appeal
from healthcode.officials.services import appeals_of, file_appeal
from healthcode.service.deps import (
    SESSION_SECURITY,
    AccountCaller,
    AccountRef,
    Db,
    Now,
    Rt,
    hot_call,
    request_session_token,
)
from healthcode.service.errors import FeedRefused
from healthcode.service.feeding import Actor, import_rows, report_body
from healthcode.service.runtime import Runtime
from healthcode.service.schemas import (
    AppealAnswer,
    AppealRequest,
    CodeAnswer,
    DeclarationAnswer,
    DeclarationRequest,
    DocumentIn,
    HistoryEvent,
    RegisterRequest,
    ResidentAnswer,
    StatusAnswer,
)
from healthcode.service.shapes import (
    code_answer,
    history_event,
    json_answer,
    status_answer,
)
from healthcode.status.services import status_history

router = APIRouter(tags=["residents"])


def document_of(given: DocumentIn, rt: Runtime, now: datetime) -> Document:
    """The document in normal form, its birth date checked against today."""
    today = now.astimezone(rt.settings.tz).date()
    return parse_document(given.kind.value, given.number, given.country, today=today)


def resident_answer(
    rt: Runtime, session: Session, resident_id: int, holder: str, now: datetime
) -> ResidentAnswer:
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise UnknownResident("No resident has that id.")
    document = Document(
        kind=DocumentKind(resident.doc_kind),
        number=resident.doc_number,
        country=resident.doc_country,
    )
    return ResidentAnswer(
        resident_id=resident.id,
        masked_name=mask_name(resident.name),
        document=document.masked(),
        identity_state=resident.identity_state,  # type: ignore[arg-type]
        holder=holder,  # type: ignore[arg-type]
        status=status_answer(rt.cache.status(session, resident.id, now)),
    )


# First of this router's routes, since routes are matched in order.
@router.get(
    "/v1/residents/me/code", response_model=CodeAnswer, openapi_extra=SESSION_SECURITY
)
async def my_code(request: Request) -> Response:
    """A fresh signed screen code, valid for minutes; ask again for a new one."""
    # The hot path (healthcode.service.hot): when the store holds the status
    # it runs on the event loop, with no dependency but the request.
    rt, now = hot_call(request)
    token, transport = request_session_token(request)
    return json_answer(code_answer(await rt.hot.refresh(token, transport, now)))


@router.post(
    "/v1/residents/me",
    status_code=status.HTTP_201_CREATED,
    response_model=ResidentAnswer,
)
def register(
    body: RegisterRequest, caller: AccountCaller, rt: Rt, session: Db, now: Now
) -> ResidentAnswer:
    """Register the signed-in phone as the resident who carries the document.

    A resident the identity registry already sent is taken over when the
    name matches; anyone else is registered at once and shows grey, with
    the reason "identity being confirmed", until the registry confirms them.
    """
    document = document_of(body.document, rt, now)
    if body.region_code is not None:
        divisions.division(body.region_code)
    resident = register_self(
        session, caller.id, document, body.name, now, region_code=body.region_code
    )
    return resident_answer(rt, session, resident.id, "self", now)


@router.get("/v1/residents/me", response_model=ResidentAnswer)
def me(caller: AccountCaller, rt: Rt, session: Db, now: Now) -> ResidentAnswer:
    """The signed-in phone's own registration and status."""
    return resident_answer(rt, session, resident_of(session, caller.id), "self", now)


@router.get("/v1/residents/me/status", response_model=StatusAnswer)
def my_status(caller: AccountCaller, rt: Rt, session: Db, now: Now) -> StatusAnswer:
    """The colour, every reason for it, as-of time and next change."""
    return status_of(rt, session, resident_of(session, caller.id), now)


@router.get("/v1/residents/me/history", response_model=list[HistoryEvent])
def my_history(caller: AccountCaller, session: Db) -> list[HistoryEvent]:
    """Every change of colour, oldest first."""
    return history_of(session, resident_of(session, caller.id))


@router.post(
    "/v1/residents/me/declarations",
    status_code=status.HTTP_201_CREATED,
    response_model=DeclarationAnswer,
)
def declare(
    body: DeclarationRequest, caller: AccountCaller, rt: Rt, now: Now
) -> DeclarationAnswer:
    """Declare today's health, and a visit elsewhere if there was one."""
    with Session(rt.engine) as session:
        resident_id = resident_of(session, caller.id)
    return declare_for(rt, caller, resident_id, body, now, guardian=False)


@router.post(
    "/v1/residents/me/appeals",
    status_code=status.HTTP_201_CREATED,
    response_model=AppealAnswer,
)
def appeal(
    body: AppealRequest, caller: AccountCaller, session: Db, now: Now
) -> AppealAnswer:
    """Appeal the current colour; an official reviews it and answers here."""
    resident_id = resident_of(session, caller.id)
    return appeal_answer(
        file_appeal(session, resident_id, caller.id, body.message, now)
    )


@router.get("/v1/residents/me/appeals", response_model=list[AppealAnswer])
def my_appeals(caller: AccountCaller, session: Db) -> list[AppealAnswer]:
    """Every appeal of this resident, with its review."""
    resident_id = resident_of(session, caller.id)
    return [appeal_answer(item) for item in appeals_of(session, resident_id)]


# Shared with the dependents' endpoints.


def appeal_answer(appeal: Appeal) -> AppealAnswer:
    return AppealAnswer(
        appeal_id=appeal.id,
        resident_id=appeal.resident_id,
        colour=appeal.colour,  # type: ignore[arg-type]
        rules=list(appeal.rules),
        message=appeal.message,
        state=appeal.state,  # type: ignore[arg-type]
        created_at=appeal.created_at,
        reviewed_at=appeal.reviewed_at,
        review_note=appeal.review_note,
        override_id=appeal.override_id,
    )


def status_of(
    rt: Runtime, session: Session, resident_id: int, now: datetime
) -> StatusAnswer:
    return status_answer(rt.cache.status(session, resident_id, now))


def history_of(session: Session, resident_id: int) -> list[HistoryEvent]:
    return [history_event(event) for event in status_history(session, resident_id)]


def declare_for(
    rt: Runtime,
    caller: AccountRef,
    resident_id: int,
    body: DeclarationRequest,
    now: datetime,
    *,
    guardian: bool,
) -> DeclarationAnswer:
    """Store a declaration through the feed importer, then read the new status.

    Declarations are the resident's own word, department "resident"; one
    that a guardian makes for a dependent is audited as the guardian's.
    """
    with Session(rt.engine) as session:
        resident = session.get(Resident, resident_id)
        if resident is None:
            raise UnknownResident("No resident has that id.")
        row: dict[str, object] = {
            "record_id": f"APP-{secrets.token_hex(12)}",
            "doc_kind": resident.doc_kind,
            "doc_number": resident.doc_number,
            "doc_country": resident.doc_country,
            "declared_at": now.isoformat(),
            "fever": body.fever,
            "respiratory": body.respiratory,
        }
    if body.visited is not None:
        row["visited_code"] = body.visited.code
        row["visited_place"] = body.visited.place
        if body.visited.from_ is not None:
            row["visited_from"] = body.visited.from_.isoformat()
        if body.visited.to is not None:
            row["visited_to"] = body.visited.to.isoformat()
    actor = Actor(caller.actor) if guardian else None
    report = import_rows(rt, "declarations", [row], now, actor=actor)
    if not report.committed:
        first = report.errors[0] if report.errors else None
        raise FeedRefused(
            f"The declaration was not accepted: {first.reason}"
            if first
            else "The declaration was not accepted.",
            report_body(report),
        )
    with Session(rt.engine) as session, session.begin():
        answer = status_of(rt, session, resident_id, now)
    return DeclarationAnswer(record_id=str(row["record_id"]), status=answer)
