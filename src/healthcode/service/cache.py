"""Hot statuses: a resident's status kept in the store between reads.

A cached status is served only while three things hold:

* no status has been written since it was cached. Every writer of statuses
  (an import, a recolour, an override, a read that found a status stale)
  first raises ``recolor_guard.writes``; the cache keeps the value it saw
  and compares it with the current one: :meth:`StatusCache.status` with the
  database's, one primary-key read of a one-row table, and the hot paths
  (:mod:`healthcode.service.hot`) with the store's copy of it, which every
  writer raises before it commits (:mod:`healthcode.status.fence`). So a
  recolour anywhere, by this process, another worker or the command line,
  retires every cached status at once, and nothing older than the stored
  ``as_of`` is ever served;
* its ``recheck_at`` has not passed (time may have changed the colour);
* the day has not turned (cached statuses expire at the daily expiry,
  00:00 in the region's zone by default, like the codes).

The fence is global, so a busy import makes every read a miss until it
ends. A version number per status would keep unrelated residents' entries
alive; it wants a column on ``statuses``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.orm import Session

from healthcode.accounts.errors import StoreUnavailable
from healthcode.accounts.stores import Store, resident_key
from healthcode.codes.format import next_daily_expiry
from healthcode.status.fence import database_fence, raise_copy
from healthcode.status.models import Status
from healthcode.status.services import StatusView, current_status

__all__ = ["StatusCache"]


def _writes(session: Session) -> int:
    return database_fence(session.connection())


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class StatusCache:
    """Statuses by resident id, in a :class:`~healthcode.accounts.stores.Store`."""

    def __init__(
        self, store: Store, zone: ZoneInfo, daily_expiry: time = time(0, 0)
    ) -> None:
        self.store = store
        self.zone = zone
        self.daily_expiry = daily_expiry
        self.hits = 0
        self.misses = 0

    def status(self, session: Session, resident_id: int, now: datetime) -> StatusView:
        """The resident's status at ``now``, from the cache when it is current."""
        key = self.key(resident_id)
        fence = _writes(session)
        try:
            raw = self.store.get(key)
        except StoreUnavailable:
            # Without Redis the stored status is still authoritative: the
            # service answers from the database, only more slowly.
            self.misses += 1
            return current_status(session, resident_id, now)
        cached = self.current(resident_id, raw, fence, now)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        view = current_status(session, resident_id, now)
        # A read that recoloured wrote in this transaction, which may still
        # roll back; its result is not cached until a later read sees it
        # committed.
        if _writes(session) != fence:
            return view
        stored = session.get(Status, resident_id)
        recheck_at = stored.recheck_at if stored is not None else None
        entry = self.entry(view, fence, recheck_at, now)
        if entry is not None:
            with contextlib.suppress(StoreUnavailable):
                self.store.set(*entry)
        # The count was read in this snapshot, so it has committed: the
        # store's copy may be raised to it (a copy lost with a restarted
        # store comes back this way).
        raise_copy(self.store, fence)
        return view

    def entry(
        self,
        view: StatusView,
        fence: int,
        recheck_at: datetime | None,
        now: datetime,
    ) -> tuple[str, bytes, float] | None:
        """The store key, value and lifetime that keep ``view`` under ``fence``.

        None when the status would expire within a second anyway.
        """
        expires = next_daily_expiry(now, self.daily_expiry, self.zone)
        if recheck_at is not None:
            expires = min(expires, recheck_at)
        ttl = (expires - now).total_seconds()
        if ttl < 1:
            return None
        value = orjson.dumps(_entry(view, fence, expires, recheck_at))
        return self.key(view.resident_id), value, ttl

    def current(
        self, resident_id: int, raw: bytes | None, fence: int, now: datetime
    ) -> StatusView | None:
        """The status in a stored entry ``raw``, if it may still be served.

        ``fence`` is the status writes counter read from the database for
        this request; an entry cached under another value is stale.
        """
        if raw is None:
            return None
        entry = orjson.loads(raw)
        recheck = _instant(entry["recheckAt"])
        if (
            entry["fence"] == fence
            and datetime.fromisoformat(entry["expiresAt"]) > now
            and (recheck is None or recheck > now)
        ):
            return _view(resident_id, entry)
        return None

    def forget(self, resident_id: int) -> None:
        self.store.delete(self.key(resident_id))

    KIND = "status"

    @staticmethod
    def key(resident_id: int) -> str:
        """The store key of a resident's cached status."""
        return resident_key(StatusCache.KIND, resident_id)


def _entry(
    view: StatusView, fence: int, expires: datetime, recheck_at: datetime | None
) -> dict[str, Any]:
    return {
        "fence": fence,
        "expiresAt": expires.isoformat(),
        "recheckAt": recheck_at.isoformat() if recheck_at else None,
        "colour": view.colour,
        "reasons": view.reasons,
        "asOf": view.as_of.isoformat(),
        "changesAt": view.changes_at.isoformat() if view.changes_at else None,
        "changesTo": view.changes_to,
        "ruleSet": view.rule_set,
    }


def _view(resident_id: int, entry: dict[str, Any]) -> StatusView:
    return StatusView(
        resident_id=resident_id,
        colour=entry["colour"],
        reasons=entry["reasons"],
        as_of=datetime.fromisoformat(entry["asOf"]),
        changes_at=_instant(entry["changesAt"]),
        changes_to=entry["changesTo"],
        rule_set=entry["ruleSet"],
    )
