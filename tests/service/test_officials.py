"""Officials over HTTP: overrides (C15), appeals, searches, statistics, keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.config import Settings
from healthcode.service.app import create_app

from .conftest import NOW, TestClient
from .support import (
    ADULT,
    GRANDMOTHER,
    NEPHEW,
    import_identities,
    register_me,
    sign_in_official,
    sign_in_phone,
)

PHONE = "13800138000"
LEGAL_BASIS = "Law on the Prevention and Treatment of Infectious Diseases, art. 42"
EXPIRY = "2026-03-12T12:00:00+08:00"


def audit(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    "SELECT actor_role, action, subject, purpose FROM audit_entries"
                    " ORDER BY id"
                )
            )
        )


def resident(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> tuple[int, dict]:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    return register_me(client, headers, ADULT, "张伟")["residentId"], headers


@pytest.fixture
def official(client: Any, engine: Engine) -> dict[str, str]:
    return sign_in_official(client, engine, "wang.li", "health-official", NOW)


def test_an_override_shows_its_reason_first_and_is_audited(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path, official: dict
) -> None:
    resident_id, headers = resident(client, outbox, engine, tmp_path)

    answer = client.post(
        "/v1/officials/overrides",
        json={
            "residentIds": [resident_id],
            "colour": "red",
            "reason": "Close contact of case 42.",
            "expiresAt": EXPIRY,
        },
        headers=official,
    )
    status = client.get("/v1/residents/me/status", headers=headers).json()

    assert answer.status_code == 201
    assert answer.json()["state"] == "applied"
    assert status["colour"] == "red"
    assert status["reasons"][0]["text"]["en"] == (
        "Set by an official (health-official): Close contact of case 42."
    )
    assert status["reasons"][0]["until"] == "2026-03-12T04:00:00+00:00"
    assert (status["changesAt"], status["changesTo"]) == (
        "2026-03-12T04:00:00Z",
        "green",
    )
    assert audit(engine)[-1] == (
        "health-official",
        "override.set",
        f"resident:{resident_id}",
        None,
    )


def test_a_community_worker_may_not_override(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    resident_id, _ = resident(client, outbox, engine, tmp_path)
    worker = sign_in_official(client, engine, "li.na", "community-worker", NOW)

    answer = client.post(
        "/v1/officials/overrides",
        json={
            "residentIds": [resident_id],
            "colour": "red",
            "reason": "x",
            "expiresAt": EXPIRY,
        },
        headers=worker,
    )

    assert answer.status_code == 403
    assert answer.json()["code"] == "out_of_scope"


def test_a_resident_cannot_use_officials_endpoints(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    _, headers = resident(client, outbox, engine, tmp_path)

    answer = client.get("/v1/officials/statistics", headers=headers)

    assert answer.status_code == 403


@pytest.fixture
def small_bulk_client(
    settings: Settings, engine: Engine, clock: Any, outbox: Any, store: Any
) -> Iterator[Any]:
    app = create_app(
        settings.model_copy(update={"bulk_override_threshold": 2}),
        clock=clock,
        store=store,
        sender=outbox,
        engine=engine,
    )
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client


def test_c15_a_bulk_override_needs_a_basis_and_a_second_official(
    small_bulk_client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    client = small_bulk_client
    people = [(ADULT, "张伟"), (GRANDMOTHER, "王秀英"), (NEPHEW, "张明")]
    import_identities(engine, tmp_path, NOW, people)
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")
    with engine.connect() as connection:
        ids = list(connection.execute(sa.text("SELECT id FROM residents")).scalars())
    first = sign_in_official(client, engine, "wang.li", "health-official", NOW)
    second = sign_in_official(client, engine, "zhao.min", "health-official", NOW)
    body = {
        "residentIds": ids,
        "colour": "red",
        "reason": "Building 3 sealed after a case.",
        "expiresAt": EXPIRY,
    }

    no_basis = client.post("/v1/officials/overrides", json=body, headers=first)
    proposed = client.post(
        "/v1/officials/overrides",
        json={**body, "legalBasis": LEGAL_BASIS},
        headers=first,
    )
    bulk = proposed.json()["bulkOverrideId"]
    before = client.get("/v1/residents/me/status", headers=headers).json()["colour"]
    pending = client.get("/v1/officials/bulk-overrides", headers=second).json()
    self_approved = client.post(
        f"/v1/officials/bulk-overrides/{bulk}/approve", json={}, headers=first
    )
    approved = client.post(
        f"/v1/officials/bulk-overrides/{bulk}/approve",
        json={"note": "List checked against the building register."},
        headers=second,
    )
    after = client.get("/v1/residents/me/status", headers=headers).json()
    appealed = client.post(
        "/v1/residents/me/appeals",
        json={"message": "I moved out of building 3 last year."},
        headers=headers,
    )

    assert (no_basis.status_code, no_basis.json()["code"]) == (
        422,
        "legal_basis_required",
    )
    assert "more than 2 residents" in no_basis.json()["message"]
    assert proposed.status_code == 202
    assert proposed.json()["state"] == "pending-approval"
    assert before == "green"
    assert [(p["bulkOverrideId"], p["residents"]) for p in pending] == [(bulk, 3)]
    assert self_approved.status_code == 403
    assert self_approved.json()["code"] == "second_official_required"
    assert approved.status_code == 200
    assert approved.json()["residents"] == 3
    assert after["colour"] == "red"
    assert after["reasons"][0]["text"]["en"].endswith("Building 3 sealed after a case.")
    assert appealed.status_code == 201
    assert appealed.json()["colour"] == "red"
    actions = [(row[1], row[3]) for row in audit(engine)]
    assert ("override.propose", LEGAL_BASIS) in actions
    assert ("override.approve", LEGAL_BASIS) in actions


def test_an_appeal_is_reviewed_and_the_resident_sees_the_answer(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path, official: dict
) -> None:
    resident_id, headers = resident(client, outbox, engine, tmp_path)
    client.post(
        "/v1/residents/me/declarations",
        json={"fever": True, "respiratory": False},
        headers=headers,
    )
    filed = client.post(
        "/v1/residents/me/appeals",
        json={"message": "It was a typo: I have no fever."},
        headers=headers,
    )
    again = client.post(
        "/v1/residents/me/appeals", json={"message": "Please."}, headers=headers
    )

    queue = client.get("/v1/officials/appeals", headers=official).json()
    reviewed = client.post(
        f"/v1/officials/appeals/{filed.json()['appealId']}/review",
        json={
            "outcome": "corrected",
            "note": "Declared by mistake, confirmed by phone.",
            "colour": "green",
            "expiresAt": EXPIRY,
        },
        headers=official,
    )
    mine = client.get("/v1/residents/me/appeals", headers=headers).json()
    status = client.get("/v1/residents/me/status", headers=headers).json()

    assert filed.status_code == 201
    assert (filed.json()["colour"], filed.json()["state"]) == ("yellow", "open")
    assert again.status_code == 409
    assert [item["residentId"] for item in queue] == [resident_id]
    assert reviewed.status_code == 200
    assert mine[0]["state"] == "corrected"
    assert mine[0]["reviewNote"] == "Declared by mistake, confirmed by phone."
    assert status["colour"] == "green"
    assert status["reasons"][1]["overridden"] is True


def test_a_search_needs_a_purpose_which_is_audited(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path, official: dict
) -> None:
    resident_id, _ = resident(client, outbox, engine, tmp_path)

    without = client.post(
        "/v1/officials/search", json={"name": "张伟"}, headers=official
    )
    found = client.post(
        "/v1/officials/search",
        json={"document": {"number": ADULT}, "purpose": "Tracing case 42's contacts."},
        headers=official,
    )
    read = client.get(
        f"/v1/officials/residents/{resident_id}",
        params={"purpose": "Reviewing appeal 7."},
        headers=official,
    )

    assert without.status_code == 422
    assert without.json()["problems"][0]["field"] == "body.purpose"
    assert found.json() == [
        {
            "residentId": resident_id,
            "name": "张伟",
            "document": "6101**********1230",
            "regionCode": "610113",
            "identityState": "confirmed",
            "colour": "green",
        }
    ]
    assert read.json()["status"]["colour"] == "green"
    assert audit(engine)[-2:] == [
        ("health-official", "resident.search", None, "Tracing case 42's contacts."),
        (
            "health-official",
            "resident.read",
            f"resident:{resident_id}",
            "Reviewing appeal 7.",
        ),
    ]


def test_statistics_by_colour_district_and_day(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path, official: dict
) -> None:
    resident(client, outbox, engine, tmp_path)

    answer = client.get("/v1/officials/statistics?days=3", headers=official)

    assert answer.json() == {
        "byColour": {"green": 1},
        "byDistrict": [{"district": "610113", "colour": "green", "residents": 1}],
        "byDay": [{"day": "2026-03-10", "colour": "green", "changes": 1}],
    }


def test_a_pending_guardian_is_approved_by_an_official(
    client: Any, outbox: Any, engine: Engine
) -> None:
    headers = sign_in_phone(client, outbox, PHONE)
    worker = sign_in_official(client, engine, "li.na", "community-worker", NOW)
    added = client.post(
        "/v1/dependents",
        json={"document": {"number": NEPHEW}, "name": "张明"},
        headers=headers,
    ).json()

    pending = client.get("/v1/officials/guardianships", headers=worker).json()
    approved = client.post(
        f"/v1/officials/guardianships/{added['guardianshipId']}/approve", headers=worker
    )
    code = client.get(f"/v1/dependents/{added['residentId']}/code", headers=headers)

    assert [link["guardianshipId"] for link in pending] == [added["guardianshipId"]]
    assert approved.json()["state"] == "active"
    assert code.status_code == 200


def test_an_administrator_makes_keys_and_staff(client: Any, engine: Engine) -> None:
    admin = sign_in_official(client, engine, "root.admin", "administrator", NOW)

    made = client.post(
        "/v1/officials/api-keys",
        json={"kind": "checkpoint", "scope": "gate-7", "label": "East gate"},
        headers=admin,
    )
    listed = client.get("/v1/officials/api-keys", headers=admin).json()
    revoked = client.delete(
        f"/v1/officials/api-keys/{made.json()['apiKeyId']}", headers=admin
    )
    staff = client.post(
        "/v1/officials/staff",
        json={
            "username": "zhou.qi",
            "role": "community-worker",
            "password": "x" * 6 + "abcdef",
        },
        headers=admin,
    )
    verify = client.get("/v1/officials/audit/verify", headers=admin).json()

    assert made.status_code == 201
    assert made.json()["key"].startswith("hck_")
    assert listed[0]["key"] is None
    assert revoked.status_code == 204
    assert staff.status_code == 201
    assert staff.json()["totpUri"].startswith("otpauth://totp/")
    secret = pyotp.parse_uri(staff.json()["totpUri"]).secret
    assert len(secret) >= 16
    assert verify == {
        "entries": 3,
        "intact": True,
        "firstBroken": None,
        "problem": None,
    }
