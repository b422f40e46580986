"""The officials' console: dashboard, feeds, risk areas, appeals, overrides, search.

Officials sign in with user name, password and TOTP, as with the service's
own endpoint, and get a session cookie. Each page checks the permission its
work needs against the role the official holds now; a page an official may
not use answers "not for your account". Every act and every read of
identifiable data is appended to the audit log in the transaction of the
act, with the same actions the service's endpoints record.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Form, Query, Request, Response, UploadFile
from sqlalchemy.orm import Session

from healthcode.accounts.services import (
    ApiKeyKind,
    Permission,
    Principal,
    Transport,
    authenticate_official,
    close_session,
    create_api_key,
    limit_official_sign_in,
    open_session,
    require_permission,
)
from healthcode.checkins.services import register_venue, venue_stays
from healthcode.errors import HealthcodeError
from healthcode.feeds.formats import FEED_KINDS
from healthcode.feeds.models import RiskArea
from healthcode.identity import divisions
from healthcode.identity.documents import Document, DocumentKind, parse_document
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.officials.models import BulkOverride
from healthcode.officials.services import (
    appeals,
    approve_bulk_override,
    reject_bulk_override,
    review_appeal,
    search_residents,
    set_override,
    statistics,
)
from healthcode.service.deps import (
    COOKIE_NAME,
    Db,
    Now,
    OfficialCaller,
    OfficialRef,
    Rt,
)
from healthcode.service.errors import answer_for
from healthcode.service.feeding import Actor, import_file, import_rows
from healthcode.service.runtime import Runtime
from healthcode.web import plots
from healthcode.web.pages import PageRoute, redirect, render, words

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

COLOURS = ("green", "yellow", "red", "grey")
Line = Annotated[str, Form(max_length=500)]


@contextmanager
def transaction(rt: Runtime) -> Iterator[Session]:
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        yield session


def _problem(exc: HealthcodeError) -> dict[str, str]:
    _, code, message = answer_for(exc)
    return {"code": code, "message": message}


def _may(official: OfficialRef, permission: Permission) -> bool:
    try:
        require_permission(official.role, permission)
    except HealthcodeError:
        return False
    return True


def _page(
    request: Request, official: OfficialRef, template: str, **context: Any
) -> Response:
    allowed = {p.value: _may(official, p) for p in Permission}
    status = context.pop("status_code", 200)
    return render(
        request,
        template,
        status_code=status,
        official=official,
        allowed=allowed,
        **context,
    )


def _local(text: str, rt: Runtime) -> datetime:
    """A ``datetime-local`` value, read in the region's zone."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=rt.settings.tz)
    return moment


# Signing in


@router.get("/console/sign-in")
def sign_in_page(request: Request) -> Response:
    return render(request, "console/sign_in.html", username="")


@router.post("/console/sign-in")
def sign_in(
    request: Request,
    rt: Rt,
    now: Now,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    totp: Annotated[str, Form(max_length=12)],
) -> Response:
    try:
        limit_official_sign_in(rt.limiter, username, now)
        with transaction(rt) as session:
            official = authenticate_official(
                session, username, password, totp.strip(), now
            )
            principal = Principal("official", official.id, official.role)
    except HealthcodeError as exc:
        return render(
            request,
            "console/sign_in.html",
            status_code=answer_for(exc)[0],
            username=username,
            problem=_problem(exc),
        )
    ttl = rt.official_session_ttl
    grant = open_session(rt.store, principal, Transport.COOKIE, now, ttl)
    response = redirect("/console")
    response.set_cookie(
        COOKIE_NAME,
        grant.token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        secure=rt.settings.cookie_secure,
        samesite="strict",
        path="/",
    )
    return response


@router.post("/console/sign-out")
def sign_out(request: Request, rt: Rt) -> Response:
    token = request.cookies.get(COOKIE_NAME)
    if token:
        close_session(rt.store, token)
    response = redirect("/console/sign-in")
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


# The dashboard


def _district(code: str | None, language: str) -> str:
    if code is None:
        return "—"
    try:
        return divisions.division(code).name
    except HealthcodeError:
        return code


