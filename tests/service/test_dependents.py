"""A guardian's dependents over HTTP, with row C11 and removal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.codes.format import Purpose
from healthcode.codes.keys import KeyStore
from healthcode.codes.services import local_verifier
from healthcode.config import Settings
from healthcode.identity.documents import mod11_2_check

from .conftest import NOW
from .support import (
    CHILD,
    GRANDMOTHER,
    NEPHEW,
    import_identities,
    sign_in_phone,
)

PHONE = "13800138000"


def child(sequence: int) -> str:
    body = f"61011320150505{sequence:03d}"
    return body + mod11_2_check(body)


def add(client: Any, headers: dict[str, str], number: str, name: str) -> Any:
    return client.post(
        "/v1/dependents",
        json={"document": {"number": number}, "name": name},
        headers=headers,
    )


def test_a_grandmother_is_added_at_once_and_gets_codes(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path, settings: Settings
) -> None:
    import_identities(engine, tmp_path, NOW, [(GRANDMOTHER, "王秀英")])
    headers = sign_in_phone(client, outbox, PHONE)

    added = add(client, headers, GRANDMOTHER, "王秀英")
    dependent = added.json()["residentId"]
    listed = client.get("/v1/dependents", headers=headers).json()
    screen = client.get(f"/v1/dependents/{dependent}/code", headers=headers).json()
    paper = client.get(f"/v1/dependents/{dependent}/paper-code", headers=headers).json()

    assert added.status_code == 201
    assert (added.json()["state"], added.json()["basis"]) == ("active", "elder")
    assert added.json()["maskedName"] == "王**"
    assert [d["residentId"] for d in listed] == [dependent]
    assert (screen["colour"], screen["purpose"]) == ("green", "screen")
    assert (paper["colour"], paper["purpose"]) == (None, "paper")
    assert paper["validUntil"] == "2026-03-24T04:00:00Z"
    verifier = local_verifier(KeyStore(settings.key_dir))
    assert verifier.verify(paper["text"], NOW).purpose is Purpose.PAPER


def test_a_pending_dependent_shows_nothing_until_approved(
    client: Any, outbox: Any
) -> None:
    headers = sign_in_phone(client, outbox, PHONE)

    added = add(client, headers, NEPHEW, "张明")
    code = client.get(
        f"/v1/dependents/{added.json()['residentId']}/code", headers=headers
    )

    assert added.json()["state"] == "pending"
    assert code.status_code == 404
    assert code.json()["code"] == "not_your_dependent"


def test_c11_the_ninth_dependent_is_refused_with_the_limit(
    client: Any, outbox: Any
) -> None:
    headers = sign_in_phone(client, outbox, PHONE)
    for sequence in range(1, 9):
        assert add(client, headers, child(sequence), "张小明").status_code == 201

    ninth = add(client, headers, child(9), "张小明")

    assert ninth.status_code == 409
    assert ninth.json()["code"] == "dependent_limit"
    assert "at most 8 dependents" in ninth.json()["message"]


def test_c11_the_fourth_guardian_is_refused_with_the_limit(
    client: Any, outbox: Any
) -> None:
    phones = ["13800138000", "13800138001", "13800138002", "13800138003"]
    headers = [sign_in_phone(client, outbox, phone) for phone in phones]
    for guardian in headers[:3]:
        assert add(client, guardian, CHILD, "张小明").status_code == 201

    fourth = add(client, headers[3], CHILD, "张小明")

    assert fourth.status_code == 409
    assert fourth.json()["code"] == "guardian_limit"
    assert "at most 3 guardians" in fourth.json()["message"]


def test_a_removed_guardian_loses_access(client: Any, outbox: Any) -> None:
    headers = sign_in_phone(client, outbox, PHONE)
    dependent = add(client, headers, CHILD, "张小明").json()["residentId"]

    removed = client.delete(f"/v1/dependents/{dependent}", headers=headers)
    code = client.get(f"/v1/dependents/{dependent}/code", headers=headers)
    again = client.delete(f"/v1/dependents/{dependent}", headers=headers)

    assert removed.status_code == 204
    assert code.status_code == 404
    assert again.status_code == 404


def test_another_phone_cannot_see_someone_elses_dependent(
    client: Any, outbox: Any
) -> None:
    mine = sign_in_phone(client, outbox, PHONE)
    theirs = sign_in_phone(client, outbox, "13900139000")
    dependent = add(client, mine, CHILD, "张小明").json()["residentId"]

    answer = client.get(f"/v1/dependents/{dependent}/status", headers=theirs)

    assert answer.status_code == 404


def test_a_guardians_changes_are_audited(
    client: Any, outbox: Any, engine: Engine
) -> None:
    headers = sign_in_phone(client, outbox, PHONE)
    dependent = add(client, headers, CHILD, "张小明").json()["residentId"]
    client.post(
        f"/v1/dependents/{dependent}/declarations",
        json={"fever": False, "respiratory": False},
        headers=headers,
    )
    client.delete(f"/v1/dependents/{dependent}", headers=headers)

    with engine.connect() as connection:
        entries = connection.execute(
            sa.text("SELECT action, subject FROM audit_entries ORDER BY id")
        ).all()

    assert [action for action, _ in entries] == [
        "dependent.add",
        "feed.declarations",
        "dependent.remove",
    ]
    assert entries[0][1] == f"resident:{dependent}"


def test_a_dependent_id_out_of_range_is_a_422(client: Any, outbox: Any) -> None:
    headers = sign_in_phone(client, outbox, PHONE)

    answer = client.get("/v1/dependents/99999999999/code", headers=headers)

    assert answer.status_code == 422
    assert answer.json()["problems"][0]["field"] == "path.dependent_id"
