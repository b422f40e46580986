"""Venues over HTTP: registration, poster code, check-ins both ways, counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from .conftest import NOW
from .support import (
    ADULT,
    api_key,
    import_identities,
    register_me,
    sign_in_official,
    sign_in_phone,
)

PHONE = "13800138000"


@pytest.fixture
def venue(client: Any, engine: Engine) -> dict[str, Any]:
    admin = sign_in_official(client, engine, "root.admin", "administrator", NOW)
    answer = client.post(
        "/v1/officials/venues",
        json={
            "name": "小寨超市",
            "address": "长安中路 1 号",
            "regionCode": "610113",
            "venueType": "shop",
        },
        headers=admin,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_venue_is_registered_with_its_operator_key(venue: dict, client: Any) -> None:
    operator = {"X-API-Key": venue["operatorKey"]}

    mine = client.get("/v1/venues/me", headers=operator).json()
    poster = client.get("/v1/venues/me/code", headers=operator).json()

    assert (venue["defaultStayMinutes"], venue["venueType"]) == (60, "shop")
    assert mine["venueId"] == venue["venueId"]
    assert mine["operatorKey"] is None
    assert poster["text"].startswith("HCV1:")


def test_a_resident_checks_in_by_scanning_the_poster_and_counts_show_no_one(
    venue: dict, client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    operator = {"X-API-Key": venue["operatorKey"]}
    poster = client.get("/v1/venues/me/code", headers=operator).json()["text"]
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")

    first = client.post(
        "/v1/residents/me/checkins",
        json={"venueCode": poster, "idempotencyKey": "scan-1"},
        headers=headers,
    )
    again = client.post(
        "/v1/residents/me/checkins",
        json={"venueCode": poster, "idempotencyKey": "scan-1"},
        headers=headers,
    )
    counts = client.get("/v1/venues/me/counts", headers=operator).json()

    assert first.json()["accepted"] == 1
    assert again.json()["duplicates"] == 1
    assert counts["day"] == "2026-03-10"
    assert counts["hours"][12] == {"hour": 12, "checkins": 1}
    assert sum(hour["checkins"] for hour in counts["hours"]) == 1
    assert "张" not in str(counts)


def test_a_door_device_scans_residents_codes(
    venue: dict, client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")
    code = client.get("/v1/residents/me/code", headers=headers).json()["text"]
    door = api_key(engine, "checkpoint", f"venue:{venue['venueId']}:east", NOW)

    answer = client.post(
        "/v1/checkpoints/checkins",
        json={
            "scans": [
                {
                    "code": code,
                    "idempotencyKey": "door-1",
                    "checkedInAt": "2026-03-10T12:00:00+08:00",
                },
                {
                    "code": "HCZ1:NOT A CODE",
                    "idempotencyKey": "door-2",
                    "checkedInAt": "2026-03-10T12:00:00+08:00",
                },
            ]
        },
        headers=door,
    )

    body = answer.json()
    assert answer.status_code == 200
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["refused"]] == [(1, "invalid_code")]


def test_a_checkpoint_key_without_a_venue_records_no_door_scans(
    client: Any, engine: Engine
) -> None:
    gate = api_key(engine, "checkpoint", "gate-1", NOW)

    answer = client.post(
        "/v1/checkpoints/checkins",
        json={
            "scans": [
                {
                    "code": "HCZ1:X",
                    "idempotencyKey": "door-1",
                    "checkedInAt": "2026-03-10T12:00:00+08:00",
                }
            ]
        },
        headers=gate,
    )

    assert answer.status_code == 403
    assert "venue:<id>" in answer.json()["message"]


def test_a_bad_venue_is_refused_with_the_reason(client: Any, engine: Engine) -> None:
    admin = sign_in_official(client, engine, "root.admin", "administrator", NOW)

    answer = client.post(
        "/v1/officials/venues",
        json={
            "name": "x",
            "address": "y",
            "regionCode": "610100",
            "venueType": "shop",
        },
        headers=admin,
    )

    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_venue"
