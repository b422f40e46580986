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

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)
from sqlalchemy.orm import Session

from healthcode.accounts.errors import NotSignedIn, OutOfScope
from healthcode.accounts.models import Account, Official
from healthcode.accounts.services import (
    ApiKeyKind,
    LiveKey,
    Permission,
    Principal,
    Transport,
    require_key_kind,
    require_permission,
    session_principal,
)
from healthcode.audit.services import append
from healthcode.service.runtime import Runtime

__all__ = [
    "COOKIE_NAME",
    "AccountCaller",
    "AccountRef",
    "Bearer",
    "Caller",
    "Db",
    "KeyRef",
    "Now",
    "OfficialCaller",
    "OfficialRef",
    "Rt",
    "SessionCookie",
    "api_key_of",
    "official_with",
    "KEY_SECURITY",
    "SESSION_SECURITY",
    "hot_call",
    "principal_of",
    "request_session_token",
    "session_token",
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


# The dependencies that neither wait nor block are coroutines: FastAPI runs
# a plain function dependency in its thread pool, and a hop there and back
# for each of them cost more than a whole health answer.


async def runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


Rt = Annotated[Runtime, Depends(runtime)]


async def request_now(rt: Rt) -> datetime:
    return rt.clock()


Now = Annotated[datetime, Depends(request_now)]


def database(rt: Rt) -> Iterator[Session]:
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        yield session


Db = Annotated[Session, Depends(database, scope="function")]


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
SessionCookie = Annotated[str | None, Depends(cookie_scheme)]


# The hot routes (a code refresh, an online verify) read their runtime, clock
# and caller straight from the request: each dependency FastAPI solves costs
# several microseconds, and five of them came to a sixth of a refresh. Their
# security schemes are declared to OpenAPI by hand (SESSION_SECURITY,
# KEY_SECURITY), as the dependencies would have declared them.

#: The OpenAPI security of a route that takes a session, bearer or cookie.
SESSION_SECURITY: dict[str, Any] = {
    "security": [{"bearerToken": []}, {"sessionCookie": []}]
}
#: The OpenAPI security of a route that takes an API key.
KEY_SECURITY: dict[str, Any] = {"security": [{"apiKey": []}]}


def hot_call(request: Request) -> tuple[Runtime, datetime]:
    """The runtime and the request's instant, for a hot route."""
    rt: Runtime = request.app.state.runtime
    return rt, rt.clock()


def request_session_token(request: Request) -> tuple[str, Transport]:
    """The session token the request carries, read as the schemes read it."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    bearer = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())
        if scheme.lower() == "bearer" and credentials.strip()
        else None
    )
    return session_token(bearer, request.cookies.get(COOKIE_NAME))


def session_token(
    bearer: HTTPAuthorizationCredentials | None, cookie: str | None
) -> tuple[str, Transport]:
    """The session token sent, and how it came."""
    if bearer is not None and bearer.credentials:
        return bearer.credentials, Transport.BEARER
    if cookie:
        return cookie, Transport.COOKIE
    raise NotSignedIn("The request carries no session.")


def principal_of(
    rt: Runtime,
    now: datetime,
    bearer: HTTPAuthorizationCredentials | None,
    cookie: str | None,
) -> Principal:
    """The caller behind the session token or cookie sent."""
    token, transport = session_token(bearer, cookie)
    return session_principal(rt.store, token, transport, now)


def signed_in(rt: Rt, now: Now, bearer: Bearer, cookie: SessionCookie) -> Principal:
    """The caller behind the session token or cookie sent."""
    return principal_of(rt, now, bearer, cookie)


Caller = Annotated[Principal, Depends(signed_in)]


@dataclass(frozen=True)
class AccountRef:
    """The signed-in phone's account, read in a session of its own.

    Callers are looked up outside the request's own transaction, so that an
    endpoint that hands work to another transaction (a feed import) does not
    hold a read snapshot from before that work committed.
    """

    id: int
    resident_id: int | None

    @property
    def actor(self) -> str:
        return f"account:{self.id}"


def account_caller(principal: Caller, rt: Rt) -> AccountRef:
    """A resident or guardian signed in with their phone."""
    if principal.kind != "account":
        raise OutOfScope("This is for residents and guardians signed in by phone.")
    with Session(rt.reads) as session:
        account = session.get(Account, principal.id)
        if account is None:
            raise NotSignedIn("The session's account no longer exists.")
        return AccountRef(account.id, account.resident_id)


AccountCaller = Annotated[AccountRef, Depends(account_caller)]


@dataclass(frozen=True)
class OfficialRef:
    """The signed-in official, with the role their account holds now."""

    id: int
    username: str
    role: str

    @property
    def actor(self) -> str:
        return f"official:{self.id}"

    def audit(
        self,
        session: Session,
        now: datetime,
        action: str,
        subject: str | None = None,
        purpose: str | None = None,
        **details: object,
    ) -> None:
        """Append this official's act to the audit log."""
        append(
            session,
            at=now,
            actor=self.actor,
            actor_role=self.role,
            action=action,
            subject=subject,
            purpose=purpose,
            details=details,
        )


def official_caller(principal: Caller, rt: Rt, now: Now) -> OfficialRef:
    """An official with a live account; their role is read fresh each time."""
    if principal.kind != "official":
        raise OutOfScope("This is for officials signed in with password and TOTP.")
    with Session(rt.reads) as session:
        official = session.get(Official, principal.id)
        if official is None or (
            official.disabled_at is not None and official.disabled_at <= now
        ):
            raise NotSignedIn("The official's account is disabled.")
        return OfficialRef(official.id, official.username, official.role)


OfficialCaller = Annotated[OfficialRef, Depends(official_caller)]


def official_with(permission: Permission) -> Callable[[OfficialRef], OfficialRef]:
    """A dependency: an official whose role grants ``permission``."""

    def dependency(caller: OfficialCaller) -> OfficialRef:
        require_permission(caller.role, permission)
        return caller

    return dependency


#: The API key a request carries, once checked.
KeyRef = LiveKey


def api_key_of(*kinds: ApiKeyKind) -> Callable[..., Awaitable[KeyRef]]:
    """A dependency: the live API key sent, which must be of one of ``kinds``."""

    async def dependency(
        rt: Rt,
        now: Now,
        key: Annotated[str | None, Depends(key_scheme)],
    ) -> KeyRef:
        live = await rt.hot.api_key(key or "", now)
        require_key_kind(live, *kinds)
        return live

    return dependency
