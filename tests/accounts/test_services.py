"""Sign-in codes, sessions, officials, permissions and API keys."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
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
    WeakPassword,
)
from healthcode.accounts.models import Account
from healthcode.accounts.senders import FileSender, phone_digest
from healthcode.accounts.services import (
    Permission,
    Principal,
    RateLimiter,
    SignInPolicy,
    Transport,
    authenticate_api_key,
    authenticate_official,
    close_session,
    create_api_key,
    create_official,
    limit_official_sign_in,
    normalize_phone,
    open_session,
    provisioning_uri,
    request_sign_in_code,
    require_permission,
    revoke_api_key,
    session_principal,
    verify_sign_in_code,
)
from healthcode.accounts.stores import MemoryStore
from healthcode.privacy.crypto import DataKeys
from healthcode.privacy.types import using_keys

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
PHONE = "+8613800138000"
PASSWORD = "correct horse battery"


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, datetime]] = []

    def send(self, phone: str, code: str, valid_until: datetime) -> None:
        self.sent.append((phone, code, valid_until))

    @property
    def code(self) -> str:
        return self.sent[-1][1]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.mark.parametrize(
    "given",
    ["13800138000", "138 0013 8000", "+86 138-0013-8000", "008613800138000"],
)
def test_mainland_numbers_in_any_usual_form_become_e164(given: str) -> None:
    assert normalize_phone(given) == PHONE


def test_an_international_number_keeps_its_country_code() -> None:
    assert normalize_phone("+49 30 1234567") == "+49301234567"


@pytest.mark.parametrize("given", ["12800138000", "+86 1380013800", "555-1234", ""])
def test_a_bad_number_is_refused_without_repeating_it(given: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(given)

    assert given.replace(" ", "") not in str(caught.value) or not given


def test_a_code_signs_in_once_and_makes_the_account(engine: Engine) -> None:
    store, outbox = MemoryStore(), Outbox()
    valid_until = request_sign_in_code(store, outbox, "13800138000", NOW)

    with Session(engine) as session, session.begin():
        account = verify_sign_in_code(session, store, PHONE, outbox.code, NOW)
        account_id = account.id
    with Session(engine) as session, pytest.raises(SignInCodeWrong):
        verify_sign_in_code(session, store, PHONE, outbox.code, NOW)

    assert valid_until == NOW + timedelta(minutes=5)
    assert len(outbox.code) == 6 and outbox.code.isdigit()
    with Session(engine) as session:
        stored = session.get(Account, account_id)
        assert stored is not None
        assert (stored.phone, stored.last_sign_in_at) == (PHONE, NOW)


def test_a_second_sign_in_finds_the_same_account(engine: Engine) -> None:
    store, outbox = MemoryStore(), Outbox()
    ids = []
    for minutes in (0, 2):
        at = NOW + timedelta(minutes=minutes)
        request_sign_in_code(store, outbox, PHONE, at)
        with Session(engine) as session, session.begin():
            ids.append(verify_sign_in_code(session, store, PHONE, outbox.code, at).id)

    assert ids[0] == ids[1]


def test_an_expired_code_is_refused(engine: Engine) -> None:
    store, outbox = MemoryStore(), Outbox()
    request_sign_in_code(store, outbox, PHONE, NOW)

    with Session(engine) as session, pytest.raises(SignInCodeWrong, match="expired"):
        verify_sign_in_code(
            session, store, PHONE, outbox.code, NOW + timedelta(minutes=5)
        )


def test_wrong_codes_count_down_then_lock_the_number(engine: Engine) -> None:
    store, outbox = MemoryStore(), Outbox()
    policy = SignInPolicy(max_attempts=3, lockout=timedelta(minutes=15))
    request_sign_in_code(store, outbox, PHONE, NOW, policy)
    messages = []

    with Session(engine) as session:
        for _ in range(2):
            with pytest.raises(SignInCodeWrong) as caught:
                verify_sign_in_code(
                    session, store, PHONE, wrong(outbox.code), NOW, policy
                )
            messages.append(str(caught.value))
        with pytest.raises(SignInLocked) as locked:
            verify_sign_in_code(session, store, PHONE, wrong(outbox.code), NOW, policy)
        with pytest.raises(SignInLocked):
            verify_sign_in_code(session, store, PHONE, outbox.code, NOW, policy)
        with pytest.raises(SignInLocked):
            request_sign_in_code(
                store, outbox, PHONE, NOW + timedelta(minutes=2), policy
            )

    assert "2 more tries" in messages[0]
    assert "1 more tries" in messages[1]
    assert "15 minutes" in str(locked.value)
    assert locked.value.retry_after == 900
    assert "13800138000" not in str(locked.value)


def test_the_lock_ends_after_the_lockout(engine: Engine) -> None:
    store, outbox = MemoryStore(), Outbox()
    policy = SignInPolicy(max_attempts=1, lockout=timedelta(minutes=15))
    request_sign_in_code(store, outbox, PHONE, NOW, policy)
    with Session(engine) as session, pytest.raises(SignInLocked):
        verify_sign_in_code(session, store, PHONE, wrong(outbox.code), NOW, policy)

    later = NOW + timedelta(minutes=15, seconds=1)
    request_sign_in_code(store, outbox, PHONE, later, policy)
    with Session(engine) as session, session.begin():
        account = verify_sign_in_code(session, store, PHONE, outbox.code, later, policy)
        phone = account.phone

    assert phone == PHONE


def test_codes_go_out_once_a_minute_and_five_times_an_hour() -> None:
    store, outbox = MemoryStore(), Outbox()
    request_sign_in_code(store, outbox, PHONE, NOW)

    with pytest.raises(RateLimited, match="moments ago") as soon:
        request_sign_in_code(store, outbox, PHONE, NOW + timedelta(seconds=30))
    for minute in range(1, 5):
        request_sign_in_code(store, outbox, PHONE, NOW + timedelta(minutes=minute))
    with pytest.raises(RateLimited, match="At most 5"):
        request_sign_in_code(store, outbox, PHONE, NOW + timedelta(minutes=5))

    assert soon.value.retry_after == 31
    assert len(outbox.sent) == 5


def test_the_file_sender_keeps_codes_without_the_number(tmp_path) -> None:
    sender = FileSender(tmp_path / "codes.ndjson")

    sender.send(PHONE, "123456", NOW)
    sender.send("+8613900139000", "654321", NOW)

    text = (tmp_path / "codes.ndjson").read_text()
    assert sender.codes_for(PHONE) == ["123456"]
    assert PHONE not in text and "13800138000" not in text
    assert phone_digest(PHONE) in text
    assert "*********8000" in text


def test_a_phone_digest_needs_the_blind_index_key(tmp_path) -> None:
    one, two = DataKeys(tmp_path / "one"), DataKeys(tmp_path / "two")
    with using_keys(one):
        digest = phone_digest(PHONE)
        store = MemoryStore()
        request_sign_in_code(store, Outbox(), PHONE, NOW)
    with using_keys(two):
        other = phone_digest(PHONE)

    key = (tmp_path / "one" / "data" / "index.key").read_bytes()
    keyed = hmac.new(key, b"sign-in.phone\x00" + PHONE.encode(), hashlib.sha256)
    assert digest == keyed.hexdigest()
    assert other != digest
    # The unkeyed hash every mobile number could be tried against is gone
    # from the store's key names.
    plain = hashlib.sha256(b"healthcode-phone\x00" + PHONE.encode()).hexdigest()
    names = list(store._values)
    assert any(digest in name for name in names), names
    assert not any(plain in name or "13800138000" in name for name in names)


def test_an_officials_sign_in_counter_is_keyed_not_named(tmp_path) -> None:
    keys = DataKeys(tmp_path)
    store = MemoryStore()
    with using_keys(keys):
        for _ in range(10):
            limit_official_sign_in(RateLimiter(store), "zhang.wei", NOW)
        with pytest.raises(RateLimited):
            limit_official_sign_in(RateLimiter(store), "zhang.wei", NOW)
        limit_official_sign_in(RateLimiter(store), "li.na", NOW)
        subject = keys.index("zhang.wei", "sign-in.official")

    bucket = int(NOW.timestamp() // 900)
    assert store._values[f"rate:official-sign-in:{subject}:{bucket}"][0] == 11
    assert not any("zhang" in name or "li.na" in name for name in store._values)


def test_a_session_token_works_only_its_own_way_and_until_it_ends() -> None:
    store = MemoryStore()
    grant = open_session(
        store, Principal("account", 7), Transport.BEARER, NOW, timedelta(days=30)
    )

    found = session_principal(store, grant.token, Transport.BEARER, NOW)

    assert found == Principal("account", 7)
    with pytest.raises(NotSignedIn):
        session_principal(store, grant.token, Transport.COOKIE, NOW)
    with pytest.raises(NotSignedIn):
        session_principal(
            store, grant.token, Transport.BEARER, NOW + timedelta(days=30)
        )


def test_a_closed_session_is_over_and_only_its_hash_was_kept() -> None:
    store = MemoryStore()
    grant = open_session(
        store,
        Principal("official", 3, "health-official"),
        Transport.COOKIE,
        NOW,
        timedelta(hours=8),
    )
    keys = list(store._values)

    close_session(store, grant.token)

    assert all(grant.token not in key for key in keys)
    with pytest.raises(NotSignedIn):
        session_principal(store, grant.token, Transport.COOKIE, NOW)


def totp_now(secret: str, at: datetime = NOW) -> str:
    return pyotp.TOTP(secret).at(at)


def test_an_official_signs_in_with_password_and_totp(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        official, secret = create_official(
            session, "wang.li", "health-official", PASSWORD, NOW
        )
        uri = provisioning_uri(official)

    with Session(engine) as session, session.begin():
        found = authenticate_official(
            session, "wang.li", PASSWORD, totp_now(secret), NOW
        )
        role, password_hash = found.role, found.password_hash

    assert role == "health-official"
    assert uri.startswith("otpauth://totp/healthcode:wang.li?secret=")
    assert password_hash.startswith("$argon2id$")


def test_a_totp_code_is_accepted_once(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        _, secret = create_official(
            session, "wang.li", "health-official", PASSWORD, NOW
        )
    with Session(engine) as session, session.begin():
        authenticate_official(session, "wang.li", PASSWORD, totp_now(secret), NOW)

    with Session(engine) as session, pytest.raises(InvalidCredentials):
        authenticate_official(
            session, "wang.li", PASSWORD, totp_now(secret), NOW + timedelta(seconds=5)
        )


@pytest.mark.parametrize("part", ["username", "password", "totp"])
def test_any_wrong_factor_gets_the_same_refusal(engine: Engine, part: str) -> None:
    with Session(engine) as session, session.begin():
        _, secret = create_official(
            session, "wang.li", "health-official", PASSWORD, NOW
        )
    given = {"username": "wang.li", "password": PASSWORD, "totp": totp_now(secret)}
    given[part] = {
        "username": "nobody",
        "password": "wrong password!",
        "totp": "000000",
    }[part]
    if part == "totp" and given["totp"] == totp_now(secret):
        given["totp"] = "111111"

    with Session(engine) as session, pytest.raises(InvalidCredentials) as caught:
        authenticate_official(
            session, given["username"], given["password"], given["totp"], NOW
        )

    assert str(caught.value).startswith("The user name, password or one-time code")


def test_officials_need_a_strong_password_and_a_free_name(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        create_official(session, "wang.li", "administrator", PASSWORD, NOW)

    with Session(engine) as session:
        with pytest.raises(WeakPassword, match="12 characters"):
            create_official(session, "li.na", "administrator", "short", NOW)
        with pytest.raises(OfficialExists):
            create_official(session, "wang.li", "administrator", PASSWORD, NOW)
        with pytest.raises(InvalidScope, match="role"):
            create_official(session, "li.na", "mayor", PASSWORD, NOW)


def test_roles_decide_permissions() -> None:
    require_permission("health-official", Permission.OVERRIDE)
    require_permission("community-worker", Permission.SEARCH_RESIDENTS)
    require_permission("administrator", Permission.MANAGE_ACCOUNTS)

    with pytest.raises(OutOfScope, match="override permission"):
        require_permission("community-worker", Permission.OVERRIDE)
    with pytest.raises(OutOfScope):
        require_permission("administrator", Permission.OVERRIDE)
    with pytest.raises(OutOfScope):
        require_permission("health-official", Permission.MANAGE_ACCOUNTS)
    with pytest.raises(OutOfScope):
        require_permission(None, Permission.READ_STATISTICS)


def test_an_api_key_is_stored_hashed_and_can_be_revoked(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        row, key = create_api_key(
            session, "department", "health", NOW, feed_kinds=["lab-results"]
        )
        key_id = row.id
        assert row.key_hash != key and key not in row.key_hash

    with Session(engine) as session, session.begin():
        found = authenticate_api_key(session, key, NOW)
        assert (found.id, found.feed_kinds) == (key_id, ["lab-results"])
        revoke_api_key(session, key_id, NOW + timedelta(hours=1))

    with Session(engine) as session:
        assert authenticate_api_key(session, key, NOW).id == key_id
        with pytest.raises(InvalidApiKey):
            authenticate_api_key(session, key, NOW + timedelta(hours=1))
        with pytest.raises(InvalidApiKey):
            authenticate_api_key(session, key + "x", NOW)


def test_key_scopes_must_fit_their_kind(engine: Engine) -> None:
    with Session(engine) as session:
        with pytest.raises(InvalidScope, match="feed kinds"):
            create_api_key(session, "department", "health", NOW)
        with pytest.raises(InvalidScope, match="feed kinds"):
            create_api_key(session, "department", "health", NOW, feed_kinds=["gossip"])
        with pytest.raises(InvalidScope, match="Only a department key"):
            create_api_key(session, "checkpoint", "gate-1", NOW, feed_kinds=["cases"])
        with pytest.raises(InvalidScope, match="scope"):
            create_api_key(session, "venue", "no spaces here", NOW)


def test_the_rate_limiter_counts_per_window() -> None:
    limiter = RateLimiter(MemoryStore())

    for _ in range(3):
        limiter.hit("lookup", "gate-1", 3, timedelta(minutes=1), NOW)
    with pytest.raises(
        RateLimited, match="At most 3 such requests are allowed per minute"
    ):
        limiter.hit(
            "lookup", "gate-1", 3, timedelta(minutes=1), NOW + timedelta(seconds=20)
        )
    limiter.hit("lookup", "gate-2", 3, timedelta(minutes=1), NOW)
    limiter.hit("lookup", "gate-1", 3, timedelta(minutes=1), NOW + timedelta(minutes=1))
