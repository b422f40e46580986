"""Accessibility in Chromium: axe-core on the colour screens, the console by keyboard.

axe-core's rules run on the code screen in each colour a resident can get
from the page, on the scanner's verdict screens and on the console's
dashboard; serious or critical findings fail, colour contrast first. The
console is then used with the keyboard alone: sign in, and reach every
section, each focused control visibly outlined.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy.orm import Session
from tests.web.conftest import Outbox
from tests.web.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    LiveServer,
    require_chromium,
    require_vendor_files,
)

from healthcode.accounts.services import create_official
from healthcode.accounts.stores import MemoryStore
from healthcode.config import Settings
from healthcode.db import open_database
from healthcode.service.app import create_app

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core"
PASSWORD = "correct horse battery"
ADULT = "610113199001011230"


def require_axe() -> Path:
    # The asset build installs axe-core with the scanner's libraries.
    require_vendor_files()
    script = AXE / "axe.min.js"
    if not script.exists():
        message = (
            "ACCESSIBILITY CHECKS DO NOT RUN: axe-core is not installed in"
            f" {AXE.parent}; run npm ci --prefix web."
        )
        print(f"\n*** {message} ***")
        pytest.skip(message)
    return script


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[dict[str, Any]]:
    path = tmp_path / "healthcode.db"
    shutil.copyfile(sqlite_template, path)
    engine = open_database(f"sqlite:///{path}")
    settings = Settings(
        database_url=f"sqlite:///{path}",
        key_dir=str(tmp_path / "keys"),
        region="610100",
        cookie_secure=False,
    )
    outbox = Outbox()
    app = create_app(settings, store=MemoryStore(), sender=outbox, engine=engine)
    with Session(engine) as session, session.begin():
        _, secret = create_official(
            session, "li.wei", "health-official", PASSWORD, datetime.now(UTC)
        )
    server = LiveServer(app).start()
    yield {"server": server, "outbox": outbox, "secret": secret}
    server.stop()
    engine.dispose()


def serious(page: Any, axe: Path) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now."""
    page.add_script_tag(path=str(axe))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']}))"
        ".violations.filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return list(found)


def test_the_colour_screens_and_the_dashboard_pass_axe(live: dict[str, Any]) -> None:
    sync_api = require_chromium()
    axe = require_axe()
    server: LiveServer = live["server"]
    findings: dict[str, Any] = {}
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        # axe is injected as a script of the test's own; the page's policy
        # would rightly refuse it.
        context = browser.new_context(viewport=PHONE, bypass_csp=True)
        page = context.new_page()
        page.goto(f"{server.url}/app")
        page.fill("#phone", "13800138000")
        page.click("button.primary")
        page.fill("#code", live["outbox"].last("13800138000"))
        page.click("button.primary")
        page.fill("#number", ADULT)
        page.fill("#name", "张三丰")
        page.click("button.primary")
        page.wait_for_url(f"{server.url}/app")
        findings["grey code"] = serious(page, axe)
        page.goto(f"{server.url}/app/declare")
        page.check("input[name=fever]")
        page.click("button.primary")
        page.wait_for_selector(".code.colour-yellow")
        findings["yellow code"] = serious(page, axe)

        page.goto(f"{server.url}/checkpoint")
        for colour in ("green", "yellow", "red", "grey", "refused"):
            page.evaluate(
                "colour => { const v = document.getElementById('verdict');"
                " v.className = 'verdict verdict-' + colour; v.hidden = false;"
                " document.getElementById('verdict-word').textContent = colour;"
                " document.getElementById('verdict-name').textContent = '张**';"
                " document.getElementById('verdict-reason').textContent = 'reason'; }",
                colour,
            )
            findings[f"{colour} verdict"] = serious(page, axe)

        page.goto(f"{server.url}/console/sign-in")
        page.fill("#username", "li.wei")
        page.fill("#password", PASSWORD)
        page.fill("#totp", pyotp.TOTP(live["secret"]).now())
        page.click("button.primary")
        page.wait_for_url(f"{server.url}/console")
        findings["dashboard"] = serious(page, axe)
        browser.close()

    assert {name: found for name, found in findings.items() if found} == {}, json.dumps(
        findings, ensure_ascii=False, indent=1
    )


def test_the_console_is_used_with_the_keyboard_alone(live: dict[str, Any]) -> None:
    sync_api = require_chromium()
    server: LiveServer = live["server"]
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/console/sign-in")

        def tab_to(element_id: str) -> None:
            for _ in range(20):
                page.keyboard.press("Tab")
                if page.evaluate("() => document.activeElement.id") == element_id:
                    return
            raise AssertionError(f"Tab never reached #{element_id}")

        tab_to("username")
        page.keyboard.type("li.wei")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Tab")
        page.keyboard.type(pyotp.TOTP(live["secret"]).now())
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.url}/console")

        reached = []
        outlined = []
        for _ in range(14):
            page.keyboard.press("Tab")
            reached.append(
                page.evaluate("() => document.activeElement.getAttribute('href')")
            )
            # Past the last control the focus leaves the page for the
            # browser's own, and the body is the active element meanwhile.
            outlined.append(
                page.evaluate(
                    "() => document.activeElement === document.body ? 'page left'"
                    " : getComputedStyle(document.activeElement).outlineStyle"
                )
            )
        tab_to_appeals = [href for href in reached if href == "/console/appeals"]
        page.goto(f"{server.url}/console")
        for _ in range(20):
            page.keyboard.press("Tab")
            if (
                page.evaluate("() => document.activeElement.getAttribute('href')")
                == "/console/appeals"
            ):
                break
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.url}/console/appeals")
        browser.close()

    for section in ("/console/feeds", "/console/risk-areas", "/console/overrides"):
        assert section in reached
    assert tab_to_appeals == ["/console/appeals"]
    assert "none" not in outlined
