"""The body bound: a request body past it is answered 413 before it is held."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from healthcode.errors import ConfigurationError
from healthcode.service.shedding import BodyLimit, body_limit_from_env


def _echo_length(seen: list[int]):
    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen.append(size)
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def _post(app: Any, path: str, content: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post(path, content=content)

    return asyncio.run(run())


def _chunks(total: int, size: int = 4096):
    async def chunks():  # type: ignore[no-untyped-def]
        sent = 0
        while sent < total:
            yield b"x" * min(size, total - sent)
            sent += size

    return chunks()


def test_a_declared_length_past_the_bound_is_refused_unread() -> None:
    seen: list[int] = []
    limited = BodyLimit(_echo_length(seen), limit=2048)

    answer = _post(limited, "/v1/checkpoints/verify", b"x" * 2049)

    assert answer.status_code == 413
    assert answer.json()["code"] == "upload_too_large"
    assert "2048" in answer.json()["message"]
    assert seen == []


def test_a_body_in_chunks_is_refused_at_the_chunk_past_the_bound() -> None:
    seen: list[int] = []
    limited = BodyLimit(_echo_length(seen), limit=10_000)

    answer = _post(limited, "/v1/checkins", _chunks(100_000))

    assert answer.status_code == 413
    assert answer.json()["code"] == "upload_too_large"
    assert seen == []


def test_a_body_within_the_bound_reaches_the_route_whole() -> None:
    seen: list[int] = []
    limited = BodyLimit(_echo_length(seen), limit=10_000)

    declared = _post(limited, "/v1/checkins", b"x" * 10_000)
    chunked = _post(limited, "/v1/checkins", _chunks(9_000))

    assert (declared.status_code, declared.text) == (200, "10000")
    assert (chunked.status_code, chunked.text) == (200, "9000")


def test_uploads_keep_their_own_bound() -> None:
    seen: list[int] = []
    limited = BodyLimit(_echo_length(seen), limit=1024, uploads=("/v1/feeds/",))

    answer = _post(limited, "/v1/feeds/lab-results", b"x" * 50_000)

    assert (answer.status_code, answer.text) == (200, "50000")


def test_the_service_refuses_a_large_body_before_authentication(client: Any) -> None:
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"

    answer = client.post(
        "/v1/checkpoints/verify",
        content=big,
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 413
    assert answer.json()["code"] == "upload_too_large"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_a_bad_body_bound_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHCODE_MAX_BODY_BYTES", "tiny")
    with pytest.raises(ConfigurationError, match="HEALTHCODE_MAX_BODY_BYTES"):
        body_limit_from_env()
    monkeypatch.setenv("HEALTHCODE_MAX_BODY_BYTES", "4096")
    assert body_limit_from_env() == 4096
