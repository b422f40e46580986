"""Fixtures of the page tests: an app on each backend, its clock, its outbox.

Pages are driven through Starlette's test client here; the browser tests in
``test_browser.py`` start a real server and a real Chromium.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from starlette.exceptions import StarletteDeprecationWarning
from tests.service import conftest as service

from healthcode.accounts.stores import MemoryStore
from healthcode.config import Settings
from healthcode.service.app import create_app

# The pages run on the service's app, clock and sign-in sender, so they share
# the service suite's clock and outbox and their fixtures.
Clock = service.Clock
Outbox = service.Outbox
clock = service.clock
outbox = service.outbox


with warnings.catch_warnings():
    # Starlette's test client prefers httpx2 and warns when it finds only the
    # httpx the project pins; the client works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

# Noon in Shanghai on a Tuesday.
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
ADULT = "610113199001011230"
CHILD = "610113201505050014"
_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    return Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        key_dir=str(tmp_path / "keys"),
        region="610100",
        sign_in_sender="console",
        cookie_secure=False,
    )


@pytest.fixture
def app(settings: Settings, engine: Engine, clock: Clock, outbox: Outbox) -> Any:
    return create_app(
        settings, clock=clock, store=MemoryStore(), sender=outbox, engine=engine
    )


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    """The token a page carries for its forms."""
    found = _CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def sign_in(client: TestClient, outbox: Outbox, phone: str) -> str:
    """Sign ``phone`` in through the pages; return the page's CSRF token."""
    token = csrf_of(client.get("/app/sign-in").text)
    sent = client.post("/app/sign-in/code", data={"phone": phone, "csrf_token": token})
    assert sent.status_code == 200, sent.text
    signed = client.post(
        "/app/sign-in",
        data={"phone": phone, "code": outbox.last(phone), "csrf_token": token},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    return token


def register(
    client: TestClient, token: str, number: str = ADULT, name: str = "张三丰"
) -> None:
    answer = client.post(
        "/app/register",
        data={"kind": "cn-id", "number": number, "name": name, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/app"
