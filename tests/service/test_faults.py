"""Faults: Redis stopped mid-run, PostgreSQL unreachable.

Each test starts its own redis-server on a free loopback port and, for
PostgreSQL, points the service at a proxy of its own that it cuts; the
machine's shared servers are never stopped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

from healthcode.bench.load import (
    REGION,
    Fixture,
    create_database,
    drop_database,
    free_port,
    load_population,
    make_fixture,
    start_server,
    stop_server,
)
from healthcode.codes.keys import KeyStore
from healthcode.codes.services import local_verifier

from .servers import TcpProxy, key_folder, postgres_or_skip, redis_server


@contextmanager
def _service(
    redis_url: str, database_port: int | None = None
) -> Iterator[tuple[str, Fixture, Path]]:
    now = datetime.now(UTC).replace(microsecond=0)
    url = create_database()
    keys = key_folder()
    prefix = f"f-{uuid.uuid4().hex[:6]}:"
    server = None
    try:
        load_population(url, 200, 20, now)
        fixture = make_fixture(url, redis_url, prefix, keys, now, 20, 20)
        served = url
        if database_port is not None:
            served = url.replace("127.0.0.1:5432", f"127.0.0.1:{database_port}")
        port = free_port()
        server = start_server(
            port,
            {
                "HEALTHCODE_DATABASE_URL": served,
                "HEALTHCODE_REDIS_URL": redis_url,
                "HEALTHCODE_REDIS_PREFIX": prefix,
                "HEALTHCODE_KEY_DIR": str(keys),
                "HEALTHCODE_REGION": REGION,
                "HEALTHCODE_LOG_FORMAT": "json",
            },
        )
        yield f"http://127.0.0.1:{port}", fixture, keys
        assert server.poll() is None
    finally:
        if server is not None:
            stop_server(server)
        drop_database(url)


def _verify_all(base: str, fixture: Fixture) -> list[int]:
    with httpx.Client(base_url=base, timeout=10) as client:
        return [
            client.post(
                "/v1/checkpoints/verify",
                json={"code": code},
                headers={"X-API-Key": fixture.checkpoint_key},
            ).status_code
            for code in fixture.codes
        ]


def test_with_redis_stopped_mid_run_the_service_answers_from_postgresql() -> None:
    postgres_or_skip()
    with (
        redis_server() as (redis_url, redis_process),
        _service(redis_url) as (base, fixture, _),
    ):
        before = _verify_all(base, fixture)

        redis_process.terminate()
        redis_process.wait(timeout=10)
        after = _verify_all(base, fixture)
        health = httpx.get(f"{base}/v1/health", timeout=10)

    assert before == [200] * 20
    assert after == [200] * 20
    assert health.json()["status"] == "ok"


def test_without_postgresql_health_is_degraded_and_codes_verify_offline() -> None:
    postgres_or_skip()
    proxy = TcpProxy(5432)
    with (
        redis_server() as (redis_url, _),
        _service(redis_url, proxy.port) as (base, fixture, keys),
    ):
        up = httpx.get(f"{base}/v1/health", timeout=10).json()

        proxy.cut()
        time.sleep(1.2)
        down = [httpx.get(f"{base}/v1/health", timeout=10).json() for _ in range(2)]
        verifier = local_verifier(KeyStore(keys))
        offline = [
            verifier.verify(code, datetime.now(UTC)).content.colour
            for code in fixture.codes
        ]

    assert up["status"] == "ok"
    assert [d["status"] for d in down] == ["degraded", "degraded"]
    assert down[0]["database"] == "unreachable"
    assert {c.value for c in offline if c is not None} == {"green"}
    assert len(offline) == 20
