"""Subject access: everything held about a resident, and who saw it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.models import Account
from healthcode.audit.services import append
from healthcode.feeds.services import import_feed
from healthcode.identity.documents import parse_document
from healthcode.identity.errors import UnknownResident
from healthcode.identity.services import find_resident
from healthcode.privacy.access import subject_access
from healthcode.status.services import recolor_residents

from .support import add_checkin, service, sign_in, sign_in_official

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
ZHANG = "610113196702282566"
LI = "42010620010923415X"


def _import(engine: Engine, kind: str, path: Path, at: datetime) -> int:
    report = import_feed(
        engine,
        kind,
        path,
        now=at,
        zone=ZONE,
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    assert report.committed, report.errors
    assert report.import_id is not None
    return report.import_id


def _ids(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        zhang = find_resident(session, parse_document("cn-id", ZHANG, today=NOW.date()))
        li = find_resident(session, parse_document("cn-id", LI, today=NOW.date()))
        assert zhang is not None and li is not None
        return zhang.id, li.id


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> dict[str, Any]:
    """Two residents with records, and audit entries about one, both or neither."""
    identities = _import(
        engine, "identities", EXAMPLES / "identities.csv", NOW - timedelta(days=2)
    )
    labs = tmp_path / "labs.csv"
    labs.write_text(
        "record_id,doc_number,sampled_at,method,result\n"
        f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n",
        encoding="utf-8",
    )
    lab_import = _import(engine, "lab-results", labs, NOW)
    zhang, li = _ids(engine)
    with Session(engine) as session, session.begin():
        session.add(Account(phone="+8613912345678", resident_id=zhang, created_at=NOW))
        add_checkin(session, zhang, NOW - timedelta(hours=3))
        entries = [
            ("official:1", "resident.read", f"resident:{zhang}", "reviewing", {}),
            ("official:1", "resident.read", f"resident:{li}", "other person", {}),
            (
                "official:2",
                "resident.search",
                None,
                "tracing",
                {"residents": [li, zhang]},
            ),
            ("official:2", "resident.search", None, "tracing", {"residents": [li]}),
            # A count of residents under the same key names nobody.
            ("official:3", "override.bulk", None, "basis", {"residents": zhang}),
            ("api-key:1", "feed.identities", None, None, {"importId": identities}),
            ("api-key:2", "feed.lab-results", None, None, {"importId": lab_import}),
            ("api-key:2", "feed.lab-results", None, None, {"importId": 999}),
            ("api-key:3", "resident.lookup", f"resident:{zhang}", None, {}),
        ]
        for actor, action, subject, purpose, details in entries:
            append(
                session,
                at=NOW,
                actor=actor,
                action=action,
                subject=subject,
                purpose=purpose,
                details=details,
            )
    return {"zhang": zhang, "li": li}


def test_every_record_about_the_resident_is_there(
    engine: Engine, world: dict[str, Any]
) -> None:
    with Session(engine) as session:
        found = subject_access(session, world["zhang"])

    assert found.resident["doc_number"] == ZHANG
    assert found.resident["name"] == "张晓明"
    assert [r["source_id"] for r in found.records["identities"]] == ["PS-20260301-0001"]
    assert [r["result"] for r in found.records["lab-results"]] == ["negative"]
    assert found.records["declarations"] == []
    assert found.status is not None and found.status["colour"] == "green"
    assert [event["new_colour"] for event in found.history] == ["green"]
    assert [visit["venue_name"] for visit in found.visits][0].startswith("Shop")
    assert found.account is not None and found.account["phone"] == "+8613912345678"
    assert "content_hash" not in found.records["identities"][0]


def test_every_access_about_the_resident_and_none_other(
    engine: Engine, world: dict[str, Any]
) -> None:
    with Session(engine) as session:
        found = subject_access(session, world["zhang"])

    assert [(a["actor"], a["action"], a["purpose"]) for a in found.accesses] == [
        ("official:1", "resident.read", "reviewing"),
        ("official:2", "resident.search", "tracing"),
        ("api-key:1", "feed.identities", None),
        ("api-key:2", "feed.lab-results", None),
        ("api-key:3", "resident.lookup", None),
    ]
    assert all("details" not in access for access in found.accesses)


def test_another_residents_accesses_are_their_own(
    engine: Engine, world: dict[str, Any]
) -> None:
    with Session(engine) as session:
        found = subject_access(session, world["li"])

    assert [(a["action"], a["purpose"]) for a in found.accesses] == [
        ("resident.read", "other person"),
        ("resident.search", "tracing"),
        ("resident.search", "tracing"),
        ("feed.identities", None),
    ]
    assert found.visits == []
    assert found.account is None


def test_an_unknown_resident_is_refused(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(UnknownResident):
        subject_access(session, 12345)


# Over HTTP.

ADULT = "610113199001011230"
CHILD = "610113201505050014"
PHONE = "13912345678"
OTHER_PHONE = "13987654321"


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[tuple[Any, Any, Any]]:
    with service(engine, tmp_path) as running:
        yield running


def _register(http: Any, headers: dict[str, str], number: str, name: str) -> int:
    answer = http.post(
        "/v1/residents/me",
        json={"document": {"kind": "cn-id", "number": number}, "name": name},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["residentId"])


def test_a_resident_sees_their_data_with_number_and_phone_masked(
    client: tuple[Any, Any, Any],
) -> None:
    http, outbox, _ = client
    me = sign_in(http, outbox, PHONE)
    _register(http, me, ADULT, "周慧敏")

    answer = http.get("/v1/residents/me/data", headers=me)

    body = answer.json()
    assert answer.status_code == 200, answer.text
    assert body["resident"]["docNumber"] == "6101**********1230"
    assert body["resident"]["name"] == "周慧敏"
    assert body["account"]["phone"] == "**********5678"
    assert body["status"]["colour"] == "grey"
    assert ADULT not in answer.text and PHONE not in answer.text


def test_a_resident_sees_an_officials_read_and_its_purpose(
    client: tuple[Any, Any, Any], engine: Engine
) -> None:
    http, outbox, clock = client
    me = sign_in(http, outbox, PHONE)
    resident_id = _register(http, me, ADULT, "周慧敏")
    official = sign_in_official(engine, http, "reader", "health-official", clock.now)
    read = http.get(
        f"/v1/officials/residents/{resident_id}",
        params={"purpose": "reviewing an appeal"},
        headers=official,
    )

    answer = http.get("/v1/residents/me/data", headers=me)

    assert read.status_code == 200, read.text
    reads = [a for a in answer.json()["accesses"] if a["action"] == "resident.read"]
    assert [(a["actorRole"], a["purpose"]) for a in reads] == [
        ("health-official", "reviewing an appeal")
    ]


def test_one_resident_cannot_read_anothers_data(
    client: tuple[Any, Any, Any],
) -> None:
    http, outbox, _ = client
    me = sign_in(http, outbox, PHONE)
    resident_id = _register(http, me, ADULT, "周慧敏")
    other = sign_in(http, outbox, OTHER_PHONE)

    answer = http.get(f"/v1/dependents/{resident_id}/data", headers=other)

    assert answer.status_code == 404
    assert answer.json()["code"] == "not_your_dependent"
    assert "周慧敏" not in answer.text


def test_without_registration_or_session_there_is_no_data(
    client: tuple[Any, Any, Any],
) -> None:
    http, outbox, _ = client
    unregistered = sign_in(http, outbox, OTHER_PHONE)

    mine = http.get("/v1/residents/me/data", headers=unregistered)
    nobody = http.get("/v1/residents/me/data")

    assert (mine.status_code, mine.json()["code"]) == (409, "not_registered")
    assert (nobody.status_code, nobody.json()["code"]) == (401, "not_signed_in")


def test_a_guardians_read_of_a_dependents_data_is_audited(
    client: tuple[Any, Any, Any],
) -> None:
    http, outbox, _ = client
    guardian = sign_in(http, outbox, PHONE)
    _register(http, guardian, ADULT, "周慧敏")
    added = http.post(
        "/v1/dependents",
        json={"document": {"kind": "cn-id", "number": CHILD}, "name": "周小明"},
        headers=guardian,
    )
    child = added.json()["residentId"]

    first = http.get(f"/v1/dependents/{child}/data", headers=guardian)
    second = http.get(f"/v1/dependents/{child}/data", headers=guardian)

    assert added.status_code == 201, added.text
    assert first.status_code == 200, first.text
    actions = [(a["action"], a["actorRole"]) for a in second.json()["accesses"]]
    # The second answer was gathered before its own read was recorded.
    assert actions == [
        ("dependent.add", None),
        ("resident.data.read", "guardian"),
    ]
    assert second.json()["guardians"][0]["state"] == "active"
