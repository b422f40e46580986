"""Both stores keep, add, count and forget alike: in memory, in one Redis
server where it answers, and in a Redis Cluster of three nodes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster

from healthcode.accounts.errors import StoreUnavailable
from healthcode.accounts.stores import MemoryStore, RedisStore

REDIS_URL = "redis://127.0.0.1:6379/11"
REDIS_SKIP = "Redis does not answer on 127.0.0.1:6379, so the Redis tests do not run."


class Ticking:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def store(request: pytest.FixtureRequest) -> Iterator[MemoryStore | RedisStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "redis-cluster":
        yield request.getfixturevalue("redis_cluster_store")
        return
    if not _redis_up():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{REDIS_SKIP} Under CI they are required.")
        pytest.skip(REDIS_SKIP)
    redis_store = RedisStore.from_url(
        REDIS_URL, prefix=f"healthcode-test-{secrets.token_hex(6)}:"
    )
    yield redis_store
    redis_store.clear()
    redis_store.client.close()


def test_a_value_is_kept_and_forgotten(store: MemoryStore | RedisStore) -> None:
    store.set("a", b"one", 60)

    kept = store.get("a")
    store.delete("a")

    assert kept == b"one"
    assert store.get("a") is None


def test_many_values_are_read_in_the_order_asked(
    store: MemoryStore | RedisStore,
) -> None:
    store.set("a", b"one", 60)
    store.set("c", b"three", 60)

    values = store.get_many(["c", "b", "a"])

    assert values == [b"three", None, b"one"]


def test_add_keeps_only_the_first_value(store: MemoryStore | RedisStore) -> None:
    first = store.add("b", b"first", 60)
    second = store.add("b", b"second", 60)

    assert (first, second) == (True, False)
    assert store.get("b") == b"first"


def test_a_counter_counts_up_from_one(store: MemoryStore | RedisStore) -> None:
    counts = [store.incr("c", 60) for _ in range(3)]

    assert counts == [1, 2, 3]
    assert store.get("c") == b"3"


def test_memory_entries_expire_on_their_clock() -> None:
    ticking = Ticking()
    store = MemoryStore(monotonic=ticking)
    store.set("a", b"x", 10)
    store.incr("n", 10)

    ticking.value += 10

    assert store.get("a") is None
    assert store.incr("n", 10) == 1
    assert store.add("a", b"y", 10) is True


def test_a_counter_keeps_its_first_expiry() -> None:
    ticking = Ticking()
    store = MemoryStore(monotonic=ticking)
    store.incr("n", 10)

    ticking.value += 9
    store.incr("n", 10)
    ticking.value += 1

    assert store.get("n") is None


def test_redis_clear_removes_only_its_prefix() -> None:
    if not _redis_up():
        pytest.skip(REDIS_SKIP)
    mine = RedisStore.from_url(
        REDIS_URL, prefix=f"healthcode-test-{secrets.token_hex(6)}:"
    )
    other = RedisStore.from_url(
        REDIS_URL, prefix=f"healthcode-test-{secrets.token_hex(6)}:"
    )
    mine.set("k", b"1", 60)
    other.set("k", b"2", 60)

    mine.clear()

    assert mine.get("k") is None
    assert other.get("k") == b"2"
    other.clear()


def test_an_unreachable_redis_names_the_setting() -> None:
    # Port 1 on the loopback: nothing listens there.
    with pytest.raises(StoreUnavailable, match="HEALTHCODE_REDIS_URL"):
        RedisStore.from_url("redis://127.0.0.1:1/0")


def test_cluster_clear_removes_its_keys_on_every_node(
    redis_cluster_store: RedisStore,
) -> None:
    for number in range(50):
        redis_cluster_store.set(f"k{number}", b"1", 60)
    on_nodes = _keys_by_node(redis_cluster_store)

    redis_cluster_store.clear()

    assert len([n for n in on_nodes.values() if n]) > 1
    assert sum(on_nodes.values()) == 50
    assert sum(_keys_by_node(redis_cluster_store).values()) == 0


def _keys_by_node(store: RedisStore) -> dict[str, int]:
    counts = {}
    for node in store.client.get_primaries():  # type: ignore[union-attr]
        found = node.redis_connection.scan_iter(match=store.prefix + "*")
        counts[node.name] = len(list(found))
    return counts


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://127.0.0.1/", "is not host:port"),
        ("redis+cluster://127.0.0.1:7301,:7302/", "is not host:port"),
        ("redis+cluster://127.0.0.1:99999/", "is not host:port"),
        ("redis+cluster://127.0.0.1:7301/3", "only database 0"),
        ("redis+cluster://127.0.0.1:\u0667\u0663\u0660\u0661/", "is not host:port"),
        ("redis+cluster://127.0.0.1:7301/?ssl_cert_reqs=none", "no query"),
        ("redis+cluster://127.0.0.1:7301/#db3", "no query"),
    ],
)
def test_a_malformed_cluster_url_names_the_setting(url: str, problem: str) -> None:
    with pytest.raises(StoreUnavailable, match=f"HEALTHCODE_REDIS_URL.*{problem}"):
        RedisStore.from_url(url)


def test_an_unreachable_cluster_names_the_setting() -> None:
    with pytest.raises(StoreUnavailable, match="HEALTHCODE_REDIS_URL"):
        RedisStore.from_url("redis+cluster://127.0.0.1:1/")


def test_a_prefix_with_a_brace_is_refused() -> None:
    with pytest.raises(StoreUnavailable, match="HEALTHCODE_REDIS_PREFIX"):
        # Nothing listens on port 1; the prefix is refused before any command.
        RedisStore(redis.Redis(host="127.0.0.1", port=1), prefix="hc{1}:")


def _ttl(store: RedisStore, key: str) -> int:
    """Seconds Redis will keep ``key`` for, as Redis itself reports them."""
    return int(store.client.ttl(store.prefix + key))  # type: ignore[arg-type]


def _redis_only(store: MemoryStore | RedisStore) -> RedisStore:
    if not isinstance(store, RedisStore):
        pytest.skip("Redis keeps its own expiries; the memory store has its own test.")
    return store


def test_a_raised_counter_only_goes_up_whatever_order_raises_come_in(
    store: MemoryStore | RedisStore,
) -> None:
    held = [store.raise_to("fence", value, 60) for value in (5, 3, 9, 9, 7, 0)]

    assert held == [5, 5, 9, 9, 9, 9]
    assert store.get("fence") == b"9"


def test_raising_renews_the_expiry_even_when_the_value_stays() -> None:
    ticking = Ticking()
    store = MemoryStore(monotonic=ticking)
    store.raise_to("fence", 5, 60)
    ticking.value += 50

    kept = store.raise_to("fence", 3, 60)
    ticking.value += 50
    still = store.get("fence")
    ticking.value += 11

    assert (kept, still) == (5, b"5")
    assert store.get("fence") is None


def test_redis_renews_a_raised_counters_expiry_even_when_the_value_stays(
    store: MemoryStore | RedisStore,
) -> None:
    redis_store = _redis_only(store)
    redis_store.raise_to("fence", 5, 60)
    redis_store.client.expire(redis_store.prefix + "fence", 3)

    kept = redis_store.raise_to("fence", 3, 600)

    assert kept == 5
    assert 590 <= _ttl(redis_store, "fence") <= 600
    assert redis_store.get("fence") == b"5"


def test_replace_keeps_the_expiry_and_leaves_a_missing_key_missing() -> None:
    ticking = Ticking()
    store = MemoryStore(monotonic=ticking)
    store.set("s", b"one", 60)
    ticking.value += 30

    replaced = store.replace("s", b"two")
    absent = store.replace("gone", b"two")
    now_held = store.get("s")
    ticking.value += 30

    assert (replaced, absent, now_held) == (True, False, b"two")
    assert store.get("s") is None
    assert store.get("gone") is None


def test_replace_on_redis_keeps_the_expiry_and_leaves_a_missing_key_missing(
    store: MemoryStore | RedisStore,
) -> None:
    redis_store = _redis_only(store)
    redis_store.set("s", b"one", 60)
    redis_store.client.expire(redis_store.prefix + "s", 40)

    replaced = redis_store.replace("s", b"two")
    absent = redis_store.replace("gone", b"two")

    assert (replaced, absent) == (True, False)
    assert redis_store.get("s") == b"two"
    assert 0 < _ttl(redis_store, "s") <= 40
    assert redis_store.get("gone") is None
    # Redis answers -2 for a key it does not hold at all.
    assert _ttl(redis_store, "gone") == -2


def test_read_many_without_an_open_reader_reads_as_get_many(
    store: MemoryStore | RedisStore,
) -> None:
    # Keys of two slots in a cluster: a resident's entry and the fence.
    store.set("status:{r7}", b"seven", 60)
    store.raise_to("status-fence", 12, 60)

    values = asyncio.run(store.read_many(["status:{r7}", "missing", "status-fence"]))

    assert values == [b"seven", None, b"12"]


def test_read_many_on_the_loop_that_opened_reads_uses_its_async_client(
    store: MemoryStore | RedisStore,
) -> None:
    redis_store = _redis_only(store)
    redis_store.set("status:{r7}", b"seven", 60)
    redis_store.raise_to("status-fence", 12, 60)

    async def on_the_service_loop() -> tuple[list[bytes | None], object]:
        redis_store.open_reads()
        try:
            assert redis_store._reader is not None
            reader = redis_store._reader[1]
            values = await redis_store.read_many(
                ["status:{r7}", "missing", "status-fence"]
            )
            return values, reader
        finally:
            await redis_store.close_reads()

    values, reader = asyncio.run(on_the_service_loop())

    assert values == [b"seven", None, b"12"]
    assert isinstance(reader, redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster)
    assert redis_store._reader is None


def test_read_many_on_another_loop_falls_back_to_the_blocking_client(
    store: MemoryStore | RedisStore,
) -> None:
    redis_store = _redis_only(store)
    redis_store.set("a", b"one", 60)
    service_loop = asyncio.new_event_loop()
    other_loop = asyncio.new_event_loop()

    async def open_reads() -> None:
        redis_store.open_reads()

    try:
        service_loop.run_until_complete(open_reads())
        # An asyncio client used from a loop it does not belong to fails;
        # read_many must not hand it over.
        values = other_loop.run_until_complete(redis_store.read_many(["a", "b"]))
        on_service = service_loop.run_until_complete(redis_store.read_many(["a"]))
    finally:
        service_loop.run_until_complete(redis_store.close_reads())
        service_loop.close()
        other_loop.close()

    assert values == [b"one", None]
    assert on_service == [b"one"]


def test_read_many_on_a_redis_that_is_down_raises_store_unavailable() -> None:
    # Port 1 on the loopback: nothing listens there.
    down = RedisStore(
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1.0),
        url="redis://127.0.0.1:1/0",
    )

    async def with_reader() -> None:
        down.open_reads()
        try:
            await down.read_many(["status:{r1}", "status-fence"])
        finally:
            await down.close_reads()

    with pytest.raises(StoreUnavailable, match="Redis failed a command"):
        asyncio.run(down.read_many(["status:{r1}", "status-fence"]))
    with pytest.raises(StoreUnavailable, match="Redis failed a command"):
        asyncio.run(with_reader())
    with pytest.raises(StoreUnavailable, match="Redis failed a command"):
        down.raise_to("status-fence", 3, 60)


def _on_a_service_loop(store: MemoryStore | RedisStore, work: Any) -> Any:
    async def run() -> Any:
        if isinstance(store, RedisStore):
            store.open_reads()
        try:
            return await work()
        finally:
            if isinstance(store, RedisStore):
                await store.close_reads()

    return asyncio.run(run())


def test_read_following_reads_what_a_value_leads_to(
    store: MemoryStore | RedisStore,
) -> None:
    store.set("session:abc", b'{"id":5,"resident":42}', 60)
    store.set("session:new", b'{"id":6}', 60)
    store.set("status:{r42}", b"green", 60)
    store.raise_to("status-fence", 3, 60)
    keys = ["status:{r#}", "code-ingredients:{r#}", "status-fence"]

    known = _on_a_service_loop(
        store, lambda: store.read_following("session:abc", "resident", keys)
    )
    unknown = _on_a_service_loop(
        store, lambda: store.read_following("session:new", "resident", keys)
    )
    missing = _on_a_service_loop(
        store, lambda: store.read_following("session:gone", "resident", keys)
    )

    assert known == (b'{"id":5,"resident":42}', [b"green", None, b"3"])
    assert unknown == (b'{"id":6}', None)
    assert missing == (None, None)


def test_write_many_sets_replaces_and_raises_in_one_go(
    store: MemoryStore | RedisStore,
) -> None:
    store.set("session:abc", b"old", 60)
    store.raise_to("status-fence", 9, 60)

    store.write_many(
        [("status:{r1}", b"green", 60), ("code-ingredients:{r1}", b"name", 60)],
        [("session:abc", b"new"), ("session:gone", b"ghost")],
        [("status-fence", 4, 60), ("other-fence", 2, 60)],
    )

    assert store.get_many(
        ["status:{r1}", "code-ingredients:{r1}", "session:abc", "session:gone"]
    ) == [b"green", b"name", b"new", None]
    assert store.get_many(["status-fence", "other-fence"]) == [b"9", b"2"]


def test_a_prefix_with_a_hash_is_refused() -> None:
    with pytest.raises(StoreUnavailable, match="must not hold '#'"):
        RedisStore(redis.Redis(), prefix="healthcode#1:")


def test_write_many_raises_a_counter_on_a_redis_that_forgot_its_scripts(
    store: MemoryStore | RedisStore,
) -> None:
    redis_store = _redis_only(store)
    if redis_store.clustered:
        pytest.skip("A cluster's writes go one by one, each loading its script.")
    redis_store.raise_to("status-fence", 3, 60)
    # A digest the server never saw, as after a restart of Redis.
    redis_store._raise.sha = "0" * 40

    redis_store.write_many([], [], [("status-fence", 8, 60)])

    assert redis_store.get("status-fence") == b"8"


def test_reads_started_in_one_turn_share_one_round_trip(
    store: MemoryStore | RedisStore,
) -> None:
    redis_store = _redis_only(store)
    if redis_store.clustered:
        pytest.skip("A cluster's reads go node by node, not batched.")
    for n in range(1, 21):
        redis_store.set(f"status:{{r{n}}}", f"colour-{n}".encode(), 60)
    redis_store.set("session:s7", b'{"id":7,"resident":7}', 60)
    batches: list[int] = []

    async def reads() -> list[Any]:
        assert redis_store._reader is not None
        batcher = redis_store._reader[2]
        assert batcher is not None
        send_one = batcher._send_one

        async def counted(batch: list[Any]) -> None:
            batches.append(len(batch))
            await send_one(batch)

        batcher._send_one = counted  # type: ignore[method-assign]
        many = [
            redis_store.read_many([f"status:{{r{n}}}", "gone"]) for n in range(1, 21)
        ]
        return await asyncio.gather(
            *many,
            redis_store.read_following("session:s7", "resident", ["status:{r#}"]),
        )

    answers = _on_a_service_loop(redis_store, reads)

    assert answers[:20] == [[f"colour-{n}".encode(), None] for n in range(1, 21)]
    assert answers[20] == (b'{"id":7,"resident":7}', [b"colour-7"])
    assert batches == [21]


def test_read_following_loads_its_script_again_after_a_redis_restart(
    store: MemoryStore | RedisStore,
) -> None:
    redis_store = _redis_only(store)
    if redis_store.clustered:
        pytest.skip("A cluster's reads follow without a script.")
    redis_store.set("session:s1", b'{"id":1,"resident":3}', 60)
    redis_store.set("status:{r3}", b"yellow", 60)
    # What a restarted server has forgotten.
    redis_store.client.script_flush()

    async def many() -> list[Any]:
        # More readers at once than the client has connections to give:
        # each loads the script through the batch, not a connection of its own.
        return await asyncio.gather(
            *(
                redis_store.read_following("session:s1", "resident", ["status:{r#}"])
                for _ in range(150)
            )
        )

    answers = _on_a_service_loop(redis_store, many)

    assert answers == [(b'{"id":1,"resident":3}', [b"yellow"])] * 150


def test_every_read_of_a_failed_batch_raises_store_unavailable() -> None:
    # Port 1 on the loopback: nothing listens there.
    down = RedisStore(
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1.0),
        url="redis://127.0.0.1:1/0",
    )

    async def reads() -> list[Any]:
        down.open_reads()
        try:
            return await asyncio.gather(
                down.read_many(["status:{r1}"]),
                down.read_many(["status:{r2}"]),
                down.read_following("session:x", "resident", ["status:{r#}"]),
                return_exceptions=True,
            )
        finally:
            await down.close_reads()

    answers = asyncio.run(reads())

    assert [type(a) for a in answers] == [StoreUnavailable] * 3
    assert all("Redis failed a command" in str(a) for a in answers)


def test_reads_queued_behind_a_stalled_batch_fail_with_it() -> None:
    from tests.service.servers import redis_server

    with redis_server() as (url, process):
        store = RedisStore.from_url(url, prefix="stall:")

        async def reads() -> tuple[list[Any], float]:
            store.open_reads()
            try:
                await store.read_many(["warm"])
                # The server stops answering, as a stalled one does.
                process.send_signal(signal.SIGSTOP)
                started = time.monotonic()
                first = asyncio.ensure_future(store.read_many(["a"]))
                await asyncio.sleep(0.5)
                queued = [store.read_many([f"b{n}"]) for n in range(20)]
                answers = await asyncio.gather(first, *queued, return_exceptions=True)
                return answers, time.monotonic() - started
            finally:
                process.send_signal(signal.SIGCONT)
                await store.close_reads()

        try:
            answers, took = asyncio.run(reads())
        finally:
            store.client.close()

    assert [type(a) for a in answers] == [StoreUnavailable] * 21
    # The client gives up on a batch after 2 s; the queued reads fail with it
    # instead of waiting another 2 s for their own batch.
    assert took < 3.5


def test_after_a_timeout_the_store_is_left_alone_until_it_answers() -> None:
    from tests.service.servers import redis_server

    with redis_server() as (url, process):
        store = RedisStore.from_url(url, prefix="pause:")
        # Longer than the test: only the probe can end this pause.
        store.pause_seconds = 60.0
        store.set("a", b"one", 60)
        try:
            # The server stops answering, as a hung one does.
            process.send_signal(signal.SIGSTOP)
            with pytest.raises(StoreUnavailable, match="TimeoutError"):
                store.get("a")
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="moments ago"):
                store.get("a")
            with pytest.raises(StoreUnavailable, match="moments ago"):
                asyncio.run(store.read_many(["a"]))
            paused = time.monotonic() - started
            process.send_signal(signal.SIGCONT)
            resumed = time.monotonic()
            after = None
            while after is None and time.monotonic() - resumed < 10:
                with contextlib.suppress(StoreUnavailable):
                    after = store.get("a")
                time.sleep(0.05)
            back = time.monotonic() - resumed
        finally:
            process.send_signal(signal.SIGCONT)
            store.client.close()

    # Not asked while paused: answered without waiting out a timeout.
    assert paused < 0.5
    # The probe ends the pause soon after the server answers again.
    assert after == b"one"
    assert back < 5


def test_a_paused_store_still_raises_its_counters() -> None:
    from tests.service.servers import redis_server

    with redis_server() as (url, process):
        store = RedisStore.from_url(url, prefix="pause:")
        store.probe_every_seconds = 60.0
        store.raise_to("status-fence", 3, 60)
        try:
            process.send_signal(signal.SIGSTOP)
            with pytest.raises(StoreUnavailable, match="TimeoutError"):
                store.get("status-fence")
            process.send_signal(signal.SIGCONT)
            # Paused, though the server is healthy again: a read is refused,
            # but the raises that retire copies go through.
            with pytest.raises(StoreUnavailable, match="moments ago"):
                store.get("status-fence")

            raised = store.raise_to("status-fence", 9, 60)
            counted = store.incr("api-key-generation", 60)
        finally:
            process.send_signal(signal.SIGCONT)
            store.client.close()

    assert (raised, counted) == (9, 1)


def test_a_refused_connection_does_not_pause_the_store() -> None:
    # Port 1 on the loopback: nothing listens there, and it says so at once.
    down = RedisStore(
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1.0),
        url="redis://127.0.0.1:1/0",
    )

    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="ConnectionError"):
            down.get("a")


def test_a_store_that_answers_pings_and_stays_in_use(
    store: MemoryStore | RedisStore,
) -> None:
    # A ping goes through a client of its own (a cluster's too), and an
    # answered ping pauses nothing.
    store.ping()
    store.set("after-ping", b"kept", 60)

    store.ping()

    assert store.get("after-ping") == b"kept"
