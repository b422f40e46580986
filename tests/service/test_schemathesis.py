"""Generated requests against our own OpenAPI schema find no server error.

The test starts the service under uvicorn on a free loopback port, reads the
schema it serves, and sends every operation requests that schemathesis
generates from it, valid ones and invalid ones, with the credentials each
kind of caller has. Every answer must be below 500, have a status the
schema declares, and a body that fits the schema. The run is bounded: a
fixed number of examples per operation, at least :data:`MIN_REQUESTS` in
all, and a time budget well under three minutes.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from healthcode.accounts.services import create_api_key, create_official
from healthcode.accounts.stores import MemoryStore
from healthcode.config import Settings
from healthcode.db import open_database
from healthcode.service.app import create_app

from .support import ADULT, PASSWORD, import_identities

MIN_REQUESTS = 1000
# Examples per operation and generation mode. Each operation is tried with
# valid and with invalid data, so every operation sees twice this many.
EXAMPLES = 20
BUDGET_SECONDS = 150
DEBUG = bool(os.environ.get("HEALTHCODE_SCHEMATHESIS_DEBUG"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


# Feed uploads are text; send what was generated as text/plain would be.
schemathesis.serializer.alias(["text/csv", "application/x-ndjson"], "text/plain")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Credentials:
    """Headers for each kind of caller, chosen by the path called."""

    by_prefix: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def for_path(self, path: str) -> dict[str, str]:
        for prefix, headers in self.by_prefix:
            if path.startswith(prefix):
                return headers
        return {}


@dataclass
class Server:
    base_url: str
    credentials: Credentials


class Outbox:
    def __init__(self) -> None:
        self.codes: list[str] = []

    def send(self, phone: str, code: str, valid_until: datetime) -> None:
        self.codes.append(code)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{folder}/healthcode.db"
    engine = open_database(url)
    now = datetime.now(UTC)
    import_identities(engine, folder, now, [(ADULT, "张伟")])
    with Session(engine) as session, session.begin():
        official, secret = create_official(
            session, "wang.li", "health-official", PASSWORD, now
        )
        admin, admin_secret = create_official(
            session, "root.admin", "administrator", PASSWORD, now
        )
        _, department = create_api_key(
            session,
            "department",
            "health",
            now,
            feed_kinds=["lab-results", "declarations", "risk-areas"],
        )
        _, checkpoint = create_api_key(session, "checkpoint", "venue:1:gate", now)
        _, venue = create_api_key(session, "venue", "1", now)
    outbox = Outbox()
    app = create_app(
        Settings(database_url=url, key_dir=str(folder / "keys"), region="610100"),
        store=MemoryStore(),
        sender=outbox,
        engine=engine,
    )
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline:
            pytest.fail("The service did not start on the loopback within 20 s.")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    import httpx

    with httpx.Client(base_url=base) as http:
        http.post("/v1/sign-in/code", json={"phone": "13800138000"})
        token = http.post(
            "/v1/sign-in", json={"phone": "13800138000", "code": outbox.codes[-1]}
        ).json()["token"]
        resident = {"Authorization": f"Bearer {token}"}
        http.post(
            "/v1/residents/me",
            json={"document": {"number": ADULT}, "name": "张伟"},
            headers=resident,
        )

        def official_token(username: str, totp_secret: str) -> dict[str, str]:
            answer = http.post(
                "/v1/officials/sign-in",
                json={
                    "username": username,
                    "password": PASSWORD,
                    "totp": pyotp.TOTP(totp_secret).now(),
                },
            )
            return {"Authorization": f"Bearer {answer.json()['token']}"}

        health = official_token("wang.li", secret)
        administrator = official_token("root.admin", admin_secret)
    credentials = Credentials(
        [
            ("/v1/officials/api-keys", administrator),
            ("/v1/officials/staff", administrator),
            ("/v1/officials/audit", administrator),
            ("/v1/officials/venues", administrator),
            ("/v1/officials/sign-in", {}),
            ("/v1/officials", health),
            ("/v1/feeds", {"X-API-Key": department}),
            ("/v1/checkpoints", {"X-API-Key": checkpoint}),
            ("/v1/venues", {"X-API-Key": venue}),
            ("/v1/sign-out", {}),
            ("/v1/", resident),
        ]
    )
    try:
        yield Server(base, credentials)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def exercise(server: Server, operation: Any, mode: Any, tally: Tally) -> None:
    """Send one operation's generated requests and check every answer."""
    headers = server.credentials.for_path(operation.path)
    where = f"{operation.method.upper()} {operation.path} ({mode.value})"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(
            base_url=server.base_url, headers=dict(headers), timeout=20
        )
        tally.sent += 1
        tally.statuses[(operation.path, response.status_code // 100)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
            # Every finding is kept, so that one run lists them all.
            tally.failures.append(
                f"{where}: {response.status_code} {type(exc).__name__}:"
                f" {str(exc)[:300]}"
            )

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters has no invalid form.
        return


@pytest.mark.slow
def test_generated_requests_find_no_server_error_and_fit_the_schema(
    server: Server,
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    tally = Tally()
    started = time.monotonic()

    for operation in operations:
        for mode in modes:
            exercise(server, operation, mode, tally)
        if time.monotonic() - started > BUDGET_SECONDS:
            pytest.fail(f"The run passed its budget after {tally.sent} requests.")

    elapsed = time.monotonic() - started
    succeeded = sum(n for (_, kind), n in tally.statuses.items() if kind == 2)
    reached = {path for (path, kind) in tally.statuses if kind == 2}
    print(
        f"schemathesis: {tally.sent} requests to {len(operations)} operations in"
        f" {elapsed:.0f} s; {succeeded} succeeded, at {len(reached)} paths"
    )
    if DEBUG:
        for key, count in sorted(tally.statuses.items()):
            print(key, count)
    assert not tally.failures, "\n".join(tally.failures[:20])
    assert tally.sent >= MIN_REQUESTS
    assert len(operations) >= 40
    assert [key for key in tally.statuses if key[1] == 5] == []
