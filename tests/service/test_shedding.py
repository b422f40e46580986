"""The in-flight bound: requests past it are answered 503 at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from healthcode.errors import ConfigurationError
from healthcode.service.shedding import InFlightLimit, limits_from_env


def _slow_app(release: asyncio.Event):
    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_requests_past_the_bound_are_shed_with_retry_after() -> None:
    async def run() -> list[httpx.Response]:
        release = asyncio.Event()
        limited = InFlightLimit(_slow_app(release), limit=2, retry_after=3)
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            calls = [asyncio.create_task(c.get("/v1/x")) for _ in range(5)]
            await asyncio.sleep(0.05)
            release.set()
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(run())

    statuses = sorted(a.status_code for a in answers)
    shed = [a for a in answers if a.status_code == 503]
    assert statuses == [200, 200, 503, 503, 503]
    assert {a.headers["retry-after"] for a in shed} == {"3"}
    assert shed[0].json()["code"] == "overloaded"


def test_the_health_endpoint_is_never_shed() -> None:
    async def run() -> list[int]:
        release = asyncio.Event()
        limited = InFlightLimit(_slow_app(release), limit=1)
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            calls = [asyncio.create_task(c.get("/v1/health")) for _ in range(3)]
            await asyncio.sleep(0.05)
            release.set()
            return [a.status_code for a in await asyncio.gather(*calls)]

    assert asyncio.run(run()) == [200, 200, 200]


def test_a_bad_bound_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHCODE_MAX_IN_FLIGHT", "many")

    with pytest.raises(ConfigurationError, match="HEALTHCODE_MAX_IN_FLIGHT"):
        limits_from_env()


def test_zero_turns_shedding_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHCODE_MAX_IN_FLIGHT", "0")
    monkeypatch.setenv("HEALTHCODE_RETRY_AFTER_SECONDS", "5")

    assert limits_from_env() == (0, 5)
