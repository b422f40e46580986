"""The resident's phone pages: sign in, register, the code, declare, family, appeal.

Each handler calls the domain services directly, with the service's own
dependencies for the runtime, the clock and the signed-in phone. Forms that
can fail for a reason the person can fix (a mistyped document, a wrong
sign-in code) are shown again with the reason; they run their work in a
transaction of their own, so that a refusal leaves nothing half written.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from healthcode.accounts.services import (
    Principal,
    Transport,
    close_session,
    open_session,
    request_sign_in_code,
    verify_sign_in_code,
)
from healthcode.audit.services import append
from healthcode.codes.card import find_cjk_font, render_card
from healthcode.codes.format import Colour
from healthcode.errors import HealthcodeError
from healthcode.family.services import (
    add_dependent,
    dependents_of,
    register_self,
    remove_dependent,
    require_holder,
    resident_of,
)
from healthcode.identity import divisions
from healthcode.identity.documents import DocumentKind, parse_document
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.officials.services import appeals_of, file_appeal
from healthcode.service.deps import COOKIE_NAME, AccountCaller, AccountRef, Db, Now, Rt
from healthcode.service.errors import answer_for
from healthcode.service.routes.residents import declare_for
from healthcode.service.runtime import Runtime
from healthcode.service.schemas import DeclarationRequest
from healthcode.web.pages import (
    PageRoute,
    page_options,
    qr_svg,
    redirect,
    render,
    safe_next,
)

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Text = Annotated[str, Form(max_length=200)]
OptionalText = Annotated[str, Form(max_length=2000)]
ForId = Annotated[int | None, Query(alias="for", ge=1, le=2**31 - 1)]


@contextmanager
def transaction(rt: Runtime) -> Iterator[Session]:
    """One transaction that commits when the block ends and rolls back on error."""
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        yield session


def _problem(exc: HealthcodeError) -> dict[str, str]:
    _, code, message = answer_for(exc)
    return {"code": code, "message": message}


_SEVERITY = {"red": 0, "yellow": 1, "grey": 2, "green": 3}


def ordered_reasons(reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reasons as a person reads them: an override, then the worst colour first."""
    return sorted(
        reasons,
        key=lambda reason: (
            not reason.get("override", False),
            bool(reason.get("overridden", False)),
            _SEVERITY.get(str(reason.get("colour")), 4),
        ),
    )


# Sign in and out


@router.get("/app/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    return render(
        request, "resident/sign_in.html", step="phone", phone="", next=safe_next(next)
    )


@router.post("/app/sign-in/code")
def send_sign_in_code(
    request: Request,
    rt: Rt,
    now: Now,
    phone: Annotated[str, Form(max_length=32)],
    next: Annotated[str, Form(max_length=500)] = "/app",
) -> Response:
    try:
        valid_until = request_sign_in_code(rt.store, rt.sender, phone, now, rt.sign_in)
    except HealthcodeError as exc:
        return render(
            request,
            "resident/sign_in.html",
            status_code=answer_for(exc)[0],
            step="phone",
            phone=phone,
            next=safe_next(next),
            problem=_problem(exc),
        )
    return render(
        request,
        "resident/sign_in.html",
        step="code",
        phone=phone,
        valid_until=valid_until,
        next=safe_next(next),
    )


@router.post("/app/sign-in")
def sign_in(
    request: Request,
    rt: Rt,
    now: Now,
    phone: Annotated[str, Form(max_length=32)],
    code: Annotated[str, Form(max_length=12)],
    next: Annotated[str, Form(max_length=500)] = "/app",
) -> Response:
    try:
        with transaction(rt) as session:
            account = verify_sign_in_code(
                session, rt.store, phone, code.strip(), now, rt.sign_in
            )
            registered = account.resident_id is not None
            principal = Principal("account", account.id)
    except HealthcodeError as exc:
        return render(
            request,
            "resident/sign_in.html",
            status_code=answer_for(exc)[0],
            step="code",
            phone=phone,
            next=safe_next(next),
            problem=_problem(exc),
        )
    grant = open_session(rt.store, principal, Transport.COOKIE, now, rt.session_ttl)
    response = redirect(safe_next(next) if registered else "/app/register")
    response.set_cookie(
        COOKIE_NAME,
        grant.token,
        max_age=int(rt.session_ttl.total_seconds()),
        httponly=True,
        secure=rt.settings.cookie_secure,
        samesite="strict",
        path="/",
    )
    return response


