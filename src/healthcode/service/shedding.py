"""Shedding load early: a bound on the requests a worker holds at once.

A worker that takes every request it is sent queues them in its thread
pool and its database pool, and under a peak every answer grows slow until
clients time out and retry, which makes the peak worse. Past
``HEALTHCODE_MAX_IN_FLIGHT`` requests in flight a worker answers at once
``503`` with ``Retry-After``, before it reads the body, so that the
requests it admits keep their speed and a device knows to queue and try
again. A check-in upload that was shed was not stored; the device keeps it.

The health endpoint is never shed: a balancer must be able to tell a busy
worker from a dead one.

Beside it, a bound on what one request may send: a body past
``HEALTHCODE_MAX_BODY_BYTES`` is answered ``413`` without being held in
memory, before anyone has checked who sent it. File uploads, which stream
to disk under their own larger bound, are the exception.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from healthcode.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_RETRY_AFTER",
    "BodyLimit",
    "InFlightLimit",
    "body_limit_from_env",
    "limits_from_env",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Requests one worker holds at once; its thread pool runs 40.
DEFAULT_MAX_IN_FLIGHT = 32
#: Seconds a shed caller is told to wait.
DEFAULT_RETRY_AFTER = 1
_NEVER_SHED = frozenset({"/v1/health"})
#: Bytes of body a request other than a file upload may send. The largest
#: regular body, a device's batch of 500 check-ins, is about 150 KB.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _whole(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigurationError(
            f"{name} must be a whole number from {low} to {high}, not {text!r}."
        )
    return value


def body_limit_from_env() -> int:
    """``HEALTHCODE_MAX_BODY_BYTES``: the largest body of a non-upload request."""
    return _whole("HEALTHCODE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024, 1024**3)


def limits_from_env() -> tuple[int, int]:
    """``HEALTHCODE_MAX_IN_FLIGHT`` (0 turns shedding off) and the Retry-After."""
    return (
        _whole("HEALTHCODE_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT, 0, 100_000),
        _whole("HEALTHCODE_RETRY_AFTER_SECONDS", DEFAULT_RETRY_AFTER, 1, 3600),
    )


class InFlightLimit:
    """ASGI middleware: at most ``limit`` requests in flight, the rest shed."""

    def __init__(self, app: ASGIApp, limit: int, retry_after: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = retry_after
        self.in_flight = 0
        self.shed = 0
        self._body = orjson.dumps(
            {
                "code": "overloaded",
                "message": "The service is busy; keep the request and send it"
                f" again in {retry_after} seconds.",
                "problems": [],
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.limit == 0
            or scope.get("path") in _NEVER_SHED
        ):
            await self.app(scope, receive, send)
            return
        # The event loop runs one callback at a time, so the counter needs
        # no lock between the check and the increment.
        if self.in_flight >= self.limit:
            self.shed += 1
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"retry-after", str(self.retry_after).encode()),
                        (b"cache-control", b"no-store"),
                        (b"content-length", str(len(self._body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": self._body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _refusal(status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ],
    }


class _TooLarge(Exception):
    """Raised from ``receive`` once a body passes its bound."""


class BodyLimit:
    """ASGI middleware: a body larger than ``limit`` bytes is answered 413.

    A declared ``Content-Length`` past the bound is refused before a byte is
    read; a body sent in chunks is counted as it arrives and refused at the
    chunk that passes the bound, whatever the route had begun doing with it.
    Paths in ``uploads`` (templates such as ``/v1/feeds/{kind}`` are given as
    their fixed prefix) stream to disk and keep their own bound.
    """

    def __init__(self, app: ASGIApp, limit: int, uploads: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.uploads = uploads
        self._body = orjson.dumps(
            {
                "code": "upload_too_large",
                "message": f"A request body is at most {limit} bytes here;"
                " this one is larger.",
                "problems": [],
            }
        )

    async def _refuse(self, send: Send) -> None:
        await send(_refusal(413, self._body, [(b"connection", b"close")]))
        await send({"type": "http.response.body", "body": self._body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(self.uploads):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await self._refuse(send)
                    return
                break
        received = 0
        refused = False
        started = False

        async def counting() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            # Once the bound is passed, whatever the route answers is
            # replaced by the refusal.
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except _TooLarge:
            pass
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await self._refuse(send)
