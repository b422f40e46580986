"""The HTTP service: :func:`create_app` builds it from settings.

The app is thin: each endpoint parses its request, calls a domain service
and shapes the answer. Errors are answered in one place
(:mod:`healthcode.service.errors`). Endpoints are plain functions, which
FastAPI runs in its thread pool, because the domain services and the
database layer beneath them are synchronous.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from healthcode import __version__
from healthcode.accounts.senders import CodeSender
from healthcode.accounts.stores import RedisStore, Store
from healthcode.config import Settings, get_settings
from healthcode.service.errors import ErrorBody, install_error_handlers
from healthcode.service.runtime import Clock, build_runtime
from healthcode.service.shedding import (
    BodyLimit,
    InFlightLimit,
    body_limit_from_env,
    limits_from_env,
)

__all__ = ["ERROR_RESPONSES", "create_app", "make_app"]

log = structlog.get_logger(__name__)

#: Declared on every endpoint: any 4xx answer has the error body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": ErrorBody,
        "description": "Refused: the code says why, the message what to change.",
    }
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestLog:
    """One log line per request, a request id for the lines in between.

    The line names the route's template (``/v1/dependents/{dependent_id}``),
    never the path as sent, and never the client's address. Answers carry
    ``Cache-Control: no-store``, since most hold personal data that no proxy
    or browser cache should keep. Where cookies are marked Secure (the
    deployment sits behind TLS, usually a terminating proxy that forwards
    plain HTTP to us) answers also carry ``Strict-Transport-Security``, so a
    browser never falls back to plain HTTP for this host.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"cache-control", b"no-store"))
                headers.append((b"x-content-type-options", b"nosniff"))
                if self.hsts:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, sending)
            finally:
                route = scope.get("route")
                log.info(
                    "request",
                    method=scope.get("method"),
                    route=getattr(route, "path", "unmatched"),
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )


#: Routes that take a file: they stream it to disk under their own bound
#: (``HEALTHCODE_MAX_UPLOAD_BYTES``) and are exempt from the body bound.
UPLOADS = ("/v1/feeds/", "/v1/officials/risk-areas/file", "/console/feeds")


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    sender: CodeSender | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """Build the service from ``settings`` (default: the environment's).

    The configuration is checked here, before anything listens: a bad value
    raises :class:`~healthcode.errors.ConfigurationError` naming its
    variable. ``clock``, ``store``, ``sender`` and ``engine`` replace the
    parts the settings would make, for tests and embedding.
    """
    from healthcode.service.routes import ROUTERS
    from healthcode.web.routes import router as pages

    settings = settings or get_settings()
    runtime = build_runtime(
        settings, clock=clock, store=store, sender=sender, engine=engine
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from healthcode.privacy.jobs import (
            start_daily_job,
            start_rotation_job,
            stop_daily_job,
        )

        log.info("service_started", redis=bool(settings.redis_url))
        # Retention, the day's counts and the audit seal, once a day; beside
        # it, the rotation of the data keys when the current one is due.
        daily = start_daily_job(runtime)
        rotation = start_rotation_job(runtime)
        # Status writes committed by processes that do not raise the store's
        # copy of the fence reach hot reads through this watch.
        watch = asyncio.get_running_loop().create_task(
            runtime.fence_watch.run(), name="healthcode-fence-watch"
        )
        if isinstance(runtime.store, RedisStore):
            runtime.store.open_reads()
        # What start-up built (routes, schemas, rules) lives as long as the
        # worker; kept out of the collector's generations, it is not walked
        # again at every collection a busy worker's garbage sets off.
        gc.freeze()
        try:
            yield
        finally:
            if isinstance(runtime.store, RedisStore):
                await runtime.store.close_reads()
            await stop_daily_job(watch)
            await stop_daily_job(rotation)
            await stop_daily_job(daily)
            runtime.close()

    app = FastAPI(
        title="healthcode",
        version=__version__,
        summary="Health codes computed from department records, with their reasons.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        # The service configures no OpenTelemetry provider, and FastAPI's own
        # telemetry looked for one on every request; the request log line
        # (RequestLog) is what the service says about each answer.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(pages)
    # Inside the request log, so a refused body is logged like any answer.
    app.add_middleware(BodyLimit, limit=body_limit_from_env(), uploads=UPLOADS)
    app.add_middleware(RequestLog, hsts=runtime.settings.cookie_secure)
    # Added last, so outermost: a shed request costs no more than its answer.
    limit, retry_after = limits_from_env()
    # The same wait is asked of a caller while the database does not answer.
    app.state.retry_after = retry_after
    app.add_middleware(InFlightLimit, limit=limit, retry_after=retry_after)
    return app


def make_app() -> FastAPI:
    """The app for ``uvicorn --factory``: settings from the environment."""
    from healthcode.log import configure

    settings = get_settings()
    configure(settings.log_format)
    return create_app(settings)
