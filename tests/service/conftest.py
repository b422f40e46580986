"""Fixtures of the service tests: an app on each backend, its clock, its codes.

The ``client`` fixture follows the ``engine`` fixture: on SQLite the app
keeps its short-lived state in memory; on PostgreSQL it keeps it in Redis,
as production does, under a prefix of its own in database 11, removed
afterwards. Without Redis on 127.0.0.1:6379 the PostgreSQL half is skipped
with the reason printed, except under CI (``CI=true``), where it fails.

A module that also runs against a Redis Cluster marks itself with
``pytestmark = ON_REDIS_CLUSTER_TOO``: each of its tests then runs once more
on each backend with its short-lived state in the session's test cluster.
"""

from __future__ import annotations

import os
import secrets
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from starlette.exceptions import StarletteDeprecationWarning

from healthcode.accounts.senders import phone_digest
from healthcode.accounts.services import normalize_phone
from healthcode.accounts.stores import MemoryStore, RedisStore, Store
from healthcode.config import Settings
from healthcode.service.app import create_app

with warnings.catch_warnings():
    # Starlette's test client prefers httpx2 and warns when it finds only the
    # httpx the project pins; the client works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

REDIS_URL = "redis://127.0.0.1:6379/11"
REDIS_SKIP = "Redis does not answer on 127.0.0.1:6379, so the Redis tests do not run."
# Noon in Shanghai on a Tuesday.
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            return True
    except OSError:
        return False


def pytest_report_header(config: pytest.Config) -> str:
    if redis_reachable():
        return f"redis: service tests on PostgreSQL use {REDIS_URL}"
    return f"redis: {REDIS_SKIP}"


def require_redis() -> None:
    if redis_reachable():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{REDIS_SKIP} Under CI they are required.")
    pytest.skip(REDIS_SKIP)


@pytest.fixture
def redis_store() -> Iterator[RedisStore]:
    """A store in Redis under a fresh prefix, emptied afterwards."""
    require_redis()
    store = RedisStore.from_url(
        REDIS_URL, prefix=f"healthcode-test-{secrets.token_hex(6)}:"
    )
    try:
        yield store
    finally:
        store.clear()
        store.client.close()


@dataclass
class Clock:
    """The app's clock, moved by the test."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


@dataclass
class Outbox:
    """A sign-in code sender that keeps what it sent, by phone digest."""

    sent: dict[str, list[str]] = field(default_factory=dict)

    def send(self, phone: str, code: str, valid_until: datetime) -> None:
        self.sent.setdefault(phone_digest(phone), []).append(code)

    def last(self, phone: str) -> str:
        return self.sent[phone_digest(normalize_phone(phone))][-1]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


#: Marks a module whose tests run on a Redis Cluster too.
ON_REDIS_CLUSTER_TOO = pytest.mark.parametrize(
    "redis_kind", ["server", "cluster"], indirect=True
)


@pytest.fixture
def redis_kind(request: pytest.FixtureRequest) -> str:
    """``cluster`` where a module asks for the cluster, else ``server``."""
    return getattr(request, "param", "server")


def backend_store(
    engine: Engine, request: pytest.FixtureRequest, redis_kind: str = "server"
) -> Store:
    if redis_kind == "cluster":
        return request.getfixturevalue("redis_cluster_store")
    if engine.dialect.name == "postgresql":
        return request.getfixturevalue("redis_store")
    return MemoryStore()


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    return Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        key_dir=str(tmp_path / "keys"),
        region="610100",
        sign_in_sender="console",
    )


@pytest.fixture
def store(engine: Engine, request: pytest.FixtureRequest, redis_kind: str) -> Store:
    return backend_store(engine, request, redis_kind)


@pytest.fixture
def app(
    settings: Settings, engine: Engine, clock: Clock, outbox: Outbox, store: Store
) -> Any:
    return create_app(settings, clock=clock, store=store, sender=outbox, engine=engine)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client
