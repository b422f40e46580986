"""Faults: Redis stopped mid-run, PostgreSQL unreachable, PostgreSQL stopped.

Each test starts its own redis-server on a free loopback port and, for
PostgreSQL, points the service at a proxy of its own that it cuts, or at a
PostgreSQL server of its own that it stops and starts again; the machine's
shared servers are never stopped.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

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
from healthcode.checkins.device import DeviceQueue
from healthcode.codes.keys import KeyStore
from healthcode.codes.services import local_verifier

from .servers import (
    TcpProxy,
    key_folder,
    postgres_instance,
    postgres_or_skip,
    redis_server,
)


@contextmanager
def _service(
    redis_url: str,
    database_port: int | None = None,
    *,
    admin_url: str | None = None,
    codes: int = 20,
) -> Iterator[tuple[str, Fixture, Path, str]]:
    now = datetime.now(UTC).replace(microsecond=0)
    url = create_database(admin_url) if admin_url else create_database()
    keys = key_folder()
    prefix = f"f-{uuid.uuid4().hex[:6]}:"
    server = None
    try:
        load_population(url, 200, 20, now)
        fixture = make_fixture(url, redis_url, prefix, keys, now, 20, codes)
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
                "HEALTHCODE_RETRY_AFTER_SECONDS": "1",
            },
        )
        yield f"http://127.0.0.1:{port}", fixture, keys, url.replace("+psycopg", "")
        assert server.poll() is None
    finally:
        if server is not None:
            stop_server(server)
        if admin_url is None:
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
        _service(redis_url) as (base, fixture, _, _),
    ):
        before = _verify_all(base, fixture)

        redis_process.terminate()
        redis_process.wait(timeout=10)
        after = _verify_all(base, fixture)
        time.sleep(1.2)
        health = httpx.get(f"{base}/v1/health", timeout=10)

    assert before == [200] * 20
    assert after == [200] * 20
    # Degraded, not down: the host stays in service for what it still does.
    assert health.status_code == 200
    assert health.json() == {
        "status": "degraded",
        "version": health.json()["version"],
        "store": "unreachable",
    }


def test_with_redis_hung_mid_run_the_service_answers_without_waiting_on_it() -> None:
    postgres_or_skip()
    with (
        redis_server() as (redis_url, redis_process),
        _service(redis_url) as (base, fixture, _, _),
    ):
        before = _verify_all(base, fixture)

        # A hung server keeps its connections open and answers nothing.
        redis_process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            after = _verify_all(base, fixture)
            took = time.monotonic() - started
        finally:
            redis_process.send_signal(signal.SIGCONT)

    assert before == [200] * 20
    assert after == [200] * 20
    # Each worker waits out Redis's 2 s timeout once or twice, then leaves it
    # alone; waiting it out on every verify took some 80 s for the twenty.
    assert took < 25


def test_without_postgresql_health_is_degraded_and_codes_verify_offline() -> None:
    postgres_or_skip()
    proxy = TcpProxy(5432)
    with (
        redis_server() as (redis_url, _),
        _service(redis_url, proxy.port) as (base, fixture, keys, _),
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


def _health_until(base: str, wanted: str, seconds: float = 20) -> list[str]:
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(httpx.get(f"{base}/v1/health", timeout=10).json()["status"])
        if seen[-1] == wanted:
            break
        time.sleep(0.3)
    return seen


def test_with_postgresql_stopped_scans_queue_and_arrive_exactly_once(
    tmp_path: Path,
) -> None:
    with (
        postgres_instance() as database,
        redis_server() as (redis_url, _),
        _service(redis_url, admin_url=database.admin_url, codes=40) as (
            base,
            fixture,
            keys,
            url,
        ),
    ):
        port = int(base.rsplit(":", 1)[1])
        lossy = TcpProxy(port, answers=False)
        queue_file = tmp_path / "door-queue.json"
        device = DeviceQueue(queue_file, base, fixture.door_key)
        # The same device's queue, sent over a link that drops every answer.
        unlucky = DeviceQueue(
            queue_file, f"http://127.0.0.1:{lossy.port}", fixture.door_key
        )
        scanned_at = fixture.issued_at
        first = [device.scan(code, scanned_at) for code in fixture.codes[:10]]
        live = device.upload()
        lost = [device.scan(code, scanned_at) for code in fixture.codes[10:20]]
        unanswered = unlucky.upload()

        database.stop()
        down = _health_until(base, "degraded")
        verifier = local_verifier(KeyStore(keys))
        at_the_door = {
            verifier.verify(code, datetime.now(UTC)).content.colour.value
            for code in fixture.codes
        }
        queued = [device.scan(code, scanned_at) for code in fixture.codes[20:]]
        refused = device.upload()
        waiting = len(device.pending())

        database.start()
        drained = device.drain(60)
        up = _health_until(base, "ok")
        with psycopg.connect(url) as connection:
            stored = dict(
                connection.execute(
                    "SELECT idempotency_key, count(*) FROM checkins"
                    " GROUP BY idempotency_key"
                ).fetchall()
            )
        lossy.cut()
        device.close()
        unlucky.close()

    delivered = [a for a in drained if a.delivered]
    assert (live.status, live.answer["accepted"]) == (200, 10)
    assert unanswered.status is None
    assert down[-1] == "degraded"
    assert at_the_door == {"green"}
    assert refused.status == 503
    assert refused.retry_after == 1
    assert refused.answer["code"] == "database_unavailable"
    assert waiting == 30
    assert {a.status for a in drained} <= {200, 503}
    assert sum(a.answer["accepted"] for a in delivered) == 20
    assert sum(a.answer["duplicates"] for a in delivered) == 10
    assert device.pending() == []
    assert up[-1] == "ok"
    assert stored == {key: 1 for key in first + lost + queued}
