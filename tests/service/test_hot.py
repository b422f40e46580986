"""Hot entries: code ingredients kept between refreshes; spread over a cluster."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.accounts.errors import StoreUnavailable
from healthcode.accounts.stores import MemoryStore, RedisStore, resident_key
from healthcode.feeds.services import import_feed
from healthcode.identity.documents import mod11_2_check
from healthcode.service.cache import StatusCache
from healthcode.service.hot import CodeIngredients
from healthcode.status.services import recolor_residents

from .conftest import NOW
from .support import ADULT, import_identities, register_me, sign_in_phone
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
    # The refresh reads a resident's two entries in one MGET, which the
    # cluster serves because they share a slot.
    both = redis_cluster_store.get_many(
        [resident_key("status", ids[0]), resident_key("code-ingredients", ids[0])]
    )
    assert both[0] is not None and both[1] == b"[]"


def test_a_refresh_after_a_new_record_shows_the_new_colour(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, "13800138000")
    register_me(client, headers, ADULT, "张伟")
    cache = client.app.state.runtime.cache
    client.get("/v1/residents/me/code", headers=headers)
    before = client.get("/v1/residents/me/code", headers=headers).json()
    hits = cache.hits

    declaration = tmp_path / "fever.csv"
    declaration.write_text(
        "record_id,doc_kind,doc_number,doc_country,declared_at,fever,respiratory\n"
        f"DCL-1,cn-id,{ADULT},,2026-03-10T09:00:00,yes,no\n",
        encoding="utf-8",
    )
    report = import_feed(
        engine,
        "declarations",
        declaration,
        now=NOW,
        zone=ZoneInfo("Asia/Shanghai"),
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    after = client.get("/v1/residents/me/code", headers=headers).json()

    assert report.committed, report.errors
    assert hits >= 1
    assert (before["colour"], after["colour"]) == ("green", "yellow")
    assert cache.hits == hits


def test_a_refresh_without_redis_answers_from_the_database(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, "13800138000")
    register_me(client, headers, ADULT, "张伟")
    hot = client.app.state.runtime.hot
    session_store = hot.store

    class Gone:
        def get_many(self, keys: list[str]) -> list[bytes | None]:
            raise StoreUnavailable("Redis failed a command (ConnectionError).")

        async def read_many(self, keys: list[str]) -> list[bytes | None]:
            raise StoreUnavailable("Redis failed a command (ConnectionError).")

        def raise_to(self, key: str, value: int, ttl_seconds: float) -> int:
            raise StoreUnavailable("Redis failed a command (ConnectionError).")

        def write_many(self, *writes: Any) -> None:
            raise StoreUnavailable("Redis failed a command (ConnectionError).")

        def get(self, key: str) -> bytes | None:
            raise StoreUnavailable("Redis failed a command (ConnectionError).")

        def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
            raise StoreUnavailable("Redis failed a command (ConnectionError).")

    hot.store = hot.cache.store = hot.ingredients.store = Gone()
    try:
        answer = client.get("/v1/residents/me/code", headers=headers)
    finally:
        hot.store = hot.cache.store = hot.ingredients.store = session_store

    assert answer.status_code == 200
    assert (answer.json()["colour"], answer.json()["maskedName"]) == ("green", "张*")
