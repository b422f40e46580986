"""The checkpoint scanner in Chromium, reading a code from a fake camera.

The camera is Chromium's fake capture device playing a clip made from our
own rendered code. The page verifies the code with the trust material it
fetched earlier while the server is stopped, queues the check-in, and
uploads it once the server is back on the same port.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from tests.web.conftest import Outbox
from tests.web.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    LiveServer,
    camera_frame,
    confirm_identities,
    require_chromium,
    require_vendor_files,
    screenshot,
    write_y4m,
)

from healthcode.accounts.services import create_api_key
from healthcode.accounts.stores import MemoryStore
from healthcode.checkins.models import Checkin
from healthcode.checkins.services import register_venue
from healthcode.codes import qr
from healthcode.config import Settings
from healthcode.db import open_database
from healthcode.identity.documents import parse_document
from healthcode.identity.services import register_resident
from healthcode.service.app import create_app

ADULT = "610113199001011230"


@pytest.fixture(params=["screen", "paper"])
def door(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[dict[str, Any]]:
    """A server, a venue and its door key, and the code shown at the door.

    The screen code is a confirmed resident's, green; the paper code is the
    one of a resident whose identity is not confirmed yet, whose colour
    (grey) only the status list tells.
    """
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
        document = parse_document("cn-id", ADULT, today=now.date())
        resident = register_resident(session, document, "张三丰", now)
        venue = register_venue(
            session,
            name="雁塔超市",
            address="雁塔路1号",
            region_code="610113",
            venue_type="shop",
            now=now,
        )
        _, key = create_api_key(session, "checkpoint", f"venue:{venue.id}", now)
        resident_id = resident.id
        venue_id = venue.id
    codes = app.state.runtime.codes
    if request.param == "screen":
        confirm_identities(engine, tmp_path, [(ADULT, "张三丰")])
    with Session(engine) as session, session.begin():
        if request.param == "screen":
            issued = codes.screen_code(session, resident_id, now)
        else:
            issued = codes.paper_code(session, resident_id, now)
    png = tmp_path / "code.png"
    qr.write_png(issued.text, png, issued.colour)
    clip = write_y4m(camera_frame(png), tmp_path / "camera.y4m")
    server = LiveServer(app).start()
    yield {
        "server": server,
        "engine": engine,
        "key": key,
        "clip": clip,
        "issued": issued,
        "venue": venue_id,
        "kind": request.param,
    }
    server.stop()
    engine.dispose()


def test_the_scanner_reads_a_code_offline_and_uploads_the_check_in_later(
    door: dict[str, Any],
) -> None:
    sync_api = require_chromium()
    require_vendor_files()
    server: LiveServer = door["server"]
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={door['clip']}",
            ],
        )
        context = browser.new_context(
            viewport=PHONE, locale="en-GB", permissions=["camera"]
        )
        page = context.new_page()
        page.goto(f"{server.url}/checkpoint")
        page.click("#settings summary")
        page.fill("#api-key", door["key"])
        page.click("#device button")
        page.wait_for_function(
            "() => document.getElementById('material-state').textContent"
            ".startsWith('Trust list of')"
        )
        screenshot(page, "scanner-ready-phone")

        server.stop()
        page.click("#start")
        page.wait_for_selector("#verdict:not([hidden])", timeout=20_000)
        screenshot(page, f"scanner-verdict-{door['kind']}-phone")
        word = page.inner_text("#verdict-word")
        name = page.inner_text("#verdict-name")
        colour = page.get_attribute("#verdict", "data-colour")
        reason = page.inner_text("#verdict-reason")
        detail = page.inner_text("#verdict-detail")
        page.wait_for_function(
            "() => document.getElementById('net').dataset.state === 'offline'",
            timeout=15_000,
        )
        waiting = page.inner_text("#queue-count")

        server.start()
        page.wait_for_function(
            "() => document.getElementById('queue-count').textContent === '0'",
            timeout=20_000,
        )
        page.set_viewport_size(DESKTOP)
        if page.is_visible("#verdict"):
            page.click("#verdict-close")
        screenshot(page, f"scanner-{door['kind']}-desktop")
        browser.close()

    with Session(door["engine"]) as session:
        rows = session.scalars(sa.select(Checkin)).all()
    if door["kind"] == "screen":
        assert (word, name, colour, reason) == ("Green code", "张**", "green", "")
        assert detail == "Screen code · Issued by 陕西省西安市 610100"
    else:
        assert (word, name, colour) == ("Grey code", "张**", "grey")
        assert reason == "The colour does not allow entry without further checks."
        assert detail.startswith("Paper code, colour from the status list of ")
    assert waiting == "1"
    assert len(rows) == 1
    assert rows[0].venue_id == door["venue"]
    assert rows[0].source == "checkpoint-scan"
