"""The whole service in one walk over HTTP, on SQLite and on PostgreSQL with Redis.

A department sends identities and test results; a resident signs in,
registers and gets a green code; adds a grandmother; a checkpoint verifies
both codes; a home-observation order turns the resident yellow; the
resident appeals; an official reviews the appeal with a correction, which
is an override, and the audit log holds it, intact.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from .conftest import NOW
from .support import ADULT, GRANDMOTHER, api_key, sign_in_official

PHONE = "13800138000"
CSV = {"Content-Type": "text/csv"}


def test_the_walk(client: Any, outbox: Any, engine: Engine, clock: Any) -> None:
    # A department sends identities and test results.
    department = {
        **api_key(engine, "department", "public-security", NOW, ["identities"]),
        **CSV,
    }
    health = {
        **api_key(engine, "department", "health", NOW, ["lab-results", "orders"]),
        **CSV,
    }
    identities = client.post(
        "/v1/feeds/identities",
        content=(
            "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,"
            "confirmed_at\n"
            f"PS-1,cn-id,{ADULT},,张伟,610113,confirmed,2026-03-01T09:00:00\n"
            f"PS-2,cn-id,{GRANDMOTHER},,王秀英,610113,confirmed,2026-03-01T09:05:00\n"
        ),
        headers=department,
    )
    results = client.post(
        "/v1/feeds/lab-results",
        content=(
            "record_id,doc_kind,doc_number,doc_country,sampled_at,method,result\n"
            f"LAB-1,cn-id,{ADULT},,2026-03-09T08:00:00,pcr,negative\n"
            f"LAB-2,cn-id,{GRANDMOTHER},,2026-03-09T08:30:00,pcr,negative\n"
        ),
        headers=health,
    )
    assert (identities.status_code, identities.json()["imported"]) == (200, 2)
    assert (results.status_code, results.json()["imported"]) == (200, 2)

    # A resident signs in with a code sent to the phone, registers, is green.
    assert client.post("/v1/sign-in/code", json={"phone": PHONE}).status_code == 202
    session = client.post(
        "/v1/sign-in", json={"phone": PHONE, "code": outbox.last(PHONE)}
    ).json()
    me = {"Authorization": f"Bearer {session['token']}"}
    registered = client.post(
        "/v1/residents/me",
        json={"document": {"kind": "cn-id", "number": ADULT}, "name": "张伟"},
        headers=me,
    )
    code = client.get("/v1/residents/me/code", headers=me).json()
    assert registered.status_code == 201
    assert registered.json()["status"]["colour"] == "green"
    assert (code["colour"], code["maskedName"]) == ("green", "张*")

    # The resident adds a grandmother, whose code the phone then holds.
    added = client.post(
        "/v1/dependents",
        json={"document": {"number": GRANDMOTHER}, "name": "王秀英"},
        headers=me,
    ).json()
    grandmother = added["residentId"]
    her_code = client.get(f"/v1/dependents/{grandmother}/code", headers=me).json()
    her_paper = client.get(
        f"/v1/dependents/{grandmother}/paper-code", headers=me
    ).json()
    assert (added["state"], added["basis"]) == ("active", "elder")

    # A checkpoint verifies both codes, and the paper one too.
    gate = api_key(engine, "checkpoint", "gate-1", NOW)
    verified = [
        client.post("/v1/checkpoints/verify", json={"code": text}, headers=gate)
        for text in (code["text"], her_code["text"], her_paper["text"])
    ]
    assert [v.status_code for v in verified] == [200, 200, 200]
    assert [(v.json()["maskedName"], v.json()["colour"]) for v in verified] == [
        ("张*", "green"),
        ("王**", "green"),
        ("王**", "green"),
    ]
    assert verified[2].json()["purpose"] == "paper"

    # A home-observation order turns the resident yellow, with its reason.
    clock.advance(hours=1)
    order = client.post(
        "/v1/feeds/orders",
        content=(
            "record_id,doc_kind,doc_number,doc_country,kind,starts_at,ends_at\n"
            f"ORD-1,cn-id,{ADULT},,home-observation,2026-03-10T12:30:00,"
            "2026-03-17T12:30:00\n"
        ),
        headers=health,
    )
    status = client.get("/v1/residents/me/status", headers=me).json()
    assert order.json()["statusesChanged"] == 1
    assert status["colour"] == "yellow"
    assert status["reasons"][0]["evidence"]["ref"]["recordId"] == "ORD-1"
    assert status["changesAt"] == "2026-03-17T04:30:00Z"

    # The resident appeals; an official reviews it with a correction.
    appeal = client.post(
        "/v1/residents/me/appeals",
        json={"message": "The order was meant for my neighbour in flat 302."},
        headers=me,
    ).json()
    official = sign_in_official(client, engine, "wang.li", "health-official", clock.now)
    queue = client.get("/v1/officials/appeals", headers=official).json()
    reviewed = client.post(
        f"/v1/officials/appeals/{appeal['appealId']}/review",
        json={
            "outcome": "corrected",
            "note": "The order named the wrong flat; confirmed with the district.",
            "colour": "green",
            "expiresAt": "2026-03-17T12:30:00+08:00",
        },
        headers=official,
    ).json()
    mine = client.get("/v1/residents/me/appeals", headers=me).json()
    after = client.get("/v1/residents/me/status", headers=me).json()
    assert [item["appealId"] for item in queue] == [appeal["appealId"]]
    assert reviewed["state"] == "corrected" and reviewed["overrideId"] is not None
    assert mine[0]["reviewNote"].startswith("The order named the wrong flat")
    assert after["colour"] == "green"
    assert after["reasons"][0]["override"] is True
    assert after["reasons"][0]["evidence"]["authorRole"] == "health-official"
    assert after["reasons"][1]["overridden"] is True

    # The override is in the audit log, and the log is intact.
    admin = sign_in_official(client, engine, "root.admin", "administrator", clock.now)
    verify = client.get("/v1/officials/audit/verify", headers=admin).json()
    with engine.connect() as connection:
        entries = connection.execute(
            text("SELECT actor, action, subject FROM audit_entries ORDER BY id")
        ).all()
    actions = [action for _, action, _ in entries]
    assert actions == [
        "feed.identities",
        "feed.lab-results",
        "dependent.add",
        "feed.orders",
        "appeals.list",
        "override.set",
        "appeal.review",
    ]
    override_entry = entries[actions.index("override.set")]
    assert override_entry[0].startswith("official:")
    assert override_entry[2] == f"resident:{registered.json()['residentId']}"
    assert verify == {
        "entries": 7,
        "intact": True,
        "firstBroken": None,
        "problem": None,
    }
