"""Hot statuses: served from the store until any recolour, never stale (C17)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.stores import Store
from healthcode.feeds.services import import_feed
from healthcode.service.cache import StatusCache
from healthcode.status.models import Status
from healthcode.status.services import recolor_all, recolor_residents

from .conftest import NOW, ON_REDIS_CLUSTER_TOO
from .support import ADULT, import_identities

pytestmark = ON_REDIS_CLUSTER_TOO

SHANGHAI = ZoneInfo("Asia/Shanghai")


def resident_id(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT id FROM residents")).scalar_one()


def read(engine: Engine, cache: StatusCache, rid: int, at=NOW):
    with Session(engine) as session, session.begin():
        return cache.status(session, rid, at)


def feed(engine: Engine, tmp_path: Path, kind: str, header: str, row: str) -> None:
    path = tmp_path / f"{kind}-{abs(hash(row))}.csv"
    path.write_text(f"{header}\n{row}\n", encoding="utf-8")
    report = import_feed(
        engine,
        kind,
        path,
        now=NOW,
        zone=SHANGHAI,
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    assert report.committed, report.errors


def lab(engine: Engine, tmp_path: Path, record: str, result: str, sampled: str) -> None:
    feed(
        engine,
        tmp_path,
        "lab-results",
        "record_id,doc_kind,doc_number,doc_country,sampled_at,method,result",
        f"{record},cn-id,{ADULT},,{sampled},pcr,{result}",
    )


def fever(engine: Engine, tmp_path: Path, declared: str) -> None:
    feed(
        engine,
        tmp_path,
        "declarations",
        "record_id,doc_kind,doc_number,doc_country,declared_at,fever,respiratory",
        f"DCL-1,cn-id,{ADULT},,{declared},yes,no",
    )


def test_a_second_read_is_served_from_the_store(
    engine: Engine, store: Store, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    cache = StatusCache(store, SHANGHAI)
    rid = resident_id(engine)

    first = read(engine, cache, rid)
    second = read(engine, cache, rid)

    assert first == second
    assert (cache.misses, cache.hits) == (1, 1)


def test_c17_a_negative_test_shows_at_once_despite_the_cache(
    engine: Engine, store: Store, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    fever(engine, tmp_path, "2026-03-10T09:00:00")
    cache = StatusCache(store, SHANGHAI)
    rid = resident_id(engine)
    before = read(engine, cache, rid)

    lab(engine, tmp_path, "LAB-1", "negative", "2026-03-10T11:00:00")
    after = read(engine, cache, rid)

    assert before.colour == "yellow"
    assert after.colour == "green"
    assert after.as_of == NOW
    assert cache.hits == 0


def test_a_full_recolour_retires_every_cached_status(
    engine: Engine, store: Store, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    cache = StatusCache(store, SHANGHAI)
    rid = resident_id(engine)
    read(engine, cache, rid)
    later = NOW + timedelta(hours=1)

    recolor_all(engine, later, workers=1)
    view = read(engine, cache, rid, later)

    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(Status.as_of).where(Status.resident_id == rid)
        ).scalar_one()
    assert view.as_of == stored == later


def test_a_status_is_not_served_past_its_recheck_time(
    engine: Engine, store: Store, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    fever(engine, tmp_path, "2026-03-10T09:00:00")
    cache = StatusCache(store, SHANGHAI)
    rid = resident_id(engine)
    read(engine, cache, rid)
    with engine.connect() as connection:
        recheck = connection.execute(
            sa.select(Status.recheck_at).where(Status.resident_id == rid)
        ).scalar_one()

    later = read(engine, cache, rid, recheck)

    assert later.colour == "green"
    assert cache.hits == 0


def test_cached_statuses_end_at_the_daily_expiry(
    engine: Engine, store: Store, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    cache = StatusCache(store, SHANGHAI)
    rid = resident_id(engine)
    read(engine, cache, rid)

    # 00:00 in Shanghai on the next day.
    read(engine, cache, rid, NOW + timedelta(hours=12))

    assert cache.hits == 0
