"""Checkpoints over HTTP: online verification, look-up by document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .conftest import NOW
from .support import ADULT, api_key, import_identities, register_me, sign_in_phone

PHONE = "13800138000"


def registered(client: Any, outbox: Any, engine: Engine, tmp_path: Path) -> dict:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")
    return headers


def test_a_checkpoint_verifies_a_screen_code_online(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    headers = registered(client, outbox, engine, tmp_path)
    gate = api_key(engine, "checkpoint", "gate-1", NOW)
    code = client.get("/v1/residents/me/code", headers=headers).json()["text"]

    answer = client.post("/v1/checkpoints/verify", json={"code": code}, headers=gate)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["colour"], body["codeColour"], body["purpose"]) == (
        "green",
        "green",
        "screen",
    )
    assert body["maskedName"] == "张*"


def test_the_online_colour_is_the_newest(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    headers = registered(client, outbox, engine, tmp_path)
    gate = api_key(engine, "checkpoint", "gate-1", NOW)
    code = client.get("/v1/residents/me/code", headers=headers).json()["text"]
    client.post(
        "/v1/residents/me/declarations",
        json={"fever": True, "respiratory": True},
        headers=headers,
    )

    answer = client.post("/v1/checkpoints/verify", json={"code": code}, headers=gate)

    assert (answer.json()["codeColour"], answer.json()["colour"]) == ("green", "yellow")


def test_an_altered_or_expired_code_is_refused_cleanly(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path, clock: Any
) -> None:
    headers = registered(client, outbox, engine, tmp_path)
    gate = api_key(engine, "checkpoint", "gate-1", NOW)
    code = client.get("/v1/residents/me/code", headers=headers).json()["text"]
    altered = code[:-3] + ("AAA" if not code.endswith("AAA") else "BBB")

    forged = client.post("/v1/checkpoints/verify", json={"code": altered}, headers=gate)
    spaced = client.post(
        "/v1/checkpoints/verify", json={"code": " " + code}, headers=gate
    )
    clock.advance(minutes=6)
    expired = client.post("/v1/checkpoints/verify", json={"code": code}, headers=gate)

    assert (forged.status_code, forged.json()["code"]) == (422, "invalid_code")
    assert spaced.json()["code"] == "invalid_code"
    assert (expired.status_code, expired.json()["code"]) == (422, "expired_code")


def test_a_lookup_by_document_gives_colour_and_masked_name_and_is_audited(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    registered(client, outbox, engine, tmp_path)
    gate = api_key(engine, "checkpoint", "gate-1", NOW)

    answer = client.post(
        "/v1/checkpoints/lookup", json={"document": {"number": ADULT}}, headers=gate
    )

    assert answer.json() == {
        "colour": "green",
        "maskedName": "张*",
        "asOf": "2026-03-10T04:00:00Z",
    }
    with engine.connect() as connection:
        action, subject = connection.execute(
            sa.text("SELECT action, subject FROM audit_entries ORDER BY id DESC")
        ).first()
    assert action == "resident.lookup"
    assert subject.startswith("resident:")


def test_lookups_are_rate_limited_per_device(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    registered(client, outbox, engine, tmp_path)
    gate = api_key(engine, "checkpoint", "gate-1", NOW)
    other = api_key(engine, "checkpoint", "gate-2", NOW)
    body = {"document": {"number": ADULT}}

    answers = [
        client.post("/v1/checkpoints/lookup", json=body, headers=gate)
        for _ in range(21)
    ]
    elsewhere = client.post("/v1/checkpoints/lookup", json=body, headers=other)

    assert [a.status_code for a in answers[:20]] == [200] * 20
    assert answers[20].status_code == 429
    assert (
        "At most 20 such requests are allowed per minute"
        in answers[20].json()["message"]
    )
    assert elsewhere.status_code == 200


def test_an_unknown_document_is_a_404_without_the_number(
    client: Any, engine: Engine
) -> None:
    gate = api_key(engine, "checkpoint", "gate-1", NOW)

    answer = client.post(
        "/v1/checkpoints/lookup", json={"document": {"number": ADULT}}, headers=gate
    )

    assert answer.status_code == 404
    assert ADULT not in answer.text


def test_only_checkpoints_look_people_up(
    client: Any, outbox: Any, engine: Engine
) -> None:
    venue = api_key(engine, "venue", "1", NOW)
    phone = sign_in_phone(client, outbox, PHONE)

    by_venue = client.post(
        "/v1/checkpoints/lookup", json={"document": {"number": ADULT}}, headers=venue
    )
    by_phone = client.post(
        "/v1/checkpoints/lookup", json={"document": {"number": ADULT}}, headers=phone
    )

    assert by_venue.status_code == 403
    assert by_phone.status_code == 401


def test_a_verify_without_a_key_is_refused_before_its_code_is_read(
    client: Any,
) -> None:
    answer = client.post("/v1/checkpoints/verify", json={"code": "HCZ1:not a code"})

    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_api_key"


def _code_of_another_authority(tmp_path: Path) -> str:
    """A well-signed screen code of our region whose key and secret are not ours."""
    from healthcode.codes.format import Colour
    from healthcode.codes.keys import KeyStore
    from healthcode.codes.services import CodeService

    other = CodeService(KeyStore(tmp_path / "other-keys"), region="610100")
    return other.screen_code_with(1, "张*", "610100", Colour.GREEN, NOW).text


def test_a_verify_with_a_dead_key_says_nothing_of_a_foreign_reference(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    # The holder is read from a code of a region served here before the key
    # is checked; a reference that does not open here must not be told
    # apart from any other code until the key is found live and of the
    # right kind.
    headers = registered(client, outbox, engine, tmp_path)
    client.get("/v1/residents/me/code", headers=headers)
    code = _code_of_another_authority(tmp_path)
    department = api_key(engine, "department", "health", NOW, ["lab-results"])
    unknown = {"X-API-Key": "hck_" + "a" * 43}

    body = {"code": code}
    refused = client.post("/v1/checkpoints/verify", json=body, headers=unknown)
    wrong = client.post("/v1/checkpoints/verify", json=body, headers=department)

    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_api_key")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "out_of_scope")


def test_a_code_signed_by_an_unknown_key_of_our_region_is_an_unknown_key(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    headers = registered(client, outbox, engine, tmp_path)
    client.get("/v1/residents/me/code", headers=headers)
    code = _code_of_another_authority(tmp_path)
    gate = api_key(engine, "checkpoint", "gate-1", NOW)

    answer = client.post("/v1/checkpoints/verify", json={"code": code}, headers=gate)

    assert (answer.status_code, answer.json()["code"]) == (422, "unknown_key")


def test_a_key_revoked_after_it_was_checked_is_refused_at_once(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    from sqlalchemy.orm import Session

    from healthcode.accounts.models import ApiKey
    from healthcode.accounts.services import revoke_api_key

    headers = registered(client, outbox, engine, tmp_path)
    gate = api_key(engine, "checkpoint", "gate-1", NOW)
    code = client.get("/v1/residents/me/code", headers=headers).json()["text"]
    before = client.post("/v1/checkpoints/verify", json={"code": code}, headers=gate)
    with Session(engine) as session, session.begin():
        key_id = session.query(ApiKey.id).filter(ApiKey.scope == "gate-1").scalar()
        revoke_api_key(session, key_id, NOW)

    after = client.post("/v1/checkpoints/verify", json={"code": code}, headers=gate)

    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_api_key"
