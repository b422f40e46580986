"""Short-lived state: sign-in codes, sessions, rate-limit counters, hot statuses.

Everything here expires, and nothing here is the record of anything: losing
it signs people out or forgets a counter, nothing worse. Two stores offer
the same few operations:

* :class:`MemoryStore`, in the process, for one worker and for development;
* :class:`RedisStore`, in Redis, shared by every worker and every machine,
  used whenever ``HEALTHCODE_REDIS_URL`` is set: one server
  (``redis://host:port/db``) or a Redis Cluster
  (``redis+cluster://host:port,host:port/``, any of its nodes; the client
  learns the rest from them).

Keys in a cluster. Redis Cluster places a key by the hash of its *hash tag*,
the text between the first ``{`` and the next ``}``, or of the whole key
when it has none, and refuses a command or script that touches keys in two
slots. Keys are therefore named so that those used together share a tag and
everything else spreads over the slots:

* a resident's hot entries carry the resident, ``status:{r42}`` and
  ``code-ingredients:{r42}``, so one resident's entries may be read in one
  command while a city's residents spread over every node;
* a phone's sign-in entries carry its digest, ``sign-in:{<digest>}``,
  ``sign-in-fails:{<digest>}``, ``sign-in-lock:{<digest>}``, and so on;
* a session (``session:<digest>``) and a rate-limit counter
  (``rate:<name>:<subject>:<bucket>``) stand alone, untagged, so they spread
  by their whole name.

:func:`resident_key` and :func:`phone_key` build the tagged names. Every
operation below touches one key, and the one that needs two commands
(:meth:`Store.incr`) runs them as a script on that key, so nothing needs the
keys of two slots. The prefix must hold no brace, or its tag would put every
key in one slot.

Values are bytes. Time-based outcomes (is a code expired, is a session over)
are decided by the callers from instants they store inside the values and
the clock they are given; the expiry a store applies is only how long it
keeps a value before forgetting it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException
from sqlalchemy.engine import Engine

from healthcode.accounts.errors import StoreUnavailable

__all__ = [
    "CLUSTER_SCHEMES",
    "MemoryStore",
    "RedisStore",
    "Store",
    "attach_store",
    "attached_stores",
    "cluster_nodes",
    "detach_store",
    "phone_key",
    "resident_key",
    "resident_key_pattern",
]

#: URL schemes that name a Redis Cluster rather than one server.
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
# Errors of redis-py's cluster client that are not RedisErrors.
_REDIS_ERRORS = (redis.RedisError, RedisClusterException)
# One counter step and its window, atomically, on the one key the script
# names: valid on a single server and in a cluster alike. NX keeps the first
# expiry, so a counter's window does not slide.
_INCR = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return count
"""
# A counter that only goes up: the value is set when it is higher than the
# one held (or none is held), and the expiry is renewed either way.
_RAISE = """
local held = tonumber(redis.call('GET', KEYS[1]))
local wanted = tonumber(ARGV[1])
if held == nil or wanted > held then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return wanted
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return held
"""


# The stores that hold copies of what a database decides (the status fence,
# the API keys' generation), by the database's URL, so that a write through
# any engine on that database in this process can tell them before it
# commits.
_attached_lock = threading.Lock()
_attached: dict[str, list[Store]] = {}


def _fresh_lock_in_child() -> None:
    # A fork copies the lock as it stands. Had another thread of the parent
    # held it at that moment, nobody in the child would ever release it, and
    # the child's first status commit (a full recolour's worker) would wait
    # forever in the commit hook.
    global _attached_lock
    _attached_lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


def _database_name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def attach_store(engine: Engine, store: Store) -> None:
    """Name ``store`` as holding copies of what ``engine``'s database decides."""
    with _attached_lock:
        held = _attached.setdefault(_database_name(engine), [])
        if not any(s is store for s in held):
            held.append(store)


def detach_store(engine: Engine, store: Store) -> None:
    """Undo :func:`attach_store`."""
    with _attached_lock:
        held = _attached.get(_database_name(engine), [])
        held[:] = [s for s in held if s is not store]


def attached_stores(engine: Engine) -> list[Store]:
    """The stores named for ``engine``'s database, in the order they were."""
    with _attached_lock:
        return list(_attached.get(_database_name(engine), ()))


