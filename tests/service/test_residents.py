"""A resident over HTTP: registration, code, status, declarations, history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from healthcode.codes.keys import KeyStore
from healthcode.codes.services import local_verifier
from healthcode.config import Settings

from .conftest import NOW
from .support import ADULT, import_identities, register_me, sign_in_phone

PHONE = "13800138000"


def test_a_new_resident_is_grey_with_its_reason_at_once(
    client: Any, outbox: Any
) -> None:
    headers = sign_in_phone(client, outbox, PHONE)

    body = register_me(client, headers, ADULT, "张伟")

    assert body["maskedName"] == "张*"
    assert body["document"] == "6101**********1230"
    assert body["identityState"] == "pending"
    assert body["holder"] == "self"
    status = body["status"]
    assert status["colour"] == "grey"
    assert status["reasons"][0]["text"]["en"] == "Identity being confirmed"
    assert status["asOf"] == "2026-03-10T04:00:00Z"


def test_a_resident_the_registry_sent_is_taken_over_and_green(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)

    body = register_me(client, headers, ADULT, "张伟")

    assert body["identityState"] == "confirmed"
    assert body["status"]["colour"] == "green"
    assert body["status"]["reasons"] == []


def test_a_document_with_another_name_is_refused(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)

    answer = client.post(
        "/v1/residents/me",
        json={"document": {"number": ADULT}, "name": "李娜"},
        headers=headers,
    )

    assert answer.status_code == 409
    assert answer.json()["code"] == "identity_mismatch"
    assert "李娜" not in answer.text and ADULT not in answer.text


def test_one_resident_belongs_to_one_phone(client: Any, outbox: Any) -> None:
    first = sign_in_phone(client, outbox, PHONE)
    second = sign_in_phone(client, outbox, "13900139000")
    register_me(client, first, ADULT, "张伟")

    again = client.post(
        "/v1/residents/me",
        json={"document": {"number": ADULT}, "name": "张伟"},
        headers=first,
    )
    taken = client.post(
        "/v1/residents/me",
        json={"document": {"number": ADULT}, "name": "张伟"},
        headers=second,
    )

    assert (again.status_code, again.json()["code"]) == (409, "already_registered")
    assert (taken.status_code, taken.json()["code"]) == (409, "resident_taken")


def test_a_bad_document_is_a_422_that_names_the_fault(client: Any, outbox: Any) -> None:
    headers = sign_in_phone(client, outbox, PHONE)

    answer = client.post(
        "/v1/residents/me",
        json={"document": {"number": "610113199001011231"}, "name": "张伟"},
        headers=headers,
    )

    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_document"
    assert "610113199001011231" not in answer.text


def test_an_unknown_field_is_named_in_problems(client: Any, outbox: Any) -> None:
    headers = sign_in_phone(client, outbox, PHONE)

    answer = client.post(
        "/v1/residents/me",
        json={"document": {"number": ADULT}, "name": "张伟", "nmae": "x"},
        headers=headers,
    )

    body = answer.json()
    assert answer.status_code == 422
    assert body["code"] == "invalid_request"
    assert body["problems"] == [
        {
            "field": "body.nmae",
            "message": "This field is not part of the request; remove it.",
        }
    ]
    assert body["message"].startswith("body.nmae: ")


def test_the_code_is_fresh_signed_and_verifies(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path, settings: Settings
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")

    first = client.get("/v1/residents/me/code", headers=headers).json()
    second = client.get("/v1/residents/me/code", headers=headers).json()

    assert first["text"].startswith("HCZ1:")
    assert first["text"] != second["text"]
    assert (first["colour"], first["purpose"], first["maskedName"]) == (
        "green",
        "screen",
        "张*",
    )
    assert first["validUntil"] == "2026-03-10T04:05:00Z"
    verified = local_verifier(KeyStore(settings.key_dir)).verify(first["text"], NOW)
    assert verified.colour.value == "green"
    assert verified.content.region == "610100"


def test_a_phone_without_registration_has_no_code(client: Any, outbox: Any) -> None:
    headers = sign_in_phone(client, outbox, PHONE)

    answer = client.get("/v1/residents/me/code", headers=headers)

    assert answer.status_code == 409
    assert answer.json()["code"] == "not_registered"


def test_no_session_means_no_status(client: Any) -> None:
    answer = client.get("/v1/residents/me/status")

    assert answer.status_code == 401
    assert answer.json()["code"] == "not_signed_in"


def test_a_fever_declaration_turns_the_code_yellow_with_its_reason(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")

    answer = client.post(
        "/v1/residents/me/declarations",
        json={"fever": True, "respiratory": False},
        headers=headers,
    )
    status = client.get("/v1/residents/me/status", headers=headers).json()
    history = client.get("/v1/residents/me/history", headers=headers).json()

    assert answer.status_code == 201
    assert answer.json()["recordId"].startswith("APP-")
    assert answer.json()["status"]["colour"] == "yellow"
    assert status["colour"] == "yellow"
    assert status["reasons"][0]["evidence"]["ref"]["department"] == "resident"
    assert [(e["fromColour"], e["toColour"]) for e in history] == [
        (None, "green"),
        ("green", "yellow"),
    ]


def test_a_declared_visit_that_ends_before_it_starts_is_refused(
    client: Any, outbox: Any
) -> None:
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")

    answer = client.post(
        "/v1/residents/me/declarations",
        json={
            "fever": False,
            "respiratory": False,
            "visited": {
                "code": "410105",
                "from": "2026-03-09T10:00:00+08:00",
                "to": "2026-03-09T09:00:00+08:00",
            },
        },
        headers=headers,
    )

    body = answer.json()
    assert answer.status_code == 422
    assert body["code"] == "feed_refused"
    assert "ends before it starts" in body["message"]
    assert body["report"]["errors"][0]["field"] == "visited_to"


def test_a_time_without_an_offset_is_refused(client: Any, outbox: Any) -> None:
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")

    answer = client.post(
        "/v1/residents/me/declarations",
        json={
            "fever": False,
            "respiratory": False,
            "visited": {"code": "410105", "from": "2026-03-09T10:00:00"},
        },
        headers=headers,
    )

    assert answer.status_code == 422
    assert answer.json()["problems"][0]["field"] == "body.visited.from"
    assert "offset" in answer.json()["problems"][0]["message"]
