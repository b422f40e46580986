"""The console's dashboard in Chromium: its plots render, with screenshots."""

from __future__ import annotations

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
    DESKTOP,
    PHONE,
    LiveServer,
    confirm_identities,
    require_chromium,
    screenshot,
)

from healthcode.accounts.services import create_official
from healthcode.accounts.stores import MemoryStore
from healthcode.config import Settings
from healthcode.db import open_database
from healthcode.identity.documents import parse_document
from healthcode.identity.services import register_resident
from healthcode.service.app import create_app

PASSWORD = "correct horse battery"
# Mainland numbers with valid check characters, in three districts of Xi'an.
PEOPLE = [
    ("610113199001011230", "张三丰", "610113"),
    ("61011319550202121X", "李秀英", "610113"),
    ("610113201505050014", "王小明", "610113"),
    ("610113200001010014", "赵强", "610113"),
]


@pytest.fixture
def console(tmp_path: Path, sqlite_template: Path) -> Iterator[dict[str, Any]]:
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
    with Session(engine) as session, session.begin():
        for number, name, region in PEOPLE:
            document = parse_document("cn-id", number, today=now.date())
            register_resident(session, document, name, now, region_code=region)
        _, secret = create_official(session, "li.wei", "health-official", PASSWORD, now)
    confirm_identities(engine, tmp_path, [(n, name) for n, name, _ in PEOPLE[:3]])
    server = LiveServer(app).start()
    yield {"server": server, "secret": secret}
    server.stop()
    engine.dispose()


def test_the_dashboard_renders_its_plots(console: dict[str, Any]) -> None:
    sync_api = require_chromium()
    server: LiveServer = console["server"]
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport=DESKTOP, locale="zh-CN")
        page.goto(f"{server.url}/console")
        page.fill("#username", "li.wei")
        page.fill("#password", PASSWORD)
        page.fill("#totp", pyotp.TOTP(console["secret"]).now())
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.url}/console")
        plots = page.locator("figure.plot svg")
        count = plots.count()
        sizes = [plots.nth(i).bounding_box() for i in range(count)]
        bars = page.locator("figure.plot svg rect").count()
        screenshot(page, "console-dashboard-desktop")
        page.set_viewport_size(PHONE)
        screenshot(page, "console-dashboard-phone")
        browser.close()

    assert count == 3
    assert all(box is not None and box["width"] > 250 for box in sizes)
    assert bars >= 6