# A value, and the values it leads to: the JSON value under KEYS[1] and, when
# it holds the whole number ARGV[1], the keys ARGV[2..] with '#' replaced by
# that number. On one server only: the keys it reads are not all named in
# KEYS, which a cluster would refuse.
_FOLLOW = """
local first = redis.call('GET', KEYS[1])
if not first then return {} end
local found = string.match(first, '"' .. ARGV[1] .. '":(%d+)')
local out = {first}
if not found then return out end
for i = 2, #ARGV do
  local name = string.gsub(ARGV[i], '#', found)
  out[#out + 1] = redis.call('GET', name) or false
end
return out
"""
_FOLLOW_SHA = hashlib.sha1(_FOLLOW.encode()).hexdigest()
_LEAD = re.compile(r"[A-Za-z]+")


def resident_key(kind: str, resident_id: int) -> str:
    """The name of a resident's entry of ``kind``, tagged by the resident."""
    return f"{kind}:{{r{int(resident_id)}}}"


def resident_key_pattern(kind: str) -> str:
    """:func:`resident_key` with ``#`` for the id, for :meth:`Store.read_following`."""
    return f"{kind}:{{r#}}"


def phone_key(kind: str, digest: str, *rest: str) -> str:
    """The name of a phone's entry of ``kind``, tagged by its digest."""
    return ":".join((f"{kind}:{{{digest}}}", *rest))


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The ``host:port`` pairs a ``redis+cluster://`` URL names, in order.

    Raises ValueError naming what is wrong, for the setting's message.
    """
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"a cluster URL starts with {' or '.join(CLUSTER_SCHEMES)}://")
    hosts = parts.netloc.rpartition("@")[2]
    nodes = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        digits = port.isascii() and port.isdigit()
        if not colon or not host or not digits or not 0 < int(port) < 65536:
            raise ValueError(
                f"cluster node {item.strip()!r} is not host:port with a port"
                " from 1 to 65535"
            )
        nodes.append((host.strip("[]"), int(port)))
    if parts.path not in ("", "/"):
        raise ValueError("a cluster has only database 0; the URL names no database")
    if parts.query or parts.fragment:
        # Options in a query would be dropped without a word: the cluster
        # client takes only the nodes and the credentials from the URL.
        raise ValueError("a cluster URL has no query or fragment, only its nodes")
    return nodes


class Store(Protocol):
    """The operations every store offers; keys are text, values bytes."""

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers now."""
        ...

    def get(self, key: str) -> bytes | None:
        """Return the value under ``key``, or None when there is none."""
        ...

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the values under ``keys``, in order.

        One round trip, or in a cluster one per slot the keys fall in.
        """
        ...

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """:meth:`get_many` for a coroutine, waiting without blocking the loop."""
        ...

    async def read_following(
        self, key: str, field: str, keys: Sequence[str]
    ) -> tuple[bytes | None, list[bytes | None] | None]:
        """The JSON value under ``key`` and the values it leads to.

        When the value holds the whole number ``field`` (a plain name),
        ``keys``, each with ``#`` replaced by that number, are read too; one
        round trip on a single Redis server. Otherwise the second part is
        None.
        """
        ...

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl_seconds``."""
        ...

    def add(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        """Keep ``value`` only if ``key`` holds nothing; say whether it did."""
        ...

    def replace(self, key: str, value: bytes) -> bool:
        """Put ``value`` under ``key`` only if it holds one, keeping its expiry."""
        ...

    def write_many(
        self,
        sets: Sequence[tuple[str, bytes, float]],
        replaces: Sequence[tuple[str, bytes]] = (),
        raises: Sequence[tuple[str, int, float]] = (),
    ) -> None:
        """:meth:`set`, :meth:`replace` and :meth:`raise_to` each of these.

        One round trip on a single Redis server; no order among them is
        promised, nor that all or none are done.
        """
        ...

    def raise_to(self, key: str, value: int, ttl_seconds: float) -> int:
        """Make the counter under ``key`` at least ``value``; return what it holds.

        The counter never goes down, whatever order raises arrive in.
        """
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

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.get_many(keys)

    async def read_following(
        self, key: str, field: str, keys: Sequence[str]
    ) -> tuple[bytes | None, list[bytes | None] | None]:
        first = self.get(key)
        names = _followed(first, field, keys)
        return first, None if names is None else self.get_many(names)

    def replace(self, key: str, value: bytes) -> bool:
        with self._lock:
            entry = self._live(key, self._monotonic())
            if entry is None:
                return False
            self._values[key] = (bytes(value), entry[1])
            return True

    def write_many(
        self,
        sets: Sequence[tuple[str, bytes, float]],
        replaces: Sequence[tuple[str, bytes]] = (),
        raises: Sequence[tuple[str, int, float]] = (),
    ) -> None:
        _one_by_one(self, sets, replaces, raises)

    def raise_to(self, key: str, value: int, ttl_seconds: float) -> int:
        with self._lock:
            now = self._monotonic()
            entry = self._live(key, now)
            held = None if entry is None else int(entry[0])
            if held is None or value > held:
                held = value
            self._values[key] = (str(held).encode(), now + ttl_seconds)
            self._wrote(now)
            return held

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

    def ping(self) -> None:
        """The store in the process answers while the process does."""

    def clear(self) -> None:
        """Forget everything (for tests)."""
        with self._lock:
            self._values.clear()


class RedisStore:
    """A store in Redis, one server or a cluster, every key under one prefix.

    Redis errors become :class:`StoreUnavailable`, so that a lost Redis is
    answered as the service being unavailable rather than as a crash.

    A server that stops answering without closing its connections (hung,
    or cut off by the network) costs every command the client's whole
    timeout, two seconds, and every request makes several: the service
    would stall on a store that is mostly a shortcut. So after a command
    times out the store is paused: its operations fail at once with
    :class:`StoreUnavailable`, and the callers answer from the database as
    they do when Redis is down (what lives only in the store, sessions and
    sign-in codes, is unavailable either way). A thread probes the server
    with a short timeout every ``probe_every_seconds`` and ends the pause
    as soon as it answers, so a single stall costs a fraction of a second,
    not the pause. A server that refuses connections fails fast by itself
    and pauses nothing.

    Two writes are never paused: the raises of the counters that retire
    copies (the status fence, the API keys' generation) and the rate-limit
    counters. Dropped while the server is healthy, a raise would leave a
    revoked key or an old colour served from the store after the pause.
    """

    #: How long a pause lasts if no probe ends it sooner.
    pause_seconds = 5.0
    #: How often a paused store is probed, and how long a probe may take.
    probe_every_seconds = 0.25
    probe_timeout_seconds = 0.5

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        prefix: str = "healthcode:",
        url: str | None = None,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise StoreUnavailable(
                "HEALTHCODE_REDIS_PREFIX must not hold a brace: Redis Cluster"
                " would read it as the hash tag of every key."
            )
        if "#" in prefix:
            raise StoreUnavailable(
                "HEALTHCODE_REDIS_PREFIX must not hold '#', which stands for the"
                " resident in the names of a resident's entries."
            )
        self.client = client
        self.prefix = prefix
        self.url = url
        self._incr = client.register_script(_INCR)
        self._raise = client.register_script(_RAISE)
        self._reader: (
            tuple[asyncio.AbstractEventLoop, _AsyncClient, _Batches | None] | None
        ) = None
        self._paused_until = 0.0
        self._quick_client: redis.Redis | RedisCluster | None = None
        self._prober: threading.Thread | None = None
        self._prober_lock = threading.Lock()

    @property
    def clustered(self) -> bool:
        return isinstance(self.client, RedisCluster)

    @classmethod
    def from_url(cls, url: str, prefix: str = "healthcode:") -> RedisStore:
        """Connect to ``url`` and check that Redis answers, naming the setting."""
        timeouts = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
        try:
            if urlsplit(url).scheme in CLUSTER_SCHEMES:
                client: redis.Redis | RedisCluster = _cluster_client(url, timeouts)
            else:
                client = redis.Redis.from_url(url, **timeouts)
            client.ping()
        except ValueError as exc:
            raise StoreUnavailable(
                f"HEALTHCODE_REDIS_URL is not a usable Redis URL: {exc}."
            ) from None
        except _REDIS_ERRORS as exc:
            raise StoreUnavailable(
                "HEALTHCODE_REDIS_URL names a Redis server that does not answer"
                f" ({type(exc).__name__}); start it or correct the URL."
            ) from None
        return cls(client, prefix, url)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _run(self, action: Callable[[], object], *, pausable: bool = True) -> object:
        if pausable:
            self._check_paused()
        try:
            return action()
        except _REDIS_ERRORS as exc:
            raise self._failed(exc) from None

    def _check_paused(self) -> None:
        if time.monotonic() < self._paused_until:
            raise StoreUnavailable(
                "Redis failed a command (it timed out moments ago and is left"
                " alone until it answers again)."
            )

    def _failed(self, exc: Exception) -> StoreUnavailable:
        if isinstance(exc, redis.TimeoutError):
            self._pause()
        return StoreUnavailable(f"Redis failed a command ({type(exc).__name__}).")

    def _pause(self) -> None:
        self._paused_until = time.monotonic() + self.pause_seconds
        with self._prober_lock:
            if self._prober is None or not self._prober.is_alive():
                self._prober = threading.Thread(
                    target=self._probe, name="healthcode-redis-probe", daemon=True
                )
                self._prober.start()

    def _probe(self) -> None:
        # Runs while the store is paused; a probe that times out again keeps
        # the pause going, any answer (or a refusal, which fails fast by
        # itself) ends it.
        while time.monotonic() < self._paused_until:
            time.sleep(self.probe_every_seconds)
            try:
                self._quick().ping()
            except redis.TimeoutError:
                self._paused_until = time.monotonic() + self.pause_seconds
                continue
            except _REDIS_ERRORS:
                pass
            self._paused_until = 0.0

    def _quick(self) -> redis.Redis | RedisCluster:
        """A client to the same server whose commands give up sooner."""
        client = self._quick_client
        if client is None:
            timeouts = {
                "socket_timeout": self.probe_timeout_seconds,
                "socket_connect_timeout": self.probe_timeout_seconds,
            }
            client = self._quick_client = _twin(self.client, self.url, timeouts)
        return client

    def get(self, key: str) -> bytes | None:
        value = self._run(lambda: self.client.get(self._key(key)))
        return value if isinstance(value, bytes) or value is None else bytes(value)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        names = [self._key(k) for k in keys]
        if isinstance(self.client, RedisCluster):
            # One MGET per slot; keys that share a hash tag are one command.
            values = self._run(lambda: self.client.mget_nonatomic(names))
        else:
            values = self._run(lambda: self.client.mget(names))
        return [
            value if isinstance(value, bytes) or value is None else bytes(value)
            for value in values  # type: ignore[attr-defined]
        ]

    def open_reads(self) -> None:
        """Let :meth:`read_many` wait on this event loop without blocking it.

        An asyncio client belongs to the loop it runs on, so a service opens
        one in its lifespan and closes it there (:meth:`close_reads`); on any
        other loop :meth:`read_many` reads as :meth:`get_many` does.
        """
        client = _async_twin(self.client, self.url)
        batches = None if self.clustered else _Batches(client)
        self._reader = (asyncio.get_running_loop(), client, batches)

    async def close_reads(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader[1].aclose()

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        reader = self._reader
        if reader is None or reader[0] is not asyncio.get_running_loop():
            return self.get_many(keys)
        self._check_paused()
        client, batches = reader[1], reader[2]
        names = [self._key(k) for k in keys]
        try:
            if batches is not None:
                values = await batches.run("MGET", *names)
            elif isinstance(client, redis.asyncio.cluster.RedisCluster):
                values = await client.mget_nonatomic(names)
            else:
                values = await client.mget(names)
        except _REDIS_ERRORS as exc:
            raise self._failed(exc) from None
        return [
            value if isinstance(value, bytes) or value is None else bytes(value)
            for value in values
        ]

    async def read_following(
        self, key: str, field: str, keys: Sequence[str]
    ) -> tuple[bytes | None, list[bytes | None] | None]:
        reader = self._reader
        if (
            reader is None
            or reader[0] is not asyncio.get_running_loop()
            or reader[2] is None
        ):
            (first,) = await self.read_many([key])
            names = _followed(first, field, keys)
            return first, None if names is None else await self.read_many(names)
        if not _LEAD.fullmatch(field):
            raise ValueError("A field to follow is a plain name.")
        self._check_paused()
        batches = reader[2]
        command = (
            "EVALSHA",
            _FOLLOW_SHA,
            1,
            self._key(key),
            field,
            *(self._key(k) for k in keys),
        )
        try:
            try:
                values = await batches.run(*command)
            except NoScriptError:
                # A restarted server has forgotten the script; it is loaded
                # once more and the read repeated. The load goes with the
                # batch too, so that the many reads that meet the forgotten
                # script at once take one connection, not one each.
                await batches.run("SCRIPT", "LOAD", _FOLLOW)
                values = await batches.run(*command)
        except _REDIS_ERRORS as exc:
            raise self._failed(exc) from None
        if not values:
            return None, None
        first = bytes(values[0])
        if len(values) == 1:
            return first, None
        rest = [None if v is None else bytes(v) for v in values[1:]]
        return first, rest

    def replace(self, key: str, value: bytes) -> bool:
        done = self._run(
            lambda: self.client.set(self._key(key), value, xx=True, keepttl=True)
        )
        return bool(done)

    def write_many(
        self,
        sets: Sequence[tuple[str, bytes, float]],
        replaces: Sequence[tuple[str, bytes]] = (),
        raises: Sequence[tuple[str, int, float]] = (),
    ) -> None:
        if self.clustered:
            # A cluster's pipeline sends each command to its slot's node in
            # any case; the scripts go one by one.
            _one_by_one(self, sets, replaces, raises)
            return

        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for key, value, ttl in sets:
                pipe.set(self._key(key), value, ex=_whole_seconds(ttl))
            for key, value in replaces:
                pipe.set(self._key(key), value, xx=True, keepttl=True)
            # By its digest: a script object in a pipeline asks the server
            # whether it holds the script first, a round trip of its own.
            for key, number, ttl in raises:
                pipe.evalsha(
                    self._raise.sha, 1, self._key(key), number, _whole_seconds(ttl)
                )
            answers = pipe.execute(raise_on_error=False)
            for answer, (key, number, ttl) in zip(
                answers[len(answers) - len(raises) :], raises, strict=True
            ):
                if isinstance(answer, NoScriptError):
                    self.raise_to(key, number, ttl)
                elif isinstance(answer, Exception):
                    raise answer
            for answer in answers[: len(answers) - len(raises)]:
                if isinstance(answer, Exception):
                    raise answer

        self._run(run)

    def raise_to(self, key: str, value: int, ttl_seconds: float) -> int:
        full = self._key(key)
        held = self._run(
            lambda: self._raise(keys=[full], args=[value, _whole_seconds(ttl_seconds)]),
            pausable=False,
        )
        return int(held)  # type: ignore[call-overload]

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
        count = self._run(
            lambda: self._incr(keys=[full], args=[_whole_seconds(ttl_seconds)]),
            pausable=False,
        )
        return int(count)  # type: ignore[call-overload]

    def ping(self) -> None:
        # With the probe's short timeout: a health check must not wait out
        # the commands' two seconds on a hung server.
        self._run(lambda: self._quick().ping())

    def clear(self) -> None:
        """Delete every key under this store's prefix (for tests)."""

        def run() -> None:
            # A cluster scans each primary in turn; DEL is sent key by key so
            # that no command names keys of two slots.
            names = list(self.client.scan_iter(match=self.prefix + "*", count=500))
            if not self.clustered:
                if names:
                    self.client.delete(*names)
                return
            for name in names:
                self.client.delete(name)

        self._run(run)


class _Batches:
    """Reads from the requests of one event loop, sent to Redis together.

    A loaded worker starts several requests in one turn of its event loop,
    and each wants one read. Sent one by one, every read is a round trip of
    its own, and on a busy machine the system calls and the waking of the
    server cost more than the read. Here the reads asked for while a batch
    is on its way wait for it and then go together, as one pipeline: at rest
    a read leaves at once, under load many share one round trip. Each read
    gets its own answer or its own error; a batch that fails as a whole
    (the server timed out or went away) fails every read in it and every
    read queued behind it, so that none waits longer than one timeout.
    """

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.waiting: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self.sender: asyncio.Task[None] | None = None

    def run(self, *command: Any) -> asyncio.Future[Any]:
        """The answer to ``command``, sent with the others of its turn."""
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self.waiting.append((command, answer))
        if self.sender is None:
            # The task's first step runs after the requests already started
            # in this turn of the loop, so their reads join this batch.
            self.sender = loop.create_task(self._send())
        return answer

    async def _send(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                failure = await self._send_one(batch)
                if failure is not None:
                    # The reads queued behind a batch that the server failed
                    # (a timeout, a lost connection) fail with it, rather
                    # than wait as long again for their own.
                    batch, self.waiting = self.waiting, []
                    _fail(batch, failure)
        except BaseException:
            batch, self.waiting = self.waiting, []
            for _, answer in batch:
                answer.cancel()
            raise
        finally:
            self.sender = None

    async def _send_one(
        self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]
    ) -> redis.RedisError | None:
        """Send ``batch`` and answer its reads; the error that failed it whole."""
        pipe = self.client.pipeline(transaction=False)
        for command, _ in batch:
            pipe.execute_command(*command)
        try:
            answers = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            # Every read of the batch is answered, whatever went wrong, so
            # that no request waits for an answer that never comes.
            failure = (
                exc
                if isinstance(exc, redis.RedisError)
                else redis.ConnectionError(type(exc).__name__)
            )
            _fail(batch, failure)
            return failure
        except BaseException:
            for _, answer in batch:
                answer.cancel()
            raise
        for (_, answer), value in zip(batch, answers, strict=True):
            if answer.done():
                continue
            if isinstance(value, Exception):
                answer.set_exception(value)
            else:
                answer.set_result(value)
        return None


def _fail(
    batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]], failure: Exception
) -> None:
    for _, answer in batch:
        if not answer.done():
            answer.set_exception(failure)