@router.post("/app/sign-out")
def sign_out(request: Request, rt: Rt) -> Response:
    token = request.cookies.get(COOKIE_NAME)
    if token:
        close_session(rt.store, token)
    response = redirect("/app/sign-in?out=1")
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=rt.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    # The codes and pages kept on the phone for offline use are removed by
    # the sign-in page's script. Clear-Site-Data would remove them too, but
    # with them a checkpoint's queue of check-ins on the same browser.
    return response


# Registration


def _document_form(kind: str, number: str, country: str) -> dict[str, str]:
    return {"kind": kind, "number": number, "country": country}


@router.get("/app/register")
def register_page(request: Request, caller: AccountCaller, rt: Rt) -> Response:
    if caller.resident_id is not None:
        return redirect("/app")
    return render(
        request,
        "resident/register.html",
        kinds=[kind.value for kind in DocumentKind],
        form=_document_form("cn-id", "", "") | {"name": "", "region": ""},
        region_required=rt.settings.region is None,
    )


@router.post("/app/register")
def register(
    request: Request,
    caller: AccountCaller,
    rt: Rt,
    now: Now,
    name: Text,
    number: Annotated[str, Form(max_length=40)],
    kind: Annotated[str, Form(max_length=24)] = "cn-id",
    country: Annotated[str, Form(max_length=3)] = "",
    region: Annotated[str, Form(max_length=6)] = "",
) -> Response:
    form = _document_form(kind, number, country) | {"name": name, "region": region}
    # Without a configured region, codes are issued by the prefecture of the
    # district of residence, so a resident without one could get no code.
    required = rt.settings.region is None
    region_code = region.strip() or None
    problem: dict[str, str] | None = None
    status = 422
    if required and region_code is None:
        problem = {
            "code": "invalid_request",
            "message": "Give the six-digit code of the district you live in.",
        }
    else:
        try:
            today = now.astimezone(rt.settings.tz).date()
            document = parse_document(kind, number, country, today=today)
            if region_code is not None:
                divisions.division(region_code)
            with transaction(rt) as session:
                register_self(
                    session, caller.id, document, name, now, region_code=region_code
                )
        except HealthcodeError as exc:
            problem = _problem(exc)
            status = answer_for(exc)[0]
    if problem is not None:
        return render(
            request,
            "resident/register.html",
            status_code=status,
            kinds=[k.value for k in DocumentKind],
            form=form,
            problem=problem,
            region_required=required,
        )
    return redirect("/app")


# The code screen


def _subject(
    session: Session, caller: AccountRef, dependent: int | None
) -> tuple[int, str]:
    """The resident whose code is asked for, and how the phone holds it."""
    if dependent is None:
        return resident_of(session, caller.id), "self"
    return dependent, require_holder(session, caller.id, dependent)


def _people(session: Session, caller: AccountRef) -> list[dict[str, Any]]:
    """Everyone whose code this phone may show: itself, then active dependents."""
    people = []
    if caller.resident_id is not None:
        own = session.get(Resident, caller.resident_id)
        if own is not None:
            people.append(
                {"id": None, "href": "/app", "name": mask_name(own.name), "self": True}
            )
    for link in dependents_of(session, caller.id):
        resident = session.get(Resident, link.dependent_id)
        people.append(
            {
                "id": link.dependent_id,
                "href": f"/app/family/{link.dependent_id}",
                "name": mask_name(resident.name) if resident else "",
                "self": False,
                "state": link.state,
            }
        )
    return people


def _code_payload(
    rt: Runtime, session: Session, resident_id: int, now: datetime
) -> dict[str, Any]:
    issued = rt.codes.screen_code(session, resident_id, now)
    colour = issued.colour or Colour.GREY
    return {
        "text": issued.text,
        "colour": colour.value,
        "maskedName": issued.masked_name,
        "issuedAt": issued.issued_at.isoformat(),
        "validUntil": issued.valid_until.isoformat(),
        "svg": str(qr_svg(issued.text, colour)),
    }