@router.get("/console")
def dashboard(
    request: Request, official: OfficialCaller, rt: Rt, session: Db, now: Now
) -> Response:
    require_permission(official.role, Permission.READ_STATISTICS)
    stats = statistics(session, now, rt.settings.tz, days=7)
    texts = _colour_words(request)
    by_colour = plots.bar_chart(
        texts["title_now"],
        [texts[c] for c in COLOURS],
        [stats.by_colour.get(c, 0) for c in COLOURS],
        list(COLOURS),
    )
    today = now.astimezone(rt.settings.tz).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
    labels = {c: texts[c] for c in COLOURS}
    by_day = plots.stacked_bars(
        texts["title_days"],
        [day[5:] for day in days],
        plots.series_from(
            [(day[5:], colour, count) for day, colour, count in stats.by_day],
            [day[5:] for day in days],
            labels,
        ),
    )
    districts = sorted({region for region, _, _ in stats.by_district}, key=str)
    names = [_district(code, "zh") for code in districts]
    by_district = plots.stacked_bars(
        texts["title_districts"],
        names,
        plots.series_from(
            [
                (_district(region, "zh"), colour, count)
                for region, colour, count in stats.by_district
            ],
            names,
            labels,
        ),
    )
    return _page(
        request,
        official,
        "console/dashboard.html",
        stats=stats,
        colours=COLOURS,
        days=days,
        plots=[by_colour, by_day, by_district],
    )


def _colour_words(request: Request) -> dict[str, str]:
    return words(request, "console/words.html")


# Appeals


def _appeal_rows(session: Session) -> list[dict[str, Any]]:
    rows = []
    for appeal in appeals(session, "open"):
        resident = session.get(Resident, appeal.resident_id)
        rows.append(
            {
                "appeal": appeal,
                "name": mask_name(resident.name) if resident else "",
            }
        )
    return rows


@router.get("/console/appeals")
def appeals_page(
    request: Request, official: OfficialCaller, session: Db, now: Now
) -> Response:
    require_permission(official.role, Permission.REVIEW_APPEALS)
    rows = _appeal_rows(session)
    official.audit(
        session,
        now,
        "appeals.list",
        state="open",
        residents=sorted({row["appeal"].resident_id for row in rows}),
    )
    return _page(request, official, "console/appeals.html", rows=rows)


