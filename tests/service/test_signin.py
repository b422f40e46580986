"""Signing in over HTTP: phones and codes, cookies and tokens, officials."""

from __future__ import annotations

from typing import Any

import pyotp
from sqlalchemy.engine import Engine

from .conftest import NOW, ON_REDIS_CLUSTER_TOO
from .support import PASSWORD, add_official, bearer, sign_in_phone

pytestmark = ON_REDIS_CLUSTER_TOO

PHONE = "13800138000"


def test_a_phone_signs_in_as_an_app_with_a_bearer_token(
    client: Any, outbox: Any
) -> None:
    sent = client.post("/v1/sign-in/code", json={"phone": PHONE})

    answer = client.post(
        "/v1/sign-in", json={"phone": PHONE, "code": outbox.last(PHONE)}
    )

    assert sent.status_code == 202
    assert sent.json() == {"validUntil": "2026-03-10T04:05:00Z"}
    assert answer.status_code == 200
    body = answer.json()
    assert body["tokenType"] == "bearer"
    assert body["caller"].startswith("account:")
    assert body["expiresAt"] == "2026-04-09T04:00:00Z"
    assert "set-cookie" not in answer.headers


def test_a_page_gets_a_secure_strict_http_only_cookie(client: Any, outbox: Any) -> None:
    client.post("/v1/sign-in/code", json={"phone": PHONE})

    answer = client.post(
        "/v1/sign-in",
        json={"phone": PHONE, "code": outbox.last(PHONE), "client": "page"},
    )
    me = client.get("/v1/sign-in/me")

    cookie = answer.headers["set-cookie"]
    assert answer.json()["token"] is None
    assert "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert me.status_code == 200
    assert me.json()["caller"] == answer.json()["caller"]


def test_a_wrong_code_is_401_and_never_echoes_the_number(
    client: Any, outbox: Any
) -> None:
    client.post("/v1/sign-in/code", json={"phone": PHONE})
    code = outbox.last(PHONE)
    other = f"{(int(code) + 1) % 1_000_000:06d}"

    answer = client.post("/v1/sign-in", json={"phone": PHONE, "code": other})

    assert answer.status_code == 401
    assert answer.json()["code"] == "sign_in_code_wrong"
    assert PHONE not in answer.text and PHONE[-8:] not in answer.text


def test_five_wrong_codes_lock_the_number_with_retry_after(
    client: Any, outbox: Any
) -> None:
    client.post("/v1/sign-in/code", json={"phone": PHONE})
    code = outbox.last(PHONE)
    other = f"{(int(code) + 1) % 1_000_000:06d}"

    answers = [
        client.post("/v1/sign-in", json={"phone": PHONE, "code": other})
        for _ in range(5)
    ]

    assert [a.status_code for a in answers] == [401, 401, 401, 401, 429]
    assert answers[-1].json()["code"] == "sign_in_locked"
    assert answers[-1].headers["retry-after"] == "900"


def test_asking_again_at_once_is_rate_limited(client: Any) -> None:
    client.post("/v1/sign-in/code", json={"phone": PHONE})

    again = client.post("/v1/sign-in/code", json={"phone": PHONE})

    assert again.status_code == 429
    assert again.json()["code"] == "rate_limited"


def test_a_bad_number_is_a_422_that_says_what_is_accepted(client: Any) -> None:
    answer = client.post("/v1/sign-in/code", json={"phone": "12345"})

    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_phone"
    assert "11 digits" in answer.json()["message"]


def test_signing_out_ends_the_token(client: Any, outbox: Any) -> None:
    headers = sign_in_phone(client, outbox, PHONE)

    out = client.post("/v1/sign-out", headers=headers)
    after = client.get("/v1/sign-in/me", headers=headers)

    assert out.status_code == 204
    assert after.status_code == 401
    assert after.json()["code"] == "not_signed_in"


def test_a_made_up_token_is_refused(client: Any) -> None:
    answer = client.get("/v1/sign-in/me", headers=bearer("x" * 43))

    assert answer.status_code == 401


def test_an_official_signs_in_with_totp(client: Any, engine: Engine) -> None:
    secret = add_official(engine, "wang.li", "health-official", NOW)

    answer = client.post(
        "/v1/officials/sign-in",
        json={
            "username": "wang.li",
            "password": PASSWORD,
            "totp": pyotp.TOTP(secret).at(NOW),
        },
    )

    assert answer.status_code == 200
    assert answer.json()["role"] == "health-official"
    assert answer.json()["expiresAt"] == "2026-03-10T12:00:00Z"


def test_an_official_with_a_wrong_password_is_refused_then_slowed(
    client: Any, engine: Engine
) -> None:
    add_official(engine, "wang.li", "health-official", NOW)
    body = {"username": "wang.li", "password": "not the password", "totp": "123456"}

    answers = [client.post("/v1/officials/sign-in", json=body) for _ in range(11)]

    assert {a.status_code for a in answers[:10]} == {401}
    assert answers[10].status_code == 429


def test_sessions_live_hashed_in_the_shared_store(
    client: Any, outbox: Any, store: Any
) -> None:
    import hashlib

    headers = sign_in_phone(client, outbox, PHONE)
    token = headers["Authorization"].removeprefix("Bearer ")

    kept = store.get("session:" + hashlib.sha256(token.encode()).hexdigest())

    assert kept is not None
    assert token.encode() not in kept
    assert store.get("session:" + token) is None
