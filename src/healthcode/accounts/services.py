"""Signing in and being recognised: phones, sessions, officials, API keys.

Residents and guardians sign in with their phone number and a one-time code
sent to it. The code is six digits, kept only as a salted HMAC, lives a few
minutes, and allows a few wrong tries before the phone is locked out for a
while. A signed-in phone gets a session: a random token, kept in the store
only as its SHA-256, that a page carries in a cookie and an app in a bearer
header.

Officials sign in with a user name, an argon2 password and a TOTP code;
their role decides what they may do (:data:`ROLE_PERMISSIONS`). Systems and
devices (venue operators, checkpoints, department systems) hold API keys,
kept as SHA-256 hashes, scoped to one venue, one checkpoint or a list of
feed kinds, and revocable.

Every function takes the clock as ``now``; none reads it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import argon2
import orjson
import pyotp
import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.errors import (
    InvalidApiKey,
    InvalidCredentials,
    InvalidPhone,
    InvalidScope,
    NotSignedIn,
    OfficialExists,
    OutOfScope,
    RateLimited,
    SignInCodeWrong,
    SignInLocked,
    StoreUnavailable,
    UnknownApiKey,
    UnknownOfficial,
    WeakPassword,
)
from healthcode.accounts.models import Account, ApiKey, Official
from healthcode.accounts.senders import CodeSender, phone_digest
from healthcode.accounts.stores import Store, attached_stores, phone_key
from healthcode.privacy.types import data_keys

__all__ = [
    "ROLE_PERMISSIONS",
    "ApiKeyKind",
    "Permission",
    "Principal",
    "RateLimiter",
    "Role",
    "SessionGrant",
    "SignInPolicy",
    "Transport",
    "api_key_entry",
    "authenticate_api_key",
    "authenticate_official",
    "check_api_key",
    "close_session",
    "create_api_key",
    "create_official",
    "get_official",
    "limit_official_sign_in",
    "live_key_in",
    "normalize_phone",
    "note_api_keys_changed",
    "open_session",
    "provisioning_uri",
    "request_sign_in_code",
    "require_key_kind",
    "require_permission",
    "revoke_api_key",
    "session_in",
    "session_key",
    "session_principal",
    "session_with_resident",
    "verify_sign_in_code",
]

log = structlog.get_logger(__name__)

# Mainland mobile numbers: 11 digits starting 13 to 19. Anything else must
# be an international number in E.164 form, with its plus sign.
_MAINLAND_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_SEPARATORS = str.maketrans("", "", " -()\u00a0")
_CODE = re.compile(r"[0-9]{6}")


def normalize_phone(text: str) -> str:
    """Return a phone number in E.164 form, or raise :class:`InvalidPhone`.

    Spaces, dashes and brackets are ignored; a mainland mobile number may
    come without a prefix, with ``+86`` or with ``0086``.
    """
    if not isinstance(text, str) or len(text) > 32:
        raise InvalidPhone(
            "The phone number must be a mainland mobile number of 11 digits or"
            " an international number starting with +."
        )
    cleaned = text.translate(_SEPARATORS)
    if cleaned.startswith("0086"):
        cleaned = "+86" + cleaned[4:]
    if cleaned.startswith("+86"):
        national = cleaned[3:]
        if not _MAINLAND_MOBILE.fullmatch(national):
            raise InvalidPhone(
                "A number with +86 must be a mainland mobile number: 11 digits"
                " starting with 13 to 19."
            )
        return "+86" + national
    if _MAINLAND_MOBILE.fullmatch(cleaned):
        return "+86" + cleaned
    if _E164.fullmatch(cleaned):
        return cleaned
    raise InvalidPhone(
        "The phone number must be a mainland mobile number of 11 digits or an"
        " international number starting with + and 8 to 15 digits."
    )


# Rate limits


class RateLimiter:
    """Fixed-window counters in a store: at most ``limit`` hits per window.

    The window is chosen from ``now``, so the clock that decides is the
    caller's. A fixed window lets a burst of twice the limit straddle a
    boundary; for the abuse it guards against (guessing, scraping) that is
    close enough, and it costs one counter per caller and window.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def hit(
        self, name: str, subject: str, limit: int, window: timedelta, now: datetime
    ) -> None:
        seconds = window.total_seconds()
        stamp = now.timestamp()
        bucket = int(stamp // seconds)
        count = self.store.incr(f"rate:{name}:{subject}:{bucket}", seconds + 1)
        if count > limit:
            retry = max(1, int((bucket + 1) * seconds - stamp) + 1)
            raise RateLimited(
                f"At most {limit} such requests are allowed per"
                f" {_describe(window)}; wait {retry} seconds and try again.",
                retry_after=retry,
            )


# Sign-in tries per official's user name and window, whether right or wrong:
# guesses at one official's password are slowed down on top of the one-time
# code they would also need.
OFFICIAL_SIGN_IN_TRIES = 10
OFFICIAL_SIGN_IN_WINDOW = timedelta(minutes=15)


def limit_official_sign_in(limiter: RateLimiter, username: str, now: datetime) -> None:
    """Count a sign-in try for ``username``; raise :class:`RateLimited` past the limit.

    The counter is keyed by the user name's HMAC under the blind index key,
    not the name itself, which an administrator may have made from a staff
    member's own name.
    """
    limiter.hit(
        "official-sign-in",
        data_keys().index(username, "sign-in.official"),
        OFFICIAL_SIGN_IN_TRIES,
        OFFICIAL_SIGN_IN_WINDOW,
        now,
    )


def _describe(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0:
        minutes = seconds // 60
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds} seconds"


# Sign-in by phone


@dataclass(frozen=True)
class SignInPolicy:
    """How long codes live, how many tries they allow, how often they go out."""

    code_ttl: timedelta = timedelta(minutes=5)
    max_attempts: int = 5
    lockout: timedelta = timedelta(minutes=15)
    resend_after: timedelta = timedelta(seconds=60)
    sends_per_hour: int = 5


def _code_hash(salt: bytes, code: str) -> str:
    return hmac.new(salt, code.encode(), hashlib.sha256).hexdigest()


def _check_lock(store: Store, digest: str, now: datetime) -> None:
    raw = store.get(phone_key("sign-in-lock", digest))
    if raw is None:
        return
    until = datetime.fromisoformat(orjson.loads(raw)["until"])
    if until > now:
        seconds = (until - now).total_seconds()
        raise SignInLocked(
            "Too many wrong sign-in codes were tried for this phone number; try"
            f" again in {max(1, math.ceil(seconds / 60))} minutes.",
            retry_after=max(1, math.ceil(seconds)),
        )


def request_sign_in_code(
    store: Store,
    sender: CodeSender,
    phone: str,
    now: datetime,
    policy: SignInPolicy = SignInPolicy(),
) -> datetime:
    """Send a new sign-in code to ``phone``; return when it stops working.

    A new code replaces any earlier one. Codes go out at most once per
    ``resend_after`` and ``sends_per_hour`` times an hour per number, and
    not at all while the number is locked out.
    """
    number = normalize_phone(phone)
    digest = phone_digest(number)
    _check_lock(store, digest, now)
    wait = policy.resend_after.total_seconds()
    # One code per resend window, the window chosen from the caller's clock;
    # adding the window's key is atomic, so two requests at once send one.
    window = int(now.timestamp() // wait)
    if not store.add(phone_key("sign-in-sent", digest, str(window)), b"1", wait + 1):
        retry = max(1, int((window + 1) * wait - now.timestamp()) + 1)
        raise RateLimited(
            "A sign-in code was sent to this number moments ago; wait"
            f" {retry} seconds before asking for another.",
            retry_after=retry,
        )
    RateLimiter(store).hit(
        "sign-in-send", digest, policy.sends_per_hour, timedelta(hours=1), now
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    salt = secrets.token_bytes(16)
    valid_until = now + policy.code_ttl
    challenge = {
        "salt": salt.hex(),
        "hash": _code_hash(salt, code),
        "validUntil": valid_until.isoformat(),
    }
    store.set(
        phone_key("sign-in", digest),
        orjson.dumps(challenge),
        policy.code_ttl.total_seconds(),
    )
    sender.send(number, code, valid_until)
    log.info("sign_in_code_sent", phone_digest=digest[:12])
    return valid_until


def verify_sign_in_code(
    session: Session,
    store: Store,
    phone: str,
    code: str,
    now: datetime,
    policy: SignInPolicy = SignInPolicy(),
) -> Account:
    """Check a sign-in code and return the phone's account, made if new.

    A code works once. Each wrong code counts against the number; the
    ``max_attempts``-th locks the number out for ``lockout`` and voids the
    code.
    """
    number = normalize_phone(phone)
    digest = phone_digest(number)
    _check_lock(store, digest, now)
    wrong = SignInCodeWrong(
        "The sign-in code is wrong or has expired; check it, or ask for a new one."
    )
    raw = store.get(phone_key("sign-in", digest))
    if raw is None or not isinstance(code, str) or not _CODE.fullmatch(code):
        raise wrong
    challenge = orjson.loads(raw)
    if datetime.fromisoformat(challenge["validUntil"]) <= now:
        store.delete(phone_key("sign-in", digest))
        raise wrong
    expected = challenge["hash"]
    if not hmac.compare_digest(
        expected, _code_hash(bytes.fromhex(challenge["salt"]), code)
    ):
        failures = store.incr(
            phone_key("sign-in-fails", digest), policy.lockout.total_seconds()
        )
        if failures >= policy.max_attempts:
            until = now + policy.lockout
            store.set(
                phone_key("sign-in-lock", digest),
                orjson.dumps({"until": until.isoformat()}),
                policy.lockout.total_seconds(),
            )
            store.delete(phone_key("sign-in", digest))
            store.delete(phone_key("sign-in-fails", digest))
            log.warning("sign_in_locked", phone_digest=digest[:12])
            _check_lock(store, digest, now)
        left = policy.max_attempts - failures
        raise SignInCodeWrong(
            f"The sign-in code is wrong; {left} more tries are allowed before this"
            " number is locked for a while."
        )
    # Two requests with the right code at once must not both succeed: only
    # the one that marks the code used goes on.
    if not store.add(
        phone_key("sign-in-used", digest, expected),
        b"1",
        policy.code_ttl.total_seconds(),
    ):
        raise wrong
    store.delete(phone_key("sign-in", digest))
    store.delete(phone_key("sign-in-fails", digest))
    account = session.scalars(
        sa.select(Account).where(Account.phone_index == number)
    ).one_or_none()
    if account is None:
        account = Account(phone=number, created_at=now)
        session.add(account)
    account.last_sign_in_at = now
    session.flush()
    log.info("signed_in", account_id=account.id)
    return account


# Sessions


class Transport(StrEnum):
    """How a session token travels: a cookie for pages, a header for apps."""

    COOKIE = "cookie"
    BEARER = "bearer"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account (phone) or an official, from their session."""

    kind: str
    id: int
    role: str | None = None

    @property
    def actor(self) -> str:
        """The form the audit log names the caller in, e.g. ``official:3``."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class SessionGrant:
    """A new session: the token to hand over once, and when it ends."""

    token: str
    expires_at: datetime
    transport: Transport


def _token_key(token: str) -> str:
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


def open_session(
    store: Store,
    principal: Principal,
    transport: Transport,
    now: datetime,
    ttl: timedelta,
) -> SessionGrant:
    """Start a session for ``principal``; only the token's hash is kept."""
    token = secrets.token_urlsafe(32)
    expires = now + ttl
    value = {
        "kind": principal.kind,
        "id": principal.id,
        "role": principal.role,
        "transport": transport.value,
        "expiresAt": expires.isoformat(),
    }
    store.set(_token_key(token), orjson.dumps(value), ttl.total_seconds())
    return SessionGrant(token, expires, transport)


def session_key(token: object) -> str:
    """The store key of a session token; :class:`NotSignedIn` if it cannot be one."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        raise _ended()
    return _token_key(token)


def _ended() -> NotSignedIn:
    return NotSignedIn("The session has ended or is not known; sign in again.")


def session_in(
    raw: bytes | None, transport: Transport, now: datetime
) -> tuple[Principal, int | None]:
    """The caller in a stored session value, and their resident once known.

    A token works only the way it was handed out, so a cookie's token
    copied into a header is refused. The resident is kept in the session
    (:func:`session_with_resident`) after the first look-up, so that a
    refresh need not ask the database whose phone this is.
    """
    if raw is None:
        raise _ended()
    value = orjson.loads(raw)
    if value["transport"] != transport.value:
        raise _ended()
    if datetime.fromisoformat(value["expiresAt"]) <= now:
        raise _ended()
    resident = value.get("resident")
    principal = Principal(value["kind"], int(value["id"]), value.get("role"))
    return principal, int(resident) if resident is not None else None


def session_with_resident(raw: bytes, resident: int) -> bytes:
    """A stored session value that also names the account's resident.

    An account's resident is set once, when the phone registers, and never
    changes after, so a session may hold it for the rest of its life.
    """
    value = orjson.loads(raw)
    value["resident"] = resident
    return orjson.dumps(value)


def session_principal(
    store: Store, token: str, transport: Transport, now: datetime
) -> Principal:
    """The caller behind a session token, or :class:`NotSignedIn`.

    A token works only the way it was handed out, so a cookie's token
    copied into a header is refused.
    """
    key = session_key(token)
    raw = store.get(key)
    try:
        principal, _ = session_in(raw, transport, now)
    except NotSignedIn:
        if raw is not None and _over(raw, now):
            store.delete(key)
        raise
    return principal


def _over(raw: bytes, now: datetime) -> bool:
    return datetime.fromisoformat(orjson.loads(raw)["expiresAt"]) <= now


def close_session(store: Store, token: str) -> None:
    """End a session; ending one that is already over is not an error."""
    if isinstance(token, str) and token:
        store.delete(_token_key(token))


# Officials


class Role(StrEnum):
    HEALTH_OFFICIAL = "health-official"
    COMMUNITY_WORKER = "community-worker"
    ADMINISTRATOR = "administrator"


class Permission(StrEnum):
    DECLARE_RISK_AREAS = "declare-risk-areas"
    REVIEW_APPEALS = "review-appeals"
    OVERRIDE = "override"
    APPROVE_BULK_OVERRIDES = "approve-bulk-overrides"
    SEARCH_RESIDENTS = "search-residents"
    READ_STATISTICS = "read-statistics"
    APPROVE_GUARDIANS = "approve-guardians"
    MANAGE_ACCOUNTS = "manage-accounts"
    READ_AUDIT = "read-audit"


# Health officials make and review health decisions; community workers find
# and help residents; administrators manage accounts and keys and read the
# audit log, but change no one's colour: whoever grants powers should not
# also wield them.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.HEALTH_OFFICIAL: frozenset(
        {
            Permission.DECLARE_RISK_AREAS,
            Permission.REVIEW_APPEALS,
            Permission.OVERRIDE,
            Permission.APPROVE_BULK_OVERRIDES,
            Permission.SEARCH_RESIDENTS,
            Permission.READ_STATISTICS,
            Permission.APPROVE_GUARDIANS,
        }
    ),
    Role.COMMUNITY_WORKER: frozenset(
        {
            Permission.SEARCH_RESIDENTS,
            Permission.READ_STATISTICS,
            Permission.APPROVE_GUARDIANS,
        }
    ),
    Role.ADMINISTRATOR: frozenset(
        {
            Permission.MANAGE_ACCOUNTS,
            Permission.READ_AUDIT,
            Permission.READ_STATISTICS,
        }
    ),
}


def require_permission(role: str | None, permission: Permission) -> None:
    """Raise :class:`OutOfScope` unless ``role`` grants ``permission``."""
    try:
        granted = ROLE_PERMISSIONS[Role(role)] if role else frozenset()
    except ValueError:
        granted = frozenset()
    if permission not in granted:
        raise OutOfScope(
            f"Your role does not allow this; it needs the {permission.value}"
            " permission."
        )


MIN_PASSWORD = 12
_USERNAME = re.compile(r"[a-z][a-z0-9._-]{2,63}")


@functools.cache
def _hasher() -> argon2.PasswordHasher:
    return argon2.PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Checking a password against this when the user name is unknown makes
    # an unknown name cost as long as a wrong password, so that timing does
    # not tell which names exist.
    return _hasher().hash(secrets.token_urlsafe(16))


def create_official(
    session: Session, username: str, role: str, password: str, now: datetime
) -> tuple[Official, str]:
    """Add an official; return the row and the TOTP secret to enrol once."""
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise InvalidCredentials(
            "A user name is 3 to 64 characters: lower-case letters, digits,"
            " dots, dashes and underscores, starting with a letter."
        )
    try:
        chosen = Role(role)
    except ValueError:
        raise InvalidScope(
            f"The role must be one of {', '.join(r.value for r in Role)}."
        ) from None
    if len(password) < MIN_PASSWORD or len(set(password)) < 6:
        raise WeakPassword(
            f"A password needs at least {MIN_PASSWORD} characters, six of them"
            " different."
        )
    taken = session.scalars(
        sa.select(Official.id).where(Official.username == username)
    ).first()
    if taken is not None:
        raise OfficialExists("An official with that user name exists already.")
    secret = pyotp.random_base32()
    official = Official(
        username=username,
        role=chosen.value,
        password_hash=_hasher().hash(password),
        totp_secret=secret,
        created_at=now,
    )
    session.add(official)
    session.flush()
    log.info("official_created", official_id=official.id, role=chosen.value)
    return official, secret


def provisioning_uri(official: Official, issuer: str = "healthcode") -> str:
    """The ``otpauth://`` URI an authenticator app enrols from."""
    return pyotp.TOTP(official.totp_secret).provisioning_uri(
        name=official.username, issuer_name=issuer
    )


def authenticate_official(
    session: Session, username: str, password: str, totp_code: str, now: datetime
) -> Official:
    """Check all three factors; return the official or raise one vague error.

    A TOTP code is accepted in its own 30-second step or one either side,
    and never twice: the step it matched is stored, and codes of that step
    or earlier are refused afterwards.
    """
    refused = InvalidCredentials(
        "The user name, password or one-time code is wrong; check them and try again."
    )
    official = session.scalars(
        sa.select(Official).where(Official.username == username)
    ).one_or_none()
    hasher = _hasher()
    try:
        hasher.verify(official.password_hash if official else _dummy_hash(), password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        raise refused from None
    if official is None or official.disabled_at is not None:
        raise refused
    if not isinstance(totp_code, str) or not _CODE.fullmatch(totp_code):
        raise refused
    totp = pyotp.TOTP(official.totp_secret)
    current = int(now.timestamp()) // totp.interval
    matched = None
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), totp_code):
            matched = step
    if matched is None or (
        official.totp_last_step is not None and matched <= official.totp_last_step
    ):
        raise refused
    official.totp_last_step = matched
    if hasher.check_needs_rehash(official.password_hash):
        official.password_hash = hasher.hash(password)
    session.flush()
    log.info("official_signed_in", official_id=official.id)
    return official


def get_official(session: Session, official_id: int) -> Official:
    official = session.get(Official, official_id)
    if official is None:
        raise UnknownOfficial("No official has that id.")
    return official


# API keys


class ApiKeyKind(StrEnum):
    VENUE = "venue"
    CHECKPOINT = "checkpoint"
    DEPARTMENT = "department"


_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_KEY_PREFIX = "hck_"


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    session: Session,
    kind: str,
    scope: str,
    now: datetime,
    *,
    feed_kinds: list[str] | None = None,
    label: str = "",
    created_by: int | None = None,
) -> tuple[ApiKey, str]:
    """Make a key; return its row and the key itself, shown this once only.

    ``scope`` is the venue id, the checkpoint id, or for a department key
    the department's name (which its imports are recorded under).
    ``feed_kinds`` lists what a department key may send and is refused for
    other kinds.
    """
    from healthcode.feeds.formats import FEED_KINDS

    try:
        chosen = ApiKeyKind(kind)
    except ValueError:
        raise InvalidScope(
            f"The key kind must be one of {', '.join(k.value for k in ApiKeyKind)}."
        ) from None
    if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
        raise InvalidScope(
            "The scope must be 1 to 64 letters, digits, dots, dashes, colons or"
            " underscores."
        )
    kinds = list(dict.fromkeys(feed_kinds or []))
    if chosen is ApiKeyKind.DEPARTMENT:
        unknown = [name for name in kinds if name not in FEED_KINDS]
        if not kinds or unknown:
            raise InvalidScope(
                "A department key needs a list of the feed kinds it may send,"
                f" from {', '.join(FEED_KINDS)}."
            )
    elif kinds:
        raise InvalidScope("Only a department key is scoped to feed kinds.")
    key = _KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        key_hash=_key_hash(key),
        kind=chosen.value,
        scope=scope,
        feed_kinds=kinds,
        label=label,
        created_at=now,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    log.info("api_key_created", api_key_id=row.id, kind=chosen.value)
    return row, key


def _refused_key() -> InvalidApiKey:
    return InvalidApiKey(
        "The API key is missing, unknown or revoked; send a valid key in the"
        " X-API-Key header."
    )


def authenticate_api_key(session: Session, key: str, now: datetime) -> ApiKey:
    """The live key row for ``key``, or :class:`InvalidApiKey`."""
    row = _key_row(session, key)
    _refuse_if_revoked(row.revoked_at, now)
    return row


def _well_formed(key: object) -> str:
    if not isinstance(key, str) or not key.startswith(_KEY_PREFIX) or len(key) > 100:
        raise _refused_key()
    return key


def _key_row(session: Session, key: object) -> ApiKey:
    row = session.scalars(
        sa.select(ApiKey).where(ApiKey.key_hash == _key_hash(_well_formed(key)))
    ).one_or_none()
    if row is None:
        raise _refused_key()
    return row


def _refuse_if_revoked(revoked_at: datetime | None, now: datetime) -> None:
    if revoked_at is not None and revoked_at <= now:
        raise _refused_key()


# Checked keys in the store. A door device or a checkpoint sends its key
# with every request, and reading the key's row each time cost the online
# verify a database round trip. A checked key is kept in the store for a
# minute under the API keys' generation, a counter in the store that every
# revocation raises after it commits (the listener below); an entry is used
# only while the generation it was read under still holds. A reader that
# read the row before the revocation committed stores its entry under the
# generation it saw, which the raise then retires. Between the commit and
# the raise, a few milliseconds, the old entry may still be used; if the
# raise is lost (the process dies, the store is down), for at most the
# entry's minute.

#: The store key of the API keys' generation.
API_KEY_GENERATION = "api-key-generation"
_KEY_ENTRY_SECONDS = 60
_GENERATION_SECONDS = 30 * 24 * 3600
_KEYS_CHANGED = "healthcode.api_keys_changed"


@dataclass(frozen=True)
class LiveKey:
    """What a request needs of its API key: id, kind, scope and feed kinds."""

    id: int
    kind: str
    scope: str
    feed_kinds: tuple[str, ...]

    @property
    def actor(self) -> str:
        return f"api-key:{self.id}"


def api_key_entry(key: object) -> str:
    """The store key of a checked API key; :class:`InvalidApiKey` if malformed."""
    return "api-key:" + _key_hash(_well_formed(key))


def live_key_in(
    raw: bytes | None, generation: bytes | None, now: datetime
) -> LiveKey | None:
    """The key in a stored entry, None when it may not be used.

    A key revoked by ``now`` raises :class:`InvalidApiKey`, as from the row.
    """
    if raw is None:
        return None
    entry = orjson.loads(raw)
    if entry["generation"] != (generation or b"0").decode():
        return None
    revoked = entry["revokedAt"]
    _refuse_if_revoked(datetime.fromisoformat(revoked) if revoked else None, now)
    return LiveKey(
        entry["id"], entry["kind"], entry["scope"], tuple(entry["feedKinds"])
    )


def check_api_key(
    session: Session,
    store: Store,
    key: str,
    generation: bytes | None,
    now: datetime,
) -> LiveKey:
    """The live key for ``key`` from its row, kept in the store under ``generation``.

    ``generation`` is the store's value, read before the row.
    """
    row = _key_row(session, key)
    entry = {
        "generation": (generation or b"0").decode(),
        "id": row.id,
        "kind": row.kind,
        "scope": row.scope,
        "feedKinds": list(row.feed_kinds or ()),
        "revokedAt": row.revoked_at.isoformat() if row.revoked_at else None,
    }
    with contextlib.suppress(StoreUnavailable):
        store.set(api_key_entry(key), orjson.dumps(entry), _KEY_ENTRY_SECONDS)
    _refuse_if_revoked(row.revoked_at, now)
    return LiveKey(row.id, row.kind, row.scope, tuple(row.feed_kinds or ()))


@event.listens_for(Session, "after_commit")
def _keys_committed(session: Session) -> None:
    if not session.info.pop(_KEYS_CHANGED, False):
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    for store in attached_stores(engine):
        with contextlib.suppress(StoreUnavailable):
            store.incr(API_KEY_GENERATION, _GENERATION_SECONDS)


@event.listens_for(Session, "after_rollback")
def _keys_rolled_back(session: Session) -> None:
    session.info.pop(_KEYS_CHANGED, None)


def note_api_keys_changed(session: Session) -> None:
    """Retire every checked key kept in the store once ``session`` commits.

    For a writer that revokes or deletes keys; the generation is raised
    after the commit (the listener above).
    """
    session.info[_KEYS_CHANGED] = True


def revoke_api_key(session: Session, key_id: int, now: datetime) -> ApiKey:
    """Revoke a key from ``now`` on; revoking twice keeps the first time."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise UnknownApiKey("No API key has that id.")
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
        note_api_keys_changed(session)
        log.info("api_key_revoked", api_key_id=row.id)
    return row


def require_key_kind(key: ApiKey | LiveKey, *kinds: ApiKeyKind) -> None:
    """Raise :class:`OutOfScope` unless the key is of one of ``kinds``."""
    if key.kind not in {kind.value for kind in kinds}:
        wanted = " or ".join(kind.value for kind in kinds)
        raise OutOfScope(
            f"This needs a {wanted} key; the key sent is a {key.kind} key."
        )
