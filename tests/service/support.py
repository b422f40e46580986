"""Helpers of the service tests: sign people in, make keys and officials."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.services import create_api_key, create_official
from healthcode.feeds.services import import_feed
from healthcode.status.services import recolor_residents

PASSWORD = "correct horse battery"

# Mainland identity numbers with valid check characters, born where and when
# the tests need them (the clock stands at 2026-03-10).
ADULT = "610113199001011230"  # 36 years old, Yanta district, Xi'an
GRANDMOTHER = "61011319550202121X"  # 71
CHILD = "610113201505050014"  # 10
NEPHEW = "610113200001010014"  # 26, needs an official's approval


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in_phone(client: Any, outbox: Any, phone: str) -> dict[str, str]:
    """Sign ``phone`` in as an app; return the headers that carry the session."""
    sent = client.post("/v1/sign-in/code", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    answer = client.post(
        "/v1/sign-in",
        json={"phone": phone, "code": outbox.last(phone), "client": "app"},
    )
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["token"])


def add_official(engine: Engine, username: str, role: str, now: datetime) -> str:
    """Make an official in the database; return their TOTP secret."""
    with Session(engine) as session, session.begin():
        _, secret = create_official(session, username, role, PASSWORD, now)
    return secret


def sign_in_official(
    client: Any, engine: Engine, username: str, role: str, now: datetime
) -> dict[str, str]:
    secret = add_official(engine, username, role, now)
    answer = client.post(
        "/v1/officials/sign-in",
        json={
            "username": username,
            "password": PASSWORD,
            "totp": pyotp.TOTP(secret).at(now),
        },
    )
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["token"])


def api_key(
    engine: Engine,
    kind: str,
    scope: str,
    now: datetime,
    feed_kinds: list[str] | None = None,
) -> dict[str, str]:
    with Session(engine) as session, session.begin():
        _, key = create_api_key(session, kind, scope, now, feed_kinds=feed_kinds)
    return {"X-API-Key": key}


def import_identities(
    engine: Engine,
    folder: Path,
    now: datetime,
    people: list[tuple[str, str]],
    region: str = "610113",
) -> None:
    """Have the identity registry confirm (number, name) pairs, as a feed."""
    lines = [
        "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,confirmed_at"
    ]
    for number, name in people:
        lines.append(
            f"PS-{number},cn-id,{number},,{name},{region},confirmed,2026-03-01T09:00:00"
        )
    path = folder / f"identities-{secrets.token_hex(4)}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_feed(
        engine,
        "identities",
        path,
        now=now,
        zone=ZoneInfo("Asia/Shanghai"),
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    assert report.committed, report.errors


def register_me(
    client: Any, headers: dict[str, str], number: str, name: str
) -> dict[str, Any]:
    answer = client.post(
        "/v1/residents/me",
        json={"document": {"kind": "cn-id", "number": number}, "name": name},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()