def _code_screen(
    request: Request,
    rt: Runtime,
    session: Session,
    caller: AccountRef,
    dependent: int | None,
    now: datetime,
    notice: str | None,
) -> Response:
    resident_id, holder = _subject(session, caller, dependent)
    code = _code_payload(rt, session, resident_id, now)
    view = rt.cache.status(session, resident_id, now)
    waiting = [a for a in appeals_of(session, resident_id) if a.state == "open"]
    return render(
        request,
        "resident/code.html",
        code=code,
        status=view,
        reasons=ordered_reasons(view.reasons),
        holder=holder,
        dependent=dependent,
        people=_people(session, caller),
        server_now=now.isoformat(),
        open_appeal=waiting[0] if waiting else None,
        notice=notice,
        query=f"?for={dependent}" if dependent else "",
    )


@router.get("/app")
def code_page(
    request: Request,
    caller: AccountCaller,
    rt: Rt,
    session: Db,
    now: Now,
    notice: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _code_screen(request, rt, session, caller, None, now, notice)


@router.get("/app/family/{dependent_id}")
def dependent_code_page(
    request: Request,
    dependent_id: int,
    caller: AccountCaller,
    rt: Rt,
    session: Db,
    now: Now,
    notice: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _code_screen(request, rt, session, caller, dependent_id, now, notice)


@router.get("/app/code.json")
@page_options(json=True)
def code_json(
    caller: AccountCaller, rt: Rt, session: Db, now: Now, dependent: ForId = None
) -> JSONResponse:
    """A fresh code for the page's script, drawn as SVG here."""
    resident_id, _ = _subject(session, caller, dependent)
    payload = _code_payload(rt, session, resident_id, now)
    payload["serverNow"] = now.isoformat()
    return JSONResponse(payload)


# Declarations


@router.get("/app/declare")
def declare_page(
    request: Request,
    caller: AccountCaller,
    session: Db,
    dependent: ForId = None,
) -> Response:
    _subject(session, caller, dependent)
    return render(
        request,
        "resident/declare.html",
        dependent=dependent,
        form={"place": "", "code": "", "from": "", "to": ""},
    )


def _local_instant(text: str, rt: Runtime) -> str | None:
    """A ``datetime-local`` field's value as an instant in the region's zone."""
    text = text.strip()
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=rt.settings.tz)
    return moment.isoformat()


@router.post("/app/declare")
def declare(
    request: Request,
    caller: AccountCaller,
    rt: Rt,
    now: Now,
    dependent: ForId = None,
    fever: Annotated[str, Form(max_length=3)] = "",
    respiratory: Annotated[str, Form(max_length=3)] = "",
    visited_code: Annotated[str, Form(max_length=6)] = "",
    visited_place: Annotated[str, Form(max_length=500)] = "",
    visited_from: Annotated[str, Form(max_length=32)] = "",
    visited_to: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    form = {
        "place": visited_place,
        "code": visited_code,
        "from": visited_from,
        "to": visited_to,
    }
    problem: dict[str, str] | None = None
    try:
        with transaction(rt) as session:
            resident_id, holder = _subject(session, caller, dependent)
        body: dict[str, Any] = {
            "fever": fever == "yes",
            "respiratory": respiratory == "yes",
        }
        if visited_code.strip():
            visit: dict[str, Any] = {"code": visited_code.strip()}
            if visited_place.strip():
                visit["place"] = visited_place.strip()
            start = _local_instant(visited_from, rt)
            end = _local_instant(visited_to, rt)
            if start:
                visit["from"] = start
            if end:
                visit["to"] = end
            body["visited"] = visit
        declaration = DeclarationRequest.model_validate(body)
        declare_for(
            rt, caller, resident_id, declaration, now, guardian=holder != "self"
        )
    except HealthcodeError as exc:
        problem = _problem(exc)
    except (ValidationError, ValueError):
        problem = {
            "code": "invalid_request",
            "message": "The place code must be six digits and the times must be"
            " dates with a time of day.",
        }
    if problem is not None:
        return render(
            request,
            "resident/declare.html",
            status_code=422,
            dependent=dependent,
            form=form,
            problem=problem,
        )
    back = f"/app/family/{dependent}" if dependent else "/app"
    return redirect(f"{back}?notice=declared")


# Family


@router.get("/app/family")
def family_page(request: Request, caller: AccountCaller, session: Db) -> Response:
    return render(
        request,
        "resident/family.html",
        people=_people(session, caller),
        kinds=[kind.value for kind in DocumentKind],
        form=_document_form("cn-id", "", "") | {"name": ""},
    )


@router.post("/app/family/add")
def family_add(
    request: Request,
    caller: AccountCaller,
    rt: Rt,
    now: Now,
    name: Text,
    number: Annotated[str, Form(max_length=40)],
    kind: Annotated[str, Form(max_length=24)] = "cn-id",
    country: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    form = _document_form(kind, number, country) | {"name": name}
    try:
        today = now.astimezone(rt.settings.tz).date()
        document = parse_document(kind, number, country, today=today)
        with transaction(rt) as session:
            link = add_dependent(session, caller.id, document, name, now, rt.family)
            append(
                session,
                at=now,
                actor=caller.actor,
                action="dependent.add",
                subject=f"resident:{link.dependent_id}",
                details={
                    "guardianshipId": link.id,
                    "state": link.state,
                    "basis": link.basis,
                },
            )
    except HealthcodeError as exc:
        with transaction(rt) as session:
            people = _people(session, caller)
        return render(
            request,
            "resident/family.html",
            status_code=answer_for(exc)[0],
            people=people,
            kinds=[k.value for k in DocumentKind],
            form=form,
            problem=_problem(exc),
        )
    return redirect("/app/family")


@router.post("/app/family/{dependent_id}/remove")
def family_remove(
    dependent_id: int, caller: AccountCaller, session: Db, now: Now
) -> Response:
    link = remove_dependent(session, caller.id, dependent_id, now)
    append(
        session,
        at=now,
        actor=caller.actor,
        action="dependent.remove",
        subject=f"resident:{dependent_id}",
        details={"guardianshipId": link.id},
    )
    return redirect("/app/family")


@router.get("/app/family/{dependent_id}/card.{kind}")
def family_card(
    dependent_id: int,
    kind: str,
    caller: AccountCaller,
    rt: Rt,
    session: Db,
    now: Now,
) -> Response:
    """The dependent's paper code card, to print: PNG or PDF."""
    if kind not in ("png", "pdf"):
        return Response(status_code=404)
    require_holder(session, caller.id, dependent_id)
    font = find_cjk_font()
    _, content = rt.codes.paper_card(session, dependent_id, now)
    image = render_card(content, font)
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, format="PNG", dpi=(300, 300))
        media = "image/png"
    else:
        image.convert("RGB").save(buffer, format="PDF", resolution=300)
        media = "application/pdf"
    return Response(
        buffer.getvalue(),
        media_type=media,
        headers={"Content-Disposition": f'inline; filename="paper-code.{kind}"'},
    )


# Appeals


@router.get("/app/appeal")
def appeal_page(
    request: Request,
    caller: AccountCaller,
    rt: Rt,
    session: Db,
    now: Now,
    dependent: ForId = None,
) -> Response:
    resident_id, _ = _subject(session, caller, dependent)
    return render(
        request,
        "resident/appeal.html",
        dependent=dependent,
        status=rt.cache.status(session, resident_id, now),
        appeals=appeals_of(session, resident_id),
        message="",
    )


@router.post("/app/appeal")
def appeal(
    request: Request,
    caller: AccountCaller,
    rt: Rt,
    now: Now,
    message: OptionalText,
    dependent: ForId = None,
) -> Response:
    text = message.strip()
    problem: dict[str, str] | None = None
    if not text:
        problem = {
            "code": "invalid_request",
            "message": "Say what is wrong with the colour before sending the appeal.",
        }
    else:
        try:
            with transaction(rt) as session:
                resident_id, holder = _subject(session, caller, dependent)
                filed = file_appeal(session, resident_id, caller.id, text, now)
                if holder != "self":
                    append(
                        session,
                        at=now,
                        actor=caller.actor,
                        action="appeal.file",
                        subject=f"resident:{resident_id}",
                        details={"appealId": filed.id},
                    )
        except HealthcodeError as exc:
            problem = _problem(exc)
    if problem is not None:
        with transaction(rt) as session:
            resident_id, _ = _subject(session, caller, dependent)
            view = rt.cache.status(session, resident_id, now)
            filed_before = appeals_of(session, resident_id)
        return render(
            request,
            "resident/appeal.html",
            status_code=422,
            dependent=dependent,
            status=view,
            appeals=filed_before,
            message=message,
            problem=problem,
        )
    back = f"/app/family/{dependent}" if dependent else "/app"
    return redirect(f"{back}?notice=appealed")
