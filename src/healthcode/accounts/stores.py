"""Short-lived state: sign-in codes, sessions, rate-limit counters, hot statuses.

Everything here expires, and nothing here is the record of anything: losing
it signs people out or forgets a counter, nothing worse. Two stores offer
the same few operations:

* :class:`MemoryStore`, in the process, for one worker and for development;
* :class:`RedisStore`, in Redis, shared by every worker and every machine,
  used whenever ``HEALTHCODE_REDIS_URL`` is set.

Values are bytes. Time-based outcomes (is a code expired, is a session over)
are decided by the callers from instants they store inside the values and
the clock they are given; the expiry a store applies is only how long it
keeps a value before forgetting it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from healthcode.accounts.errors import StoreUnavailable

__all__ = ["MemoryStore", "RedisStore", "Store"]


class Store(Protocol):
    """The operations every store offers; keys are text, values bytes."""

    def get(self, key: str) -> bytes | None:
        """Return the value under ``key``, or None when there is none."""
        ...

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl_seconds``."""
        ...

    def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        """Keep ``value`` only if ``key`` holds nothing; say whether it did."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        ...

    def incr(self, key: str, ttl_seconds: float) -> int:
        """Add one to the counter under ``key`` and return it.

        A counter that did not exist starts at one and is kept for
        ``ttl_seconds``; later increments do not extend its life.
        """
        ...


def _whole_seconds(ttl_seconds: float) -> int:
    return max(1, math.ceil(ttl_seconds))


class MemoryStore:
    """A store in this process's memory, safe to share between threads.

    ``monotonic`` is the clock that ages entries; tests may pass their own.
    Expired entries are dropped when touched and in a sweep every
    :data:`SWEEP_EVERY` writes, so memory does not grow with keys nobody
    reads again.
    """

    SWEEP_EVERY = 1000

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._values: dict[str, tuple[bytes | int, float]] = {}
        self._writes = 0

    def _live(self, key: str, now: float) -> tuple[bytes | int, float] | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._values[key]
            return None
        return entry

    def _wrote(self, now: float) -> None:
        self._writes += 1
        if self._writes % self.SWEEP_EVERY == 0:
            for key in [k for k, (_, ends) in self._values.items() if ends <= now]:
                del self._values[key]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key, self._monotonic())
        if entry is None:
            return None
        value = entry[0]
        return str(value).encode() if isinstance(value, int) else value

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        with self._lock:
            now = self._monotonic()
            self._values[key] = (bytes(value), now + ttl_seconds)
            self._wrote(now)

    def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        with self._lock:
            now = self._monotonic()
            if self._live(key, now) is not None:
                return False
            self._values[key] = (bytes(value), now + ttl_seconds)
            self._wrote(now)
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    def incr(self, key: str, ttl_seconds: float) -> int:
        with self._lock:
            now = self._monotonic()
            entry = self._live(key, now)
            if entry is None:
                self._values[key] = (1, now + ttl_seconds)
                self._wrote(now)
                return 1
            value, ends = entry
            count = (int(value) if not isinstance(value, int) else value) + 1
            self._values[key] = (count, ends)
            return count

    def clear(self) -> None:
        """Forget everything (for tests)."""
        with self._lock:
            self._values.clear()


class RedisStore:
    """A store in Redis, every key under one prefix.

    Redis errors become :class:`StoreUnavailable`, so that a lost Redis is
    answered as the service being unavailable rather than as a crash.
    """

    def __init__(self, client: redis.Redis, prefix: str = "healthcode:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "healthcode:") -> RedisStore:
        """Connect to ``url`` and check that Redis answers, naming the setting."""
        try:
            client = redis.Redis.from_url(
                url, socket_timeout=2.0, socket_connect_timeout=2.0
            )
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise StoreUnavailable(
                "HEALTHCODE_REDIS_URL names a Redis server that does not answer"
                f" ({type(exc).__name__}); start it or correct the URL."
            ) from None
        return cls(client, prefix)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _run(self, action: Callable[[], object]) -> object:
        try:
            return action()
        except redis.RedisError as exc:
            raise StoreUnavailable(
                f"Redis failed a command ({type(exc).__name__})."
            ) from None

    def get(self, key: str) -> bytes | None:
        value = self._run(lambda: self.client.get(self._key(key)))
        return value if isinstance(value, bytes) or value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._run(
            lambda: self.client.set(
                self._key(key), value, ex=_whole_seconds(ttl_seconds)
            )
        )

    def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        done = self._run(
            lambda: self.client.set(
                self._key(key), value, ex=_whole_seconds(ttl_seconds), nx=True
            )
        )
        return bool(done)

    def delete(self, key: str) -> None:
        self._run(lambda: self.client.delete(self._key(key)))

    def incr(self, key: str, ttl_seconds: float) -> int:
        full = self._key(key)

        def run() -> int:
            pipe = self.client.pipeline()
            pipe.incr(full)
            # NX keeps the first expiry: a counter's window does not slide.
            pipe.expire(full, _whole_seconds(ttl_seconds), nx=True)
            count, _ = pipe.execute()
            return int(count)

        return int(self._run(run))  # type: ignore[call-overload]

    def clear(self) -> None:
        """Delete every key under this store's prefix (for tests)."""

        def run() -> None:
            batch = list(self.client.scan_iter(match=self.prefix + "*", count=500))
            if batch:
                self.client.delete(*batch)

        self._run(run)