def _one_by_one(
    store: Store,
    sets: Sequence[tuple[str, bytes, float]],
    replaces: Sequence[tuple[str, bytes]],
    raises: Sequence[tuple[str, int, float]],
) -> None:
    """:meth:`Store.write_many` as one command per write."""
    for key, value, ttl in sets:
        store.set(key, value, ttl)
    for key, value in replaces:
        store.replace(key, value)
    for key, number, ttl in raises:
        store.raise_to(key, number, ttl)


def _followed(first: bytes | None, field: str, keys: Sequence[str]) -> list[str] | None:
    """``keys`` with ``#`` replaced by the whole number ``field`` in ``first``.

    None when ``first`` holds no such number; the script ``_FOLLOW`` does
    the same inside Redis.
    """
    if first is None:
        return None
    found = re.search(rb'"' + re.escape(field.encode()) + rb'":(\d+)', first)
    if found is None:
        return None
    number = found.group(1).decode()
    return [k.replace("#", number) for k in keys]


_AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def _twin(
    client: redis.Redis | RedisCluster,
    url: str | None,
    timeouts: dict[str, float],
    *,
    asynchronous: bool = False,
) -> Any:
    """Another client to the same server or cluster, with ``timeouts``."""
    if url is not None and urlsplit(url).scheme in CLUSTER_SCHEMES:
        return _cluster_client(url, timeouts, asynchronous=asynchronous)
    if isinstance(client, RedisCluster):
        node = redis.asyncio.cluster.ClusterNode if asynchronous else ClusterNode
        kind = redis.asyncio.cluster.RedisCluster if asynchronous else RedisCluster
        nodes = [node(primary.host, primary.port) for primary in client.get_primaries()]
        return kind(startup_nodes=nodes, **timeouts)  # type: ignore[arg-type]
    single = redis.asyncio.Redis if asynchronous else redis.Redis
    if url is not None:
        return single.from_url(url, **timeouts)
    kwargs = client.connection_pool.connection_kwargs
    return single(
        host=kwargs.get("host", "localhost"),
        port=kwargs.get("port", 6379),
        db=kwargs.get("db", 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        **timeouts,  # type: ignore[arg-type]
    )


def _async_twin(client: redis.Redis | RedisCluster, url: str | None) -> _AsyncClient:
    """An asyncio client to the same server or cluster, with the same timeouts."""
    timeouts = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    return _twin(client, url, timeouts, asynchronous=True)  # type: ignore[no-any-return]


def _cluster_client(
    url: str, timeouts: dict[str, float], *, asynchronous: bool = False
) -> Any:
    parts = urlsplit(url)
    node = redis.asyncio.cluster.ClusterNode if asynchronous else ClusterNode
    nodes = [node(host, port) for host, port in cluster_nodes(url)]
    credentials: dict[str, object] = {}
    if parts.username:
        credentials["username"] = unquote(parts.username)
    if parts.password:
        credentials["password"] = unquote(parts.password)
    kind = redis.asyncio.cluster.RedisCluster if asynchronous else RedisCluster
    return kind(
        startup_nodes=nodes,
        ssl=parts.scheme == "rediss+cluster",
        **credentials,  # type: ignore[arg-type]
        **timeouts,  # type: ignore[arg-type]
    )
