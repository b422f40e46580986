"""The resident's phone page in Chromium: register, see the code, its refresh, a reason.

These run a real server on 127.0.0.1 and Debian's Chromium headless, and
save screenshots under ``tests/web/screenshots/`` at phone and desktop width.
They skip, and say so loudly, where Chromium or Playwright is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.web.conftest import Outbox
from tests.web.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    LiveServer,
    require_chromium,
    screenshot,
)

from healthcode.accounts.stores import MemoryStore
from healthcode.codes.keys import KeyStore
from healthcode.codes.services import CodeService
from healthcode.config import Settings
from healthcode.db import open_database
from healthcode.service.app import create_app

ADULT = "610113199001011230"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    sync_api = require_chromium()
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture
def live(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[LiveServer, Outbox]]:
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
    # Codes that live 24 seconds, so that the page's refresh comes quickly.
    app.state.runtime.codes = CodeService(
        KeyStore(settings.key_dir),
        region=settings.region,
        zone=settings.tz,
        screen_ttl=timedelta(seconds=24),
    )
    server = LiveServer(app).start()
    yield server, outbox
    server.stop()
    engine.dispose()


def sign_in_and_register(page: Any, server: LiveServer, outbox: Outbox) -> None:
    page.goto(f"{server.url}/app")
    page.fill("#phone", "13800138000")
    page.click("button.primary")
    page.fill("#code", outbox.last("13800138000"))
    page.click("button.primary")
    page.wait_for_url(f"{server.url}/app/register")
    page.fill("#number", ADULT)
    page.fill("#name", "张三丰")
    page.click("button.primary")
    page.wait_for_url(f"{server.url}/app")


def test_register_and_see_a_code_that_refreshes(
    browser: Any, live: tuple[LiveServer, Outbox]
) -> None:
    server, outbox = live
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()

    sign_in_and_register(page, server, outbox)
    first = page.get_attribute("#code", "data-code")
    screenshot(page, "resident-code-phone")
    page.wait_for_function(
        "first => document.getElementById('code').dataset.code !== first",
        arg=first,
        timeout=30_000,
    )

    assert first is not None and first.startswith("HCZ1:")
    assert page.inner_text("#colour-word") == "灰码"
    assert page.inner_text("#masked-name") == "张**"
    assert page.get_attribute("#code", "data-refreshes") == "1"
    assert page.locator("#qr svg").count() == 1
    clock = page.inner_text("#clock")
    page.wait_for_timeout(1100)
    assert page.inner_text("#clock") != clock
    context.close()


def test_a_resident_who_declares_a_fever_sees_yellow_and_the_reason(
    browser: Any, live: tuple[LiveServer, Outbox]
) -> None:
    server, outbox = live
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    page = context.new_page()
    sign_in_and_register(page, server, outbox)

    page.click("text=Daily health declaration")
    page.check("input[name=fever]")
    page.click("button.primary")
    page.wait_for_url(f"{server.url}/app?notice=declared")
    screenshot(page, "resident-yellow-phone")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "resident-yellow-desktop")
    page.set_viewport_size(PHONE)
    page.click("text=Large text")
    screenshot(page, "resident-yellow-large-text-phone")
    large = page.get_attribute("html", "class")

    assert page.inner_text("#colour-word") == "Yellow code"
    reasons = page.inner_text(".why")
    assert "Fever or respiratory symptoms declared in the last 24 hours" in reasons
    assert "Identity being confirmed" in reasons
    assert large == "large-text"
    context.close()


def test_the_last_code_is_shown_offline_until_it_expires(
    browser: Any, live: tuple[LiveServer, Outbox]
) -> None:
    server, outbox = live
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    sign_in_and_register(page, server, outbox)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    page.reload()
    online_code = page.get_attribute("#code", "data-code")

    server.stop()
    page.reload()
    offline_code = page.get_attribute("#code", "data-code")
    word = page.inner_text("#colour-word")
    page.wait_for_selector("#offline-note:not([hidden])", timeout=30_000)
    screenshot(page, "resident-offline-phone")
    page.wait_for_selector("#expired-note:not([hidden])", timeout=30_000)
    expired = page.get_attribute("#code", "class")
    screenshot(page, "resident-offline-expired-phone")
    context.close()

    assert offline_code == online_code
    assert word == "灰码"
    assert expired is not None and "expired" in expired.split()