@router.post("/console/appeals/{appeal_id}/review")
def review(
    request: Request,
    appeal_id: int,
    official: OfficialCaller,
    rt: Rt,
    now: Now,
    outcome: Annotated[str, Form(max_length=12)],
    note: Line,
    colour: Annotated[str, Form(max_length=8)] = "",
    expires: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    require_permission(official.role, Permission.REVIEW_APPEALS)
    try:
        with transaction(rt) as session:
            expires_at = _local(expires, rt) if expires.strip() else None
            appeal = review_appeal(
                session,
                appeal_id,
                official_id=official.id,
                official_role=official.role,
                outcome=outcome,
                note=note.strip(),
                now=now,
                colour=colour or None,
                expires_at=expires_at,
                policy=rt.overrides,
            )
            if appeal.override_id is not None:
                official.audit(
                    session,
                    now,
                    "override.set",
                    f"resident:{appeal.resident_id}",
                    colour=colour,
                    reason=note,
                    expiresAt=expires_at,
                    residents=[appeal.resident_id],
                    overrideIds=[appeal.override_id],
                    appealId=appeal.id,
                )
            official.audit(
                session,
                now,
                "appeal.review",
                f"resident:{appeal.resident_id}",
                appealId=appeal.id,
                outcome=appeal.state,
                overrideId=appeal.override_id,
            )
    except (HealthcodeError, ValueError) as exc:
        with transaction(rt) as session:
            rows = _appeal_rows(session)
        problem = (
            _problem(exc)
            if isinstance(exc, HealthcodeError)
            else {"code": "invalid_request", "message": "The expiry is not a time."}
        )
        return _page(
            request,
            official,
            "console/appeals.html",
            status_code=422,
            rows=rows,
            problem=problem,
        )
    return redirect("/console/appeals")


# Overrides


def _pending(session: Session) -> list[BulkOverride]:
    return list(
        session.scalars(
            sa.select(BulkOverride)
            .where(BulkOverride.state == "pending")
            .order_by(BulkOverride.id)
            .limit(100)
        )
    )


@router.get("/console/overrides")
def overrides_page(
    request: Request,
    official: OfficialCaller,
    session: Db,
    done: Annotated[str, Query(max_length=12)] = "",
    count: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    require_permission(official.role, Permission.OVERRIDE)
    return _page(
        request,
        official,
        "console/overrides.html",
        pending=_pending(session),
        form={},
        done=done,
        count=count,
    )


def _ids(text: str) -> list[int]:
    ids = []
    for part in text.replace(",", " ").split():
        if not part.isdigit() or not 1 <= int(part) < 2**31:
            raise ValueError(part)
        ids.append(int(part))
    return ids


@router.post("/console/overrides")
def override(
    request: Request,
    official: OfficialCaller,
    rt: Rt,
    now: Now,
    residents: Annotated[str, Form(max_length=200_000)],
    colour: Annotated[str, Form(max_length=8)],
    reason: Line,
    expires: Annotated[str, Form(max_length=32)],
    legal_basis: Line = "",
) -> Response:
    require_permission(official.role, Permission.OVERRIDE)
    form = {"residents": residents, "colour": colour, "reason": reason}
    form |= {"expires": expires, "legal_basis": legal_basis}
    notice = None
    try:
        ids = _ids(residents)
        with transaction(rt) as session:
            outcome = set_override(
                session,
                resident_ids=ids,
                colour=colour,
                reason=reason.strip(),
                expires_at=_local(expires, rt),
                author_id=official.id,
                author_role=official.role,
                now=now,
                legal_basis=legal_basis.strip() or None,
                policy=rt.overrides,
            )
            unique = sorted(set(ids))
            if outcome.bulk is not None:
                subject: str | None = f"bulk-override:{outcome.bulk.id}"
            else:
                subject = f"resident:{unique[0]}" if len(unique) == 1 else None
            official.audit(
                session,
                now,
                "override.propose" if outcome.bulk else "override.set",
                subject,
                legal_basis.strip() or None,
                colour=colour,
                reason=reason,
                expiresAt=_local(expires, rt),
                residents=unique,
                overrideIds=[o.id for o in outcome.overrides],
            )
            notice = "proposed" if outcome.bulk is not None else "applied"
            count = len(unique)
    except HealthcodeError as exc:
        problem = _problem(exc)
    except ValueError:
        problem = {
            "code": "invalid_request",
            "message": "Give resident ids as whole numbers and the expiry as a time.",
        }
    else:
        return redirect(f"/console/overrides?done={notice}&count={count}")
    with transaction(rt) as session:
        pending = _pending(session)
    return _page(
        request,
        official,
        "console/overrides.html",
        status_code=422,
        pending=pending,
        form=form,
        problem=problem,
    )


@router.post("/console/bulk-overrides/{bulk_id}/{decision}")
def decide_bulk(
    request: Request,
    bulk_id: int,
    decision: str,
    official: OfficialCaller,
    rt: Rt,
    now: Now,
    note: Line = "",
) -> Response:
    require_permission(official.role, Permission.APPROVE_BULK_OVERRIDES)
    try:
        with transaction(rt) as session:
            if decision == "approve":
                outcome = approve_bulk_override(
                    session, bulk_id, official.id, now, note.strip() or None
                )
                bulk = outcome.bulk
                official.audit(
                    session,
                    now,
                    "override.approve",
                    f"bulk-override:{bulk_id}",
                    bulk.legal_basis if bulk else None,
                    residents=len(outcome.overrides),
                    note=note,
                )
            elif decision == "reject" and note.strip():
                reject_bulk_override(session, bulk_id, official.id, now, note.strip())
                official.audit(
                    session,
                    now,
                    "override.reject",
                    f"bulk-override:{bulk_id}",
                    note=note,
                )
            else:
                raise ValueError(decision)
    except (HealthcodeError, ValueError) as exc:
        with transaction(rt) as session:
            pending = _pending(session)
        problem = (
            _problem(exc)
            if isinstance(exc, HealthcodeError)
            else {"code": "invalid_request", "message": "A rejection needs a note."}
        )
        return _page(
            request,
            official,
            "console/overrides.html",
            status_code=403 if "second" in problem["message"] else 422,
            pending=pending,
            form={},
            problem=problem,
        )
    done = "approved" if decision == "approve" else "rejected"
    return redirect(f"/console/overrides?done={done}")


# Search


@router.get("/console/search")
def search_page(request: Request, official: OfficialCaller) -> Response:
    require_permission(official.role, Permission.SEARCH_RESIDENTS)
    return _page(
        request,
        official,
        "console/search.html",
        kinds=[kind.value for kind in DocumentKind],
        form={
            "kind": "cn-id",
            "number": "",
            "country": "",
            "name": "",
            "born_in": "",
            "purpose": "",
        },
        found=None,
    )


def _masked_document(resident: Resident) -> str:
    return Document(
        kind=DocumentKind(resident.doc_kind),
        number=resident.doc_number,
        country=resident.doc_country,
    ).masked()


@router.post("/console/search")
def search(
    request: Request,
    official: OfficialCaller,
    rt: Rt,
    now: Now,
    purpose: Line,
    kind: Annotated[str, Form(max_length=24)] = "cn-id",
    number: Annotated[str, Form(max_length=40)] = "",
    country: Annotated[str, Form(max_length=3)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    born_in: Annotated[str, Form(max_length=4, pattern=r"^((19|20)[0-9]{2})?$")] = "",
) -> Response:
    require_permission(official.role, Permission.SEARCH_RESIDENTS)
    form = {"kind": kind, "number": number, "country": country, "name": name}
    form["born_in"] = born_in
    form["purpose"] = purpose
    found: list[dict[str, Any]] | None = None
    problem = None
    try:
        if len(purpose.strip()) < 5:
            raise ValueError("purpose")
        with transaction(rt) as session:
            today = now.astimezone(rt.settings.tz).date()
            document = (
                parse_document(kind, number, country, today=today)
                if number.strip()
                else None
            )
            residents = search_residents(
                session,
                document=document,
                name=name.strip() or None,
                born_in=int(born_in) if born_in else None,
            )
            found = [
                {
                    "id": resident.id,
                    "name": resident.name,
                    "document": _masked_document(resident),
                    "region": resident.region_code,
                    "identity": resident.identity_state,
                    "colour": rt.cache.status(session, resident.id, now).colour,
                }
                for resident in residents
            ]
            official.audit(
                session,
                now,
                "resident.search",
                purpose=purpose.strip(),
                by="document" if document else "name",
                residents=[row["id"] for row in found],
            )
    except HealthcodeError as exc:
        problem = _problem(exc)
    except ValueError:
        problem = {
            "code": "invalid_request",
            "message": "Say why you search, in a few words; it is kept in the audit"
            " log.",
        }
    return _page(
        request,
        official,
        "console/search.html",
        status_code=422 if problem else 200,
        kinds=[k.value for k in DocumentKind],
        form=form,
        found=found,
        problem=problem,
    )


# Risk areas and feeds


def _areas(session: Session, now: datetime) -> list[RiskArea]:
    return list(
        session.scalars(
            sa.select(RiskArea)
            .where(sa.or_(RiskArea.ends_at.is_(None), RiskArea.ends_at > now))
            .order_by(RiskArea.level, RiskArea.code)
            .limit(500)
        )
    )


@router.get("/console/risk-areas")
def risk_areas_page(
    request: Request, official: OfficialCaller, session: Db, now: Now
) -> Response:
    require_permission(official.role, Permission.DECLARE_RISK_AREAS)
    return _page(
        request,
        official,
        "console/risk_areas.html",
        areas=_areas(session, now),
        report=None,
        form={},
    )


@router.post("/console/risk-areas")
def declare_risk_area(
    request: Request,
    official: OfficialCaller,
    rt: Rt,
    now: Now,
    record_id: Annotated[str, Form(max_length=64)],
    code: Annotated[str, Form(max_length=6)],
    level: Annotated[str, Form(max_length=8)],
    starts: Annotated[str, Form(max_length=32)],
    name: Line = "",
    ends: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    require_permission(official.role, Permission.DECLARE_RISK_AREAS)
    form = {"record_id": record_id, "code": code, "level": level, "name": name}
    form |= {"starts": starts, "ends": ends}
    report = None
    problem = None
    try:
        row = {
            "record_id": record_id.strip(),
            "code": code.strip(),
            "name": name.strip() or None,
            "level": level,
            "starts_at": _local(starts, rt).isoformat(),
            "ends_at": _local(ends, rt).isoformat() if ends.strip() else None,
        }
        report = import_rows(
            rt,
            "risk-areas",
            [row],
            now,
            actor=Actor(official.actor, official.role),
        )
    except HealthcodeError as exc:
        problem = _problem(exc)
    except ValueError:
        problem = {"code": "invalid_request", "message": "The times are not times."}
    with transaction(rt) as session:
        areas = _areas(session, now)
    return _page(
        request,
        official,
        "console/risk_areas.html",
        status_code=422 if problem or (report and not report.committed) else 200,
        areas=areas,
        report=report,
        form=form if problem or (report and not report.committed) else {},
        problem=problem,
    )


@router.get("/console/feeds")
def feeds_page(request: Request, official: OfficialCaller) -> Response:
    require_permission(official.role, Permission.DECLARE_RISK_AREAS)
    return _page(request, official, "console/feeds.html", kinds=FEED_KINDS, report=None)


@router.post("/console/feeds")
async def upload_feed(
    request: Request,
    official: OfficialCaller,
    rt: Rt,
    now: Now,
    kind: Annotated[str, Form(max_length=32)],
    feed: UploadFile,
    skip_bad: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    from starlette.concurrency import run_in_threadpool

    require_permission(official.role, Permission.DECLARE_RISK_AREAS)
    problem = None
    report = None
    suffix = Path(feed.filename or "").suffix.lower()
    if kind not in FEED_KINDS or suffix not in (".csv", ".ndjson", ".jsonl"):
        problem = {
            "code": "feed_unknown_format",
            "message": "Choose a feed kind and a .csv or .ndjson file.",
        }
    else:
        with tempfile.TemporaryDirectory(prefix="healthcode-upload-") as folder:
            path = Path(folder) / f"upload{'.ndjson' if suffix != '.csv' else '.csv'}"
            size = 0
            with path.open("wb") as out:
                while chunk := await feed.read(1 << 20):
                    size += len(chunk)
                    if size > rt.settings.max_upload_bytes:
                        problem = {
                            "code": "upload_too_large",
                            "message": "The file is too large; split it.",
                        }
                        break
                    out.write(chunk)
            if problem is None:
                try:
                    report = await run_in_threadpool(
                        import_file,
                        rt,
                        kind,
                        path,
                        now,
                        actor=Actor(official.actor, official.role),
                        skip_bad=skip_bad == "yes",
                    )
                except HealthcodeError as exc:
                    problem = _problem(exc)
    return _page(
        request,
        official,
        "console/feeds.html",
        status_code=422 if problem or (report and not report.committed) else 200,
        kinds=FEED_KINDS,
        report=report,
        file_name=feed.filename or "",
        problem=problem,
    )


# Venues


@router.get("/console/venues")
def venues_page(request: Request, official: OfficialCaller) -> Response:
    require_permission(official.role, Permission.MANAGE_ACCOUNTS)
    return _page(
        request,
        official,
        "console/venues.html",
        types=sorted(venue_stays()),
        form={},
        made=None,
    )


@router.post("/console/venues")
def add_venue(
    request: Request,
    official: OfficialCaller,
    rt: Rt,
    now: Now,
    name: Annotated[str, Form(max_length=200)],
    address: Line,
    region: Annotated[str, Form(max_length=6)],
    venue_type: Annotated[str, Form(max_length=32)],
) -> Response:
    """Register a venue and make its operator's key, shown this once."""
    require_permission(official.role, Permission.MANAGE_ACCOUNTS)
    form = {"name": name, "address": address, "region": region}
    form["venue_type"] = venue_type
    try:
        with transaction(rt) as session:
            venue = register_venue(
                session,
                name=name,
                address=address,
                region_code=region.strip(),
                venue_type=venue_type,
                now=now,
            )
            row, key = create_api_key(
                session,
                ApiKeyKind.VENUE.value,
                str(venue.id),
                now,
                label=f"operator of venue {venue.id}",
                created_by=official.id,
            )
            official.audit(
                session,
                now,
                "venue.register",
                f"venue:{venue.id}",
                apiKeyId=row.id,
                region=venue.region_code,
            )
            made = {"id": venue.id, "name": venue.name, "key": key}
    except HealthcodeError as exc:
        return _page(
            request,
            official,
            "console/venues.html",
            status_code=answer_for(exc)[0],
            types=sorted(venue_stays()),
            form=form,
            made=None,
            problem=_problem(exc),
        )
    return _page(
        request,
        official,
        "console/venues.html",
        types=sorted(venue_stays()),
        form={},
        made=made,
    )
