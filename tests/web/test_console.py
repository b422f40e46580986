"""The officials' console through the test client."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session
from tests.web.conftest import ADULT, csrf_of, register, sign_in

from healthcode.accounts.services import create_official
from healthcode.audit.models import AuditEntry
from healthcode.codes.card import find_cjk_font
from healthcode.codes.errors import CardFontMissing
from healthcode.codes.qr import read_texts
from healthcode.officials.models import BulkOverride

PASSWORD = "correct horse battery"


def add_official(engine: Any, username: str, role: str, now: datetime) -> str:
    with Session(engine) as session, session.begin():
        _, secret = create_official(session, username, role, PASSWORD, now)
    return secret


def official_signs_in(client: Any, engine: Any, clock: Any, username: str) -> str:
    secret = add_official(engine, username, "health-official", clock.now)
    token = csrf_of(client.get("/console/sign-in").text)
    answer = client.post(
        "/console/sign-in",
        data={
            "username": username,
            "password": PASSWORD,
            "totp": pyotp.TOTP(secret).at(clock.now),
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return token


def test_the_dashboard_draws_its_three_plots(
    client: Any, engine: Any, clock: Any
) -> None:
    official_signs_in(client, engine, clock, "li.wei")

    page = client.get("/console", headers={"Accept-Language": "en"})

    assert page.status_code == 200
    assert page.text.count("<svg") == 3
    assert "Residents by colour now" in page.text
    assert "Colour changes per day, last 7 days" in page.text


def test_the_console_asks_whoever_is_not_signed_in_to_sign_in(client: Any) -> None:
    answer = client.get("/console", follow_redirects=False)

    assert answer.headers["location"] == "/console/sign-in"


def test_a_wrong_one_time_code_is_refused_with_the_form_again(
    client: Any, engine: Any, clock: Any
) -> None:
    add_official(engine, "li.wei", "health-official", clock.now)
    token = csrf_of(client.get("/console/sign-in").text)

    answer = client.post(
        "/console/sign-in",
        data={
            "username": "li.wei",
            "password": PASSWORD,
            "totp": "000000",
            "csrf_token": token,
        },
    )

    assert answer.status_code == 401
    assert 'value="li.wei"' in answer.text


def test_an_appeal_is_reviewed_and_corrected_from_the_queue(
    client: Any, engine: Any, clock: Any, outbox: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")
    register(client, token)
    client.post("/app/appeal", data={"message": "Wrong.", "csrf_token": token})
    client.cookies.clear()
    token = official_signs_in(client, engine, clock, "li.wei")
    queue = client.get("/console/appeals")

    reviewed = client.post(
        "/console/appeals/1/review",
        data={
            "outcome": "corrected",
            "colour": "green",
            "expires": "2026-03-12T12:00",
            "note": "Identity confirmed at the office.",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    after = client.get("/console/appeals")

    assert "Wrong." in queue.text
    assert reviewed.status_code == 303
    assert "Wrong." not in after.text


def test_a_bulk_override_waits_for_a_second_official(
    client: Any, engine: Any, clock: Any, app: Any
) -> None:
    app.state.runtime.settings.bulk_override_threshold = 0
    token = official_signs_in(client, engine, clock, "li.wei")
    client.get("/app/sign-in")
    with Session(engine) as session, session.begin():
        from healthcode.identity.documents import parse_document
        from healthcode.identity.services import register_resident

        resident = register_resident(
            session,
            parse_document("cn-id", ADULT, today=clock.now.date()),
            "张三丰",
            clock.now,
        )
        resident_id = resident.id

    proposed = client.post(
        "/console/overrides",
        data={
            "residents": str(resident_id),
            "colour": "yellow",
            "reason": "Building under observation.",
            "expires": "2026-03-11T12:00",
            "legal_basis": "Order 12 of the city command.",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    own = client.post("/console/bulk-overrides/1/approve", data={"csrf_token": token})
    client.cookies.clear()
    token = official_signs_in(client, engine, clock, "wang.fang")
    approved = client.post(
        "/console/bulk-overrides/1/approve",
        data={"csrf_token": token},
        follow_redirects=False,
    )

    with Session(engine) as session:
        state = session.get(BulkOverride, 1).state
    assert proposed.headers["location"] == "/console/overrides?done=proposed&count=1"
    assert own.status_code == 403
    assert approved.headers["location"] == "/console/overrides?done=approved"
    assert state == "approved"


def test_a_search_needs_a_purpose_and_is_audited(
    client: Any, engine: Any, clock: Any, outbox: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")
    register(client, token)
    client.cookies.clear()
    token = official_signs_in(client, engine, clock, "li.wei")

    refused = client.post(
        "/console/search", data={"name": "张三丰", "purpose": "", "csrf_token": token}
    )
    found = client.post(
        "/console/search",
        data={
            "name": "张三丰",
            "purpose": "Tracing case 12 at Yanta market.",
            "csrf_token": token,
        },
    )

    with Session(engine) as session:
        entry = session.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == "resident.search")
        ).one()
    assert refused.status_code == 422
    assert "张三丰" in found.text
    assert "6101**********1230" in found.text
    assert entry.purpose == "Tracing case 12 at Yanta market."


def test_a_surname_with_a_birth_year_finds_the_resident(
    client: Any, engine: Any, clock: Any, outbox: Any
) -> None:
    token = sign_in(client, outbox, "13800138000")
    register(client, token)
    client.cookies.clear()
    token = official_signs_in(client, engine, clock, "li.wei")
    asked = {"purpose": "Tracing case 12 at Yanta market.", "csrf_token": token}

    same_year = client.post(
        "/console/search", data={**asked, "name": "张", "born_in": ADULT[6:10]}
    )
    other_year = client.post(
        "/console/search", data={**asked, "name": "张", "born_in": "1901"}
    )
    no_year = client.post("/console/search", data={**asked, "name": "张"})

    assert "张三丰" in same_year.text
    assert "6101**********1230" in same_year.text
    assert "张三丰" not in other_year.text
    assert "张三丰" not in no_year.text


def test_a_risk_area_is_declared_and_listed(
    client: Any, engine: Any, clock: Any
) -> None:
    token = official_signs_in(client, engine, clock, "li.wei")

    answer = client.post(
        "/console/risk-areas",
        data={
            "record_id": "HC-2026-031",
            "code": "610113",
            "name": "小寨路街道",
            "level": "medium",
            "starts": "2026-03-09T08:00",
            "csrf_token": token,
        },
    )

    assert answer.status_code == 200, answer.text
    assert "小寨路街道" in answer.text
    assert "HC-2026-031" in answer.text


def test_a_feed_file_is_imported_with_its_report(
    client: Any, engine: Any, clock: Any
) -> None:
    token = official_signs_in(client, engine, clock, "li.wei")
    rows = (
        "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,"
        "confirmed_at\n"
        f"PS-1,cn-id,{ADULT},,张三丰,610113,confirmed,2026-03-01T09:00:00\n"
    )

    answer = client.post(
        "/console/feeds",
        data={"kind": "identities", "csrf_token": token},
        files={"feed": ("identities.csv", rows.encode(), "text/csv")},
        headers={"Accept-Language": "en"},
    )

    assert answer.status_code == 200, answer.text
    assert "Imported" in answer.text
    assert "<td>1</td>" in answer.text


def administrator_signs_in(client: Any, engine: Any, clock: Any) -> str:
    secret = add_official(engine, "admin.zhou", "administrator", clock.now)
    token = csrf_of(client.get("/console/sign-in").text)
    client.post(
        "/console/sign-in",
        data={
            "username": "admin.zhou",
            "password": PASSWORD,
            "totp": pyotp.TOTP(secret).at(clock.now),
            "csrf_token": token,
        },
    )
    return token


def test_a_venue_is_registered_and_its_operator_sees_counts_and_a_poster(
    client: Any, engine: Any, clock: Any
) -> None:
    try:
        find_cjk_font()
    except CardFontMissing as exc:
        pytest.skip(f"The poster cannot be drawn here: {exc}")
    token = administrator_signs_in(client, engine, clock)
    made = client.post(
        "/console/venues",
        data={
            "name": "雁塔超市",
            "address": "雁塔路1号",
            "region": "610113",
            "venue_type": "shop",
            "csrf_token": token,
        },
    )
    key = made.text.split('<code id="venue-key">')[1].split("</code>")[0]
    client.cookies.clear()
    token = csrf_of(client.get("/venue/sign-in").text)

    signed = client.post(
        "/venue/sign-in", data={"key": key, "csrf_token": token}, follow_redirects=False
    )
    page = client.get("/venue")
    poster = client.get("/venue/poster.png")

    assert made.status_code == 200
    assert key.startswith("hck_")
    assert signed.headers["location"] == "/venue"
    assert "雁塔超市" in page.text
    assert page.text.count("<svg") == 1
    assert poster.headers["content-type"] == "image/png"
    texts = read_texts(Image.open(io.BytesIO(poster.content)))
    assert len(texts) == 1 and texts[0].startswith("HCV1:")


def test_a_wrong_venue_key_is_refused(client: Any) -> None:
    token = csrf_of(client.get("/venue/sign-in").text)

    answer = client.post(
        "/venue/sign-in", data={"key": "hck_" + "x" * 40, "csrf_token": token}
    )

    assert answer.status_code == 401
