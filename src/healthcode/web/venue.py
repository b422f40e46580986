"""The venue operator's pages: the venue, its poster, its check-ins by hour.

An operator signs in with the venue key an administrator gave them when
the venue was registered (the console's venue page, or the service's
``POST /v1/officials/venues``). The key is checked once and exchanged for a
session cookie of its own, so the key itself never travels again. The
pages show how many checked in, never who.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from sqlalchemy.orm import Session

from healthcode.accounts.errors import NotSignedIn
from healthcode.accounts.models import ApiKey
from healthcode.accounts.services import (
    ApiKeyKind,
    Principal,
    Transport,
    authenticate_api_key,
    close_session,
    open_session,
    require_key_kind,
    session_principal,
)
from healthcode.checkins.errors import UnknownVenue
from healthcode.checkins.models import Venue
from healthcode.checkins.services import checkin_counts
from healthcode.checkins.venue_codes import DEFAULT_VALIDITY, venue_code_for
from healthcode.codes.card import find_cjk_font
from healthcode.codes.services import issuing_region_of
from healthcode.errors import HealthcodeError
from healthcode.service.deps import Db, Now, Rt
from healthcode.service.errors import answer_for
from healthcode.web import plots
from healthcode.web.pages import PageRoute, redirect, render, words
from healthcode.web.poster import PosterContent, poster_pdf, poster_png, render_poster

__all__ = ["VENUE_COOKIE", "VenueRef", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

VENUE_COOKIE = "hc_venue"
SESSION_HOURS = 12


@dataclass(frozen=True)
class VenueRef:
    """The signed-in operator's key and the venue it is for."""

    key_id: int
    venue_id: int


def venue_operator(request: Request, rt: Rt, now: Now) -> VenueRef:
    """The operator behind the venue session cookie, with a key still live."""
    token = request.cookies.get(VENUE_COOKIE)
    if not token:
        raise NotSignedIn("Sign in with the venue's key first.")
    principal = session_principal(rt.store, token, Transport.COOKIE, now)
    if principal.kind != "venue":
        raise NotSignedIn("The session is not a venue operator's.")
    with Session(rt.engine) as session:
        key = session.get(ApiKey, principal.id)
        if key is None or (key.revoked_at is not None and key.revoked_at <= now):
            raise NotSignedIn("The venue's key was revoked; ask for a new one.")
        if not key.scope.isdigit():
            raise NotSignedIn("The key names no venue.")
        return VenueRef(key.id, int(key.scope))


Operator = Annotated[VenueRef, Depends(venue_operator)]


@router.get("/venue/sign-in")
def sign_in_page(request: Request) -> Response:
    return render(request, "venue/sign_in.html")


@router.post("/venue/sign-in")
def sign_in(
    request: Request,
    rt: Rt,
    now: Now,
    key: Annotated[str, Form(max_length=100)],
) -> Response:
    try:
        with Session(rt.engine) as session:
            row = authenticate_api_key(session, key.strip(), now)
            require_key_kind(row, ApiKeyKind.VENUE)
            principal = Principal("venue", row.id)
    except HealthcodeError as exc:
        _, code, message = answer_for(exc)
        return render(
            request,
            "venue/sign_in.html",
            status_code=401,
            problem={"code": code, "message": message},
        )
    ttl = timedelta(hours=SESSION_HOURS)
    grant = open_session(rt.store, principal, Transport.COOKIE, now, ttl)
    response = redirect("/venue")
    response.set_cookie(
        VENUE_COOKIE,
        grant.token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        secure=rt.settings.cookie_secure,
        samesite="strict",
        path="/venue",
    )
    return response


@router.post("/venue/sign-out")
def sign_out(request: Request, rt: Rt) -> Response:
    token = request.cookies.get(VENUE_COOKIE)
    if token:
        close_session(rt.store, token)
    response = redirect("/venue/sign-in")
    response.delete_cookie(VENUE_COOKIE, path="/venue")
    return response


def _venue(session: Session, venue_id: int) -> Venue:
    venue = session.get(Venue, venue_id)
    if venue is None:
        raise UnknownVenue("The venue of this key is not registered.")
    return venue


@router.get("/venue")
def venue_page(
    request: Request,
    operator: Operator,
    rt: Rt,
    session: Db,
    now: Now,
    day: Annotated[date | None, Query()] = None,
) -> Response:
    venue = _venue(session, operator.venue_id)
    chosen = day or now.astimezone(rt.settings.tz).date()
    hours = checkin_counts(session, venue.id, chosen, rt.settings.tz)
    texts = words(request, "venue/words.html")
    chart = plots.stacked_bars(
        texts["title"],
        [f"{hour:02d}" for hour, _ in hours],
        [plots.Series("count", texts["series"], [count for _, count in hours])],
        width=720,
    )
    return render(
        request,
        "venue/venue.html",
        venue=venue,
        day=chosen,
        previous=chosen - timedelta(days=1),
        following=chosen + timedelta(days=1),
        hours=hours,
        total=sum(count for _, count in hours),
        chart=chart,
    )


@router.get("/venue/poster.{kind}")
def poster(kind: str, operator: Operator, rt: Rt, session: Db, now: Now) -> Response:
    """The venue's poster with its signed code, to print: PNG or PDF."""
    if kind not in ("png", "pdf"):
        return Response(status_code=404)
    venue = _venue(session, operator.venue_id)
    region = issuing_region_of(venue.region_code, rt.codes.region)
    # The code service owns the policy of when a region's first key is made,
    # so the key is asked of it rather than of the key store.
    signing_key = rt.codes._signing_key(region, now)
    text = venue_code_for(session, venue.id, signing_key, now)
    content = PosterContent(
        text=text,
        venue_name=venue.name,
        address=venue.address,
        venue_id=venue.id,
        valid_until=now + DEFAULT_VALIDITY,
        zone=rt.settings.tz,
    )
    image = render_poster(content, find_cjk_font())
    body = poster_png(image) if kind == "png" else poster_pdf(image)
    return Response(
        body,
        media_type="image/png" if kind == "png" else "application/pdf",
        headers={"Content-Disposition": f'inline; filename="venue-poster.{kind}"'},
    )
