"""Hot entries: code ingredients kept between refreshes; spread over a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.accounts.stores import MemoryStore, RedisStore, resident_key
from healthcode.identity.documents import mod11_2_check
from healthcode.service.cache import StatusCache
from healthcode.service.hot import CodeIngredients

from .conftest import NOW
from .support import import_identities
from .test_cache import read


class CountingCodes:
    """A stand-in for the code service that counts database reads."""

    def __init__(self) -> None:
        self.reads = 0

    def ingredients(self, session: Any, resident_id: int) -> tuple[str, str]:
        self.reads += 1
        return f"王*{resident_id}", "610100"


def test_ingredients_are_read_once_then_kept() -> None:
    codes = CountingCodes()
    kept = CodeIngredients(MemoryStore(), codes)  # type: ignore[arg-type]

    first = kept.of(None, 7)  # type: ignore[arg-type]
    second = kept.of(None, 7)  # type: ignore[arg-type]

    assert first == second == ("王*7", "610100")
    assert codes.reads == 1


def test_ingredients_expire_after_their_ttl() -> None:
    clock = [0.0]
    codes = CountingCodes()
    kept = CodeIngredients(
        MemoryStore(monotonic=lambda: clock[0]),
        codes,  # type: ignore[arg-type]
        ttl_seconds=60,
    )
    kept.of(None, 7)  # type: ignore[arg-type]

    clock[0] = 61.0
    kept.of(None, 7)  # type: ignore[arg-type]

    assert codes.reads == 2


def test_a_citys_hot_statuses_spread_over_the_cluster_nodes(
    engine: Engine, redis_cluster_store: RedisStore, tmp_path: Path
) -> None:
    people = []
    for serial in range(40):
        body = f"61011319900101{serial:03d}"
        people.append((body + mod11_2_check(body), "张伟"))
    import_identities(engine, tmp_path, NOW, people)
    cache = StatusCache(redis_cluster_store, ZoneInfo("Asia/Shanghai"))
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT id FROM residents")).scalars().all()

    for rid in ids:
        read(engine, cache, rid)
        redis_cluster_store.set(resident_key("code-ingredients", rid), b"[]", 60)
    cluster = redis_cluster_store.client
    nodes = {
        node.name: len(
            list(
                node.redis_connection.scan_iter(
                    match=f"{redis_cluster_store.prefix}status:*"
                )
            )
        )
        for node in cluster.get_primaries()  # type: ignore[union-attr]
    }
    slots = {
        rid: {
            cluster.keyslot(redis_cluster_store.prefix + resident_key(kind, rid))
            for kind in ("status", "code-ingredients")
        }
        for rid in ids
    }

    assert len(ids) == 40
    assert sum(nodes.values()) == 40
    assert len([count for count in nodes.values() if count > 0]) == 3
    assert all(len(pair) == 1 for pair in slots.values())
    assert len({next(iter(pair)) for pair in slots.values()}) > 30
