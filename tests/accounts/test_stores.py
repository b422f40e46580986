"""Both stores keep, add, count and forget alike: in memory, in one Redis
server where it answers, and in a Redis Cluster of three nodes."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator

import pytest
import redis

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
