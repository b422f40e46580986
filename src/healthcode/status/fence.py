"""The status fence: the count of status writes, held where hot reads see it.

Every writer of statuses raises ``recolor_guard.writes`` in its transaction
(:func:`healthcode.status.services.recolor_residents` and the full
recolour's batches). A cached status carries the count its reader saw in
the same snapshot as the status itself, and may be served only while the
count is unchanged. Reading the count from the database costs each hot read
a round trip; this module keeps a copy in the store, under
:data:`FENCE_KEY`, so that a refresh reads it with the status in one store
command.

The copy is raised *before* the writer commits, from SQLAlchemy's commit
event, which fires for every engine that :func:`publish_to` names. Between
that raise and the commit, every cached status is retired while the
database still shows the old count, so a reader that misses caches its
(old) status under the old count, which is already retired; after the
commit a reader sees the new count and the new statuses together. A writer
that rolls back after the raise only leaves the copy ahead of the database,
which retires entries until the next writer commits that count; nothing
stale is served either way. The copy only goes up
(:meth:`~healthcode.accounts.stores.Store.raise_to`), whatever order
writers raise it in.

A writer in a process that did not name its store (a command run without
``HEALTHCODE_REDIS_URL``, a store that was briefly down) commits without
raising the copy. :class:`FenceWatch` closes that gap: each service worker
reads the database's count every second and raises the copy to it, so such
a write reaches hot reads within a second, and a copy left ahead by a
rollback is caught up by a write of the guard row.
"""

from __future__ import annotations

import asyncio
import contextlib

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from healthcode.accounts.errors import StoreUnavailable
from healthcode.accounts.stores import (
    Store,
    attach_store,
    attached_stores,
    detach_store,
)
from healthcode.status.models import RecolorGuard

__all__ = [
    "FENCE_KEY",
    "FenceWatch",
    "database_fence",
    "forget",
    "note_status_write",
    "publish_to",
    "raise_copy",
    "stored_fence",
]

log = structlog.get_logger(__name__)

#: The store key of the copy of ``recolor_guard.writes``.
FENCE_KEY = "status-fence"
# The copy is renewed by every write and every watch; a week without either
# is a service nobody runs.
FENCE_TTL_SECONDS = 7 * 24 * 3600
_PENDING = "healthcode.status_fence"


def publish_to(engine: Engine, store: Store) -> None:
    """Raise ``store``'s copy of the fence whenever a status write commits.

    Writes made through any engine on the same database URL count, so a
    command run in the service's process reaches the service's store.
    """
    attach_store(engine, store)


def forget(engine: Engine, store: Store) -> None:
    """Stop raising ``store``'s copy for ``engine``'s database."""
    detach_store(engine, store)


def note_status_write(connection: Connection, writes: int) -> None:
    """Record that this transaction raised the fence to ``writes``."""
    info = connection.info
    info[_PENDING] = max(int(info.get(_PENDING, 0)), writes)


def stored_fence(raw: bytes | None) -> int | None:
    """The fence in a store value, or None when the store holds none."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def database_fence(connection: Connection) -> int:
    """The fence as the database has it; 0 before the first status write."""
    value = connection.execute(
        sa.select(RecolorGuard.writes).where(RecolorGuard.id == 1)
    ).scalar()
    return int(value or 0)


def raise_copy(store: Store, writes: int) -> None:
    """Raise ``store``'s copy to ``writes``; a store that is down is skipped."""
    with contextlib.suppress(StoreUnavailable):
        store.raise_to(FENCE_KEY, writes, FENCE_TTL_SECONDS)


@event.listens_for(Engine, "commit")
def _before_commit(connection: Connection) -> None:
    if connection.invalidated:
        # Touching an invalidated connection's info would reconnect it; a
        # connection that was lost commits nothing.
        return
    writes = connection.info.pop(_PENDING, None)
    if writes is None:
        return
    for store in attached_stores(connection.engine):
        raise_copy(store, writes)


@event.listens_for(Engine, "rollback")
def _on_rollback(connection: Connection) -> None:
    if not connection.invalidated:
        connection.info.pop(_PENDING, None)


class FenceWatch:
    """Keeps a store's copy of the fence level with the database's count.

    :meth:`check` is one look, run in a thread; :meth:`run` looks every
    ``every`` seconds until cancelled.
    """

    #: Looks in a row that must find the copy ahead before the guard row is
    #: written to catch it up: a writer may be between its raise and its
    #: commit for a while.
    AHEAD_LOOKS = 3

    def __init__(self, engine: Engine, store: Store, every: float = 1.0) -> None:
        self.engine = engine
        self.store = store
        self.every = every
        self._ahead = 0

    def check(self) -> None:
        with self.engine.connect() as connection:
            writes = database_fence(connection)
            connection.rollback()
        try:
            held = self.store.raise_to(FENCE_KEY, writes, FENCE_TTL_SECONDS)
        except StoreUnavailable:
            return
        self._ahead = self._ahead + 1 if held > writes else 0
        if self._ahead >= self.AHEAD_LOOKS:
            self._catch_up(held)
            self._ahead = 0

    def _catch_up(self, held: int) -> None:
        # A write of the guard row is a status write with no statuses: it
        # queues behind any writer in flight and commits a count the copy
        # already holds, so entries cached after it are served again.
        with self.engine.begin() as connection:
            writes = connection.execute(
                sa.update(RecolorGuard)
                .where(RecolorGuard.id == 1)
                .values(
                    writes=sa.case(
                        (RecolorGuard.writes + 1 > held, RecolorGuard.writes + 1),
                        else_=held,
                    )
                )
                .returning(RecolorGuard.writes)
            ).scalar_one_or_none()
            if writes is not None:
                note_status_write(connection, int(writes))
        log.info("status_fence_caught_up", writes=writes)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.check)
            except Exception as exc:
                # A database that does not answer is reported by health; this
                # or any other failure of one look must not end the watch,
                # which tries again at its next look.
                log.warning("status_fence_unread", error=type(exc).__name__)
            await asyncio.sleep(self.every)
