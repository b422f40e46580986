"""The scanner's verifier in Chromium, against codes the Python side issues.

Each case is a code and a moment; the page must reach the outcome that
:func:`healthcode.codes.format.verify_code` documents: the colour of a good
code, or the refusal's stable code.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from tests.web.conftest import Outbox
from tests.web.support import CHROMIUM, CHROMIUM_ARGS, LiveServer, require_chromium

from healthcode.accounts.stores import MemoryStore
from healthcode.codes import base45
from healthcode.codes.format import PREFIX, Colour, Issuer
from healthcode.codes.keys import KeyRole, KeyStore
from healthcode.config import Settings
from healthcode.db import open_database
from healthcode.identity.documents import parse_document
from healthcode.identity.services import register_resident
from healthcode.regions.peers import make_card
from healthcode.regions.services import ensure_key, peer_store, published_trust_list
from healthcode.service.app import create_app

ADULT = "610113199001011230"


def flip_signature_bit(text: str) -> str:
    raw = bytearray(base45.decode(text[len(PREFIX) :]))
    raw[-1] ^= 0x01
    return PREFIX + base45.encode(bytes(raw))


@pytest.fixture
def codes(tmp_path: Path, sqlite_template: Path) -> Iterator[dict[str, Any]]:
    path = tmp_path / "healthcode.db"
    shutil.copyfile(sqlite_template, path)
    engine = open_database(f"sqlite:///{path}")
    settings = Settings(
        database_url=f"sqlite:///{path}",
        key_dir=str(tmp_path / "keys"),
        region="610100",
        cookie_secure=False,
    )
    app = create_app(settings, store=MemoryStore(), sender=Outbox(), engine=engine)
    now = datetime.now(UTC)
    service = app.state.runtime.codes
    with Session(engine) as session, session.begin():
        document = parse_document("cn-id", ADULT, today=now.date())
        resident = register_resident(session, document, "张三丰", now)
        screen = service.screen_code(session, resident.id, now)
        paper = service.paper_code(session, resident.id, now)
    # A region whose key no trust list of this server names.
    stranger = KeyStore(tmp_path / "elsewhere")
    stranger.generate("310000", now)
    foreign = Issuer(
        stranger.signing_key("310000", now), stranger.subject_secret("310000")
    ).screen_code(7, "李**", Colour.GREEN, now)
    # A peer region whose card this server has added: its codes are in the
    # trust list the page is handed, under this server's own anchors.
    guangzhou = KeyStore(tmp_path / "guangzhou")
    for role in (KeyRole.CODE, KeyRole.TRUST_LIST):
        ensure_key(guangzhou, "440100", role, now)
    card = make_card(
        "440100",
        "http://127.0.0.1:7299",
        [r for r in guangzhou.records() if r.role is KeyRole.TRUST_LIST],
        published_trust_list(guangzhou, peer_store(tmp_path / "none"), now, None),
    )
    peer_store(settings.key_dir).add(card, now, own_region="610100")
    peer = Issuer(
        guangzhou.signing_key("440100", now), guangzhou.subject_secret("440100")
    ).screen_code(8, "林**", Colour.YELLOW, now)
    server = LiveServer(app).start()
    yield {
        "server": server,
        "now": now,
        "cases": {
            "screen": screen.text,
            "paper": paper.text,
            "tampered": flip_signature_bit(screen.text),
            "foreign": foreign,
            "peer": peer,
            "poster": "HCV1:" + screen.text[5:],
            "nonsense": "HCZ1:@@@",
        },
    }
    server.stop()
    engine.dispose()


def test_the_page_reaches_the_outcomes_the_service_documents(
    codes: dict[str, Any],
) -> None:
    sync_api = require_chromium()
    server: LiveServer = codes["server"]
    now = codes["now"].timestamp()
    checks = [
        ("screen", now, "grey"),
        ("paper", now, "grey"),
        ("screen", now + 301, "expired_code"),
        ("screen", now - 301, "not_yet_valid_code"),
        ("paper", now + timedelta(days=2).total_seconds(), "stale_status_list"),
        ("tampered", now, "invalid_code"),
        ("foreign", now, "unknown_key"),
        ("peer", now, "yellow"),
        ("poster", now, "venue_poster"),
        ("nonsense", now, "invalid_code"),
    ]
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page()
        page.goto(f"{server.url}/checkpoint")
        page.wait_for_function("() => window.healthcodeScanner.ready()")
        outcomes = [
            page.evaluate(
                "([text, at]) => window.healthcodeScanner.verify(text, at)"
                ".then(r => r.refused || r.colour)",
                [codes["cases"][case], at],
            )
            for case, at, _ in checks
        ]
        browser.close()

    assert outcomes == [expected for _, _, expected in checks]
