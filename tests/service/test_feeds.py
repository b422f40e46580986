"""Department feeds and officials' risk areas over HTTP, through the importer."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .conftest import NOW
from .support import ADULT, api_key, sign_in_official

IDENTITIES = (
    "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,confirmed_at\n"
    f"PS-1,cn-id,{ADULT},,张伟,610113,confirmed,2026-03-01T09:00:00\n"
)
LAB_HEADER = (
    "record_id,doc_kind,doc_number,doc_country,"
    "sampled_at,reported_at,method,result,lab\n"
)
CSV = {"Content-Type": "text/csv"}


def department(engine: Engine, *kinds: str) -> dict[str, str]:
    return api_key(engine, "department", "public-security", NOW, list(kinds))


def test_a_department_uploads_identities_and_gets_the_report(
    client: Any, engine: Engine
) -> None:
    headers = {**department(engine, "identities"), **CSV}

    answer = client.post("/v1/feeds/identities", content=IDENTITIES, headers=headers)

    body = answer.json()
    assert answer.status_code == 200
    assert (body["read"], body["imported"], body["rejected"]) == (1, 1, 0)
    assert body["committed"] is True
    assert body["department"] == "public-security"
    assert body["mode"] == "all-or-nothing"
    assert body["fileName"] == "identities-upload.csv"


def test_c10_the_same_file_twice_adds_nothing(client: Any, engine: Engine) -> None:
    headers = {**department(engine, "identities"), **CSV}
    client.post("/v1/feeds/identities", content=IDENTITIES, headers=headers)

    again = client.post("/v1/feeds/identities", content=IDENTITIES, headers=headers)

    body = again.json()
    assert (body["imported"], body["unchanged"], body["statusesChanged"]) == (0, 1, 0)


def test_c09_a_future_sample_refuses_the_file_naming_its_line(
    client: Any, engine: Engine
) -> None:
    key = department(engine, "identities", "lab-results")
    client.post("/v1/feeds/identities", content=IDENTITIES, headers={**key, **CSV})
    lab = (
        LAB_HEADER
        + f"LAB-1,cn-id,{ADULT},,2026-03-10T08:00:00,,pcr,negative,\n"
        + f"LAB-2,cn-id,{ADULT},,2026-03-13T08:00:00,,pcr,negative,\n"
    )

    refused = client.post("/v1/feeds/lab-results", content=lab, headers={**key, **CSV})
    skipped = client.post(
        "/v1/feeds/lab-results?skipBad=true", content=lab, headers={**key, **CSV}
    )

    body = refused.json()
    assert refused.status_code == 422
    assert body["code"] == "feed_refused"
    assert "line 3" in body["message"]
    assert body["report"]["errors"][0]["line"] == 3
    assert body["report"]["errors"][0]["field"] == "sampled_at"
    assert body["report"]["imported"] == 0
    assert skipped.status_code == 200
    assert (skipped.json()["imported"], skipped.json()["rejected"]) == (1, 1)


def test_a_key_sends_only_its_feed_kinds(client: Any, engine: Engine) -> None:
    headers = {**department(engine, "lab-results"), **CSV}

    answer = client.post("/v1/feeds/identities", content=IDENTITIES, headers=headers)

    assert answer.status_code == 403
    assert answer.json()["message"] == (
        "This key may send lab-results; it may not send identities."
    )


def test_only_department_keys_upload(client: Any, engine: Engine) -> None:
    checkpoint = {**api_key(engine, "checkpoint", "gate-1", NOW), **CSV}

    without = client.post("/v1/feeds/identities", content=IDENTITIES, headers=CSV)
    wrong = client.post("/v1/feeds/identities", content=IDENTITIES, headers=checkpoint)

    assert (without.status_code, without.json()["code"]) == (401, "invalid_api_key")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "out_of_scope")


def test_an_unknown_kind_or_content_type_is_refused(
    client: Any, engine: Engine
) -> None:
    key = department(engine, "identities")

    kind = client.post("/v1/feeds/gossip", content=IDENTITIES, headers={**key, **CSV})
    media = client.post(
        "/v1/feeds/identities",
        content=IDENTITIES,
        headers={**key, "Content-Type": "application/pdf"},
    )

    assert kind.status_code == 422
    assert kind.json()["problems"][0]["field"] == "path.kind"
    assert (media.status_code, media.json()["code"]) == (415, "feed_unknown_format")


def test_ndjson_is_accepted_too(client: Any, engine: Engine) -> None:
    headers = {
        **department(engine, "identities"),
        "Content-Type": "application/x-ndjson",
    }
    line = (
        '{"record_id": "PS-1", "doc_kind": "cn-id", "doc_number": "'
        + ADULT
        + '", "name": "张伟", "region_code": "610113", "outcome": "confirmed",'
        ' "confirmed_at": "2026-03-01T09:00:00"}\n'
    )

    answer = client.post("/v1/feeds/identities", content=line, headers=headers)

    assert answer.status_code == 200
    assert answer.json()["imported"] == 1


def test_an_upload_is_audited_as_the_key(client: Any, engine: Engine) -> None:
    headers = {**department(engine, "identities"), **CSV}

    client.post("/v1/feeds/identities", content=IDENTITIES, headers=headers)

    with engine.connect() as connection:
        entries = connection.execute(
            sa.text("SELECT actor, actor_role, action FROM audit_entries")
        ).all()
    assert len(entries) == 1
    assert entries[0][0].startswith("api-key:")
    assert entries[0][1:] == ("department", "feed.identities")


def test_an_official_declares_and_ends_a_risk_area(client: Any, engine: Engine) -> None:
    headers = sign_in_official(client, engine, "wang.li", "health-official", NOW)
    area = {
        "recordId": "RA-610113-1",
        "code": "610113",
        "level": "medium",
        "startsAt": "2026-03-09T00:00:00+08:00",
    }

    declared = client.post(
        "/v1/officials/risk-areas", json={"areas": [area]}, headers=headers
    )
    ended = client.post(
        "/v1/officials/risk-areas",
        json={"areas": [{**area, "endsAt": "2026-03-10T09:00:00+08:00"}]},
        headers=headers,
    )

    assert declared.status_code == 200
    assert declared.json()["imported"] == 1
    assert declared.json()["department"] == "health-commission"
    assert ended.json()["updated"] == 1


def test_a_community_worker_declares_no_risk_area(client: Any, engine: Engine) -> None:
    headers = sign_in_official(client, engine, "li.na", "community-worker", NOW)

    answer = client.post(
        "/v1/officials/risk-areas",
        json={
            "areas": [
                {
                    "recordId": "RA-1",
                    "code": "610113",
                    "level": "high",
                    "startsAt": "2026-03-09T00:00:00Z",
                }
            ]
        },
        headers=headers,
    )

    assert answer.status_code == 403
    assert "declare-risk-areas" in answer.json()["message"]


def test_a_risk_area_file_goes_through_the_importer(
    client: Any, engine: Engine
) -> None:
    headers = {
        **sign_in_official(client, engine, "wang.li", "health-official", NOW),
        **CSV,
    }
    text = (
        "record_id,code,name,level,starts_at,ends_at\n"
        "RA-1,610113,,high,2026-03-09T00:00:00,\n"
        "RA-2,999999,,high,2026-03-09T00:00:00,\n"
    )

    answer = client.post("/v1/officials/risk-areas/file", content=text, headers=headers)

    assert answer.status_code == 422
    assert answer.json()["report"]["errors"][0]["line"] == 3
