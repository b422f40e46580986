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
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from healthcode.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_RETRY_AFTER",
    "InFlightLimit",
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
