"""Signing in and out: phones with one-time codes, officials with TOTP."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import HTTPAuthorizationCredentials

from healthcode.accounts.services import (
    Principal,
    SessionGrant,
    Transport,
    authenticate_official,
    close_session,
    limit_official_sign_in,
    open_session,
    request_sign_in_code,
    verify_sign_in_code,
)
from healthcode.service.deps import (
    COOKIE_NAME,
    Caller,
    Db,
    Now,
    Rt,
    bearer_scheme,
    cookie_scheme,
)
from healthcode.service.runtime import Runtime
from healthcode.service.schemas import (
    CallerAnswer,
    OfficialSignInRequest,
    SessionAnswer,
    SignInCodeRequest,
    SignInCodeSent,
    SignInRequest,
)

router = APIRouter(tags=["sign-in"])


def _grant(
    rt: Runtime,
    response: Response,
    principal: Principal,
    client: str,
    ttl: timedelta,
    now: datetime,
) -> SessionAnswer:
    transport = Transport.COOKIE if client == "page" else Transport.BEARER
    grant: SessionGrant = open_session(rt.store, principal, transport, now, ttl)
    if transport is Transport.COOKIE:
        response.set_cookie(
            COOKIE_NAME,
            grant.token,
            max_age=int(ttl.total_seconds()),
            httponly=True,
            secure=rt.settings.cookie_secure,
            samesite="strict",
            path="/",
        )
        token, token_type = None, None
    else:
        token, token_type = grant.token, "bearer"
    return SessionAnswer(
        token=token,
        token_type=token_type,
        expires_at=grant.expires_at,
        caller=principal.actor,
        role=principal.role,
    )


@router.post(
    "/v1/sign-in/code",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignInCodeSent,
)
def send_code(body: SignInCodeRequest, rt: Rt, now: Now) -> SignInCodeSent:
    """Send a six-digit sign-in code to a phone.

    Codes go out at most once a minute and five times an hour per number.
    A phone that has never signed in gets its account when the code is
    checked.
    """
    until = request_sign_in_code(rt.store, rt.sender, body.phone, now, rt.sign_in)
    return SignInCodeSent(valid_until=until)


@router.post("/v1/sign-in", response_model=SessionAnswer)
def sign_in(
    body: SignInRequest, rt: Rt, session: Db, now: Now, response: Response
) -> SessionAnswer:
    """Check the code and start a session: a bearer token or a cookie."""
    account = verify_sign_in_code(
        session, rt.store, body.phone, body.code, now, rt.sign_in
    )
    principal = Principal("account", account.id)
    return _grant(rt, response, principal, body.client, rt.session_ttl, now)


@router.post("/v1/officials/sign-in", response_model=SessionAnswer)
def official_sign_in(
    body: OfficialSignInRequest, rt: Rt, session: Db, now: Now, response: Response
) -> SessionAnswer:
    """Sign an official in with user name, password and TOTP code."""
    limit_official_sign_in(rt.limiter, body.username, now)
    official = authenticate_official(
        session, body.username, body.password, body.totp, now
    )
    principal = Principal("official", official.id, official.role)
    return _grant(rt, response, principal, body.client, rt.official_session_ttl, now)


@router.post("/v1/sign-out", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(
    caller: Caller,
    rt: Rt,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Response:
    """End the session this request carries; its token stops working at once."""
    if bearer is not None:
        close_session(rt.store, bearer.credentials)
    if cookie:
        close_session(rt.store, cookie)
    answer = Response(status_code=status.HTTP_204_NO_CONTENT)
    answer.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=rt.settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return answer


@router.get("/v1/sign-in/me", response_model=CallerAnswer)
def who_am_i(caller: Caller) -> CallerAnswer:
    """Say who the session belongs to."""
    return CallerAnswer(caller=caller.actor, role=caller.role)
