"""Endpoints about the service itself."""

from __future__ import annotations

import time

import sqlalchemy as sa
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from healthcode import __version__
from healthcode.accounts.errors import StoreUnavailable
from healthcode.service.deps import Rt
from healthcode.service.runtime import Runtime
from healthcode.service.schemas import Health

router = APIRouter(tags=["service"])


@router.get("/v1/health", response_model=Health, response_model_exclude_none=True)
async def health(rt: Rt) -> Health:
    """Say that the service is up, which version it runs, and what it misses.

    Without the database the service is degraded rather than down: codes
    already on phones still verify offline at the doors, and devices keep
    their check-ins until it returns. Without the shared store it is
    degraded too: statuses come from the database, and phones whose
    sessions the store held sign in again.
    """
    database, store = await _parts_answer(rt)
    if database and store:
        return Health(status="ok", version=__version__)
    return Health(
        status="degraded",
        version=__version__,
        database=None if database else "unreachable",
        store=None if store else "unreachable",
    )


# The database and the store are asked at most once a second per engine, so
# that a balancer polling every worker, or a load test, does not turn the
# cheapest endpoint into a stream of queries.
_PROBE_SECONDS = 1.0
_probes: dict[int, tuple[float, tuple[bool, bool]]] = {}


async def _parts_answer(rt: Runtime) -> tuple[bool, bool]:
    # Answered on the event loop; only the probe itself, once a second, goes
    # to the thread pool, so that a balancer's polls cost no thread hop.
    now = time.monotonic()
    last = _probes.get(id(rt.engine))
    if last is not None and now - last[0] < _PROBE_SECONDS:
        return last[1]
    answers = await run_in_threadpool(_probe, rt)
    _probes[id(rt.engine)] = (now, answers)
    return answers


def _probe(rt: Runtime) -> tuple[bool, bool]:
    try:
        with rt.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        database = False
    else:
        database = True
    try:
        rt.store.ping()
    except StoreUnavailable:
        return database, False
    return database, True
