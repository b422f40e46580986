"""The hot refresh through the service with its state in Redis: a status write
retires the cached status at once (C17), and a session keeps its resident.

Every test here keeps the service's short-lived state in Redis, one server
or the test cluster, whichever the database, because the hot paths read
Redis on the event loop through a client of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy.engine import Engine

from healthcode.accounts.services import session_key
from healthcode.accounts.stores import RedisStore, Store
from healthcode.db import open_database
from healthcode.privacy.seals import SealKeys
from healthcode.privacy.sunset import SUNSET_PHRASE, sunset
from healthcode.service.deps import COOKIE_NAME

from .conftest import NOW, ON_REDIS_CLUSTER_TOO, Clock
from .support import (
    ADULT,
    api_key,
    bearer,
    import_identities,
    register_me,
    sign_in_phone,
)
from .test_cache import fever, lab

pytestmark = ON_REDIS_CLUSTER_TOO

PHONE = "13800138000"


@pytest.fixture
def store(request: pytest.FixtureRequest, redis_kind: str) -> Store:
    if redis_kind == "cluster":
        return request.getfixturevalue("redis_cluster_store")
    return request.getfixturevalue("redis_store")


def refresh(client: Any, headers: dict[str, str]) -> Any:
    return client.get("/v1/residents/me/code", headers=headers)


def stored_session(store: Store, headers: dict[str, str]) -> dict[str, Any]:
    token = headers["Authorization"].removeprefix("Bearer ")
    raw = store.get(session_key(token))
    assert raw is not None
    return orjson.loads(raw)


def yellow_resident(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> dict[str, str]:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    fever(engine, tmp_path, "2026-03-10T09:00:00")
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")
    return headers


def test_c17_a_negative_test_turns_the_refreshed_code_green_at_once(
    client: Any, outbox: Any, engine: Engine, store: Store, tmp_path: Path
) -> None:
    headers = yellow_resident(client, outbox, engine, tmp_path)
    cache = client.app.state.runtime.cache
    first = refresh(client, headers).json()
    hits = cache.hits
    second = refresh(client, headers).json()
    served_from_store = cache.hits - hits

    lab(engine, tmp_path, "LAB-1", "negative", "2026-03-10T11:00:00")
    hits = cache.hits
    after = refresh(client, headers)

    assert isinstance(store, RedisStore) and store._reader is not None
    assert (first["colour"], second["colour"]) == ("yellow", "yellow")
    assert served_from_store == 1
    assert after.status_code == 200
    assert after.json()["colour"] == "green"
    assert cache.hits == hits


def test_c17_an_online_verify_after_a_negative_test_reads_green_at_once(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    headers = yellow_resident(client, outbox, engine, tmp_path)
    gate = api_key(engine, "checkpoint", "gate-1", NOW)
    code = refresh(client, headers).json()["text"]
    cache = client.app.state.runtime.cache
    verify = {"json": {"code": code}, "headers": gate}
    first = client.post("/v1/checkpoints/verify", **verify).json()
    hits = cache.hits
    second = client.post("/v1/checkpoints/verify", **verify).json()
    served_from_store = cache.hits - hits

    lab(engine, tmp_path, "LAB-1", "negative", "2026-03-10T11:00:00")
    after = client.post("/v1/checkpoints/verify", **verify).json()

    assert (first["colour"], second["colour"]) == ("yellow", "yellow")
    assert served_from_store == 1
    assert (after["codeColour"], after["colour"]) == ("yellow", "green")


def test_a_write_through_an_engine_the_service_did_not_name_shows_at_its_watch(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    headers = yellow_resident(client, outbox, engine, tmp_path)
    refresh(client, headers)
    refresh(client, headers)
    # A command's engine: the same database under another URL, which the
    # service's store was not named for.
    command = open_database(
        engine.url.update_query_dict(
            {"application_name": "command"}
            if engine.dialect.name == "postgresql"
            else {"timeout": "20"}
        ).render_as_string(hide_password=False)
    )
    try:
        lab(command, tmp_path, "LAB-1", "negative", "2026-03-10T11:00:00")
    finally:
        command.dispose()
    client.app.state.runtime.fence_watch.check()
    after = refresh(client, headers)

    assert after.status_code == 200
    assert after.json()["colour"] == "green"


def test_a_session_keeps_its_resident_after_the_first_refresh(
    client: Any, outbox: Any, engine: Engine, store: Store, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    me = register_me(client, headers, ADULT, "张伟")
    before = stored_session(store, headers)

    first = refresh(client, headers)
    after = stored_session(store, headers)
    second = refresh(client, headers)

    assert "resident" not in before
    assert after == {**before, "resident": after["resident"]}
    assert isinstance(after["resident"], int)
    assert me["maskedName"] == first.json()["maskedName"] == "张*"
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["colour"] == "green"
    assert isinstance(store, RedisStore)
    token = headers["Authorization"].removeprefix("Bearer ")
    # The session keeps the life it was given at sign-in: about 30 days.
    ttl = int(store.client.ttl(store.prefix + session_key(token)))  # type: ignore[arg-type]
    assert 29 * 86400 < ttl <= 30 * 86400


def test_a_session_whose_account_has_not_registered_is_told_so(
    client: Any, outbox: Any, store: Store
) -> None:
    headers = sign_in_phone(client, outbox, PHONE)

    answer = refresh(client, headers)

    assert answer.status_code == 409
    assert answer.json()["code"] == "not_registered"
    assert "resident" not in stored_session(store, headers)


def test_a_cookies_token_sent_as_a_bearer_is_refused(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    client.post("/v1/sign-in/code", json={"phone": PHONE})
    signed = client.post(
        "/v1/sign-in",
        json={"phone": PHONE, "code": outbox.last(PHONE), "client": "page"},
    )
    token = client.cookies.get(COOKIE_NAME)
    by_cookie = refresh(client, {})
    client.cookies.clear()

    as_bearer = refresh(client, bearer(token))

    assert signed.status_code == 200 and token
    # The cookie is a session: the phone has only not registered yet.
    assert by_cookie.json()["code"] == "not_registered"
    assert as_bearer.status_code == 401
    assert as_bearer.json()["code"] == "not_signed_in"
    assert as_bearer.json()["message"].startswith("The session has ended")


def test_a_bearer_token_sent_as_a_cookie_is_refused(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")
    assert refresh(client, headers).status_code == 200
    token = headers["Authorization"].removeprefix("Bearer ")

    # The jar files a cookie for a dotless host under ".local", as it did
    # the cookie the service set at the page's sign-in.
    client.cookies.set(COOKIE_NAME, token, domain="testserver.local")
    as_cookie = refresh(client, {})

    assert as_cookie.status_code == 401
    assert as_cookie.json()["code"] == "not_signed_in"
    assert as_cookie.json()["message"].startswith("The session has ended")


def test_an_expired_session_is_refused_though_it_knows_its_resident(
    client: Any, outbox: Any, engine: Engine, clock: Clock, tmp_path: Path
) -> None:
    import_identities(engine, tmp_path, NOW, [(ADULT, "张伟")])
    headers = sign_in_phone(client, outbox, PHONE)
    register_me(client, headers, ADULT, "张伟")
    fresh = refresh(client, headers)

    clock.advance(days=30, seconds=1)
    expired = refresh(client, headers)

    assert fresh.status_code == 200
    assert expired.status_code == 401
    assert expired.json()["code"] == "not_signed_in"
    assert expired.json()["message"].startswith("The session has ended")


def test_no_code_is_signed_for_anyone_after_the_sunset(
    client: Any, outbox: Any, engine: Engine, tmp_path: Path
) -> None:
    headers = yellow_resident(client, outbox, engine, tmp_path)
    refresh(client, headers)
    assert refresh(client, headers).status_code == 200

    sunset(
        engine,
        NOW,
        SealKeys(tmp_path / "seal-keys"),
        zone=ZoneInfo("Asia/Shanghai"),
        confirmation=SUNSET_PHRASE,
    )
    after = refresh(client, headers)

    assert after.status_code != 200
