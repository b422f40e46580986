"""FastAPI dependencies: the runtime, a database session, the clock, the caller.

A request reads the clock once (:func:`request_now`), so that every decision
in it is taken at the same instant. The database session is one transaction
that commits after the endpoint returns and before the answer leaves, and
rolls back when the endpoint raises, so that no answer claims a write that
did not commit.

Callers identify themselves in one of three ways, all declared in the
OpenAPI schema: a session cookie (pages), a bearer token (apps), or an API
key in ``X-API-Key`` (venues, checkpoints, department systems).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)
from sqlalchemy.orm import Session

from healthcode.accounts.errors import NotSignedIn, OutOfScope
from healthcode.accounts.models import Account, ApiKey, Official
from healthcode.accounts.services import (
    ApiKeyKind,
    Permission,
    Principal,
    Transport,
    authenticate_api_key,
    require_key_kind,
    require_permission,
    session_principal,
)
from healthcode.service.runtime import Runtime

__all__ = [
    "COOKIE_NAME",
    "AccountCaller",
    "Caller",
    "Db",
    "Now",
    "OfficialCaller",
    "Rt",
    "api_key_of",
    "official_with",
]

COOKIE_NAME = "healthcode_session"

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="A session token from POST /v1/sign-in with client=app.",
)
cookie_scheme = APIKeyCookie(
    name=COOKIE_NAME,
    auto_error=False,
    scheme_name="sessionCookie",
    description="The cookie POST /v1/sign-in sets with client=page.",
)
key_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="A venue, checkpoint or department key from an administrator.",
)


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


Rt = Annotated[Runtime, Depends(runtime)]


def request_now(rt: Rt) -> datetime:
    return rt.clock()


Now = Annotated[datetime, Depends(request_now)]


def database(rt: Rt) -> Iterator[Session]:
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        yield session


Db = Annotated[Session, Depends(database, scope="function")]


def signed_in(
    rt: Rt,
    now: Now,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal:
    """The caller behind the session token or cookie sent."""
    if bearer is not None and bearer.credentials:
        return session_principal(rt.store, bearer.credentials, Transport.BEARER, now)
    if cookie:
        return session_principal(rt.store, cookie, Transport.COOKIE, now)
    raise NotSignedIn("The request carries no session.")


Caller = Annotated[Principal, Depends(signed_in)]


@dataclass(frozen=True)
class SignedInAccount:
    principal: Principal
    account: Account


def account_caller(principal: Caller, session: Db) -> SignedInAccount:
    """A resident or guardian signed in with their phone."""
    if principal.kind != "account":
        raise OutOfScope("This is for residents and guardians signed in by phone.")
    account = session.get(Account, principal.id)
    if account is None:
        raise NotSignedIn("The session's account no longer exists.")
    return SignedInAccount(principal, account)


AccountCaller = Annotated[SignedInAccount, Depends(account_caller)]


@dataclass(frozen=True)
class SignedInOfficial:
    principal: Principal
    official: Official

    @property
    def actor(self) -> str:
        return self.principal.actor

    @property
    def role(self) -> str:
        return self.official.role


def official_caller(principal: Caller, session: Db, now: Now) -> SignedInOfficial:
    """An official with a live account; their role is read fresh each time."""
    if principal.kind != "official":
        raise OutOfScope("This is for officials signed in with password and TOTP.")
    official = session.get(Official, principal.id)
    if official is None or (
        official.disabled_at is not None and official.disabled_at <= now
    ):
        raise NotSignedIn("The official's account is disabled.")
    return SignedInOfficial(principal, official)


OfficialCaller = Annotated[SignedInOfficial, Depends(official_caller)]


def official_with(
    permission: Permission,
) -> Callable[[SignedInOfficial], SignedInOfficial]:
    """A dependency: an official whose role grants ``permission``."""

    def dependency(caller: OfficialCaller) -> SignedInOfficial:
        require_permission(caller.official.role, permission)
        return caller

    return dependency


def api_key_of(*kinds: ApiKeyKind) -> Callable[..., ApiKey]:
    """A dependency: the live API key sent, which must be of one of ``kinds``."""

    def dependency(
        session: Db,
        now: Now,
        key: Annotated[str | None, Depends(key_scheme)],
    ) -> ApiKey:
        row = authenticate_api_key(session, key or "", now)
        require_key_kind(row, *kinds)
        return row

    return dependency
