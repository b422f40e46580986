"""At three times its sustainable rate the service sheds early and loses nothing.

The test serves a small population from a throwaway PostgreSQL database and
a redis-server of its own, measures how fast two workers answer code
refreshes with a few connections, then sends three times that rate, open
loop, mixed with check-in uploads, for a few seconds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

from healthcode.bench.load import (
    REGION,
    checkin_batches,
    create_database,
    drive,
    drop_database,
    free_port,
    load_population,
    make_fixture,
    percentile,
    raw_request,
    start_server,
    stop_server,
)

from .servers import key_folder, postgres_or_skip, redis_server

BATCH = 5


def _refreshes(tokens: list[str]) -> list[tuple[bytes, int]]:
    return [
        (
            raw_request(
                "GET", "/v1/residents/me/code", {"Authorization": f"Bearer {t}"}
            ),
            0,
        )
        for t in tokens
    ]


def test_three_times_the_sustainable_rate_is_shed_not_lost() -> None:
    postgres_or_skip()
    now = datetime.now(UTC).replace(microsecond=0)
    url = create_database()
    keys = key_folder()
    server = None
    prefix = f"t-{uuid.uuid4().hex[:6]}:"
    with redis_server() as (redis_url, _):
        try:
            load_population(url, 3000, 200, now)
            fixture = make_fixture(url, redis_url, prefix, keys, now, 200, 3000)
            port = free_port()
            server = start_server(
                port,
                {
                    "HEALTHCODE_DATABASE_URL": url,
                    "HEALTHCODE_REDIS_URL": redis_url,
                    "HEALTHCODE_REDIS_PREFIX": prefix,
                    "HEALTHCODE_KEY_DIR": str(keys),
                    "HEALTHCODE_REGION": REGION,
                    "HEALTHCODE_LOG_FORMAT": "json",
                    "HEALTHCODE_MAX_IN_FLIGHT": "2",
                },
            )
            refresh = _refreshes(fixture.tokens)
            (steady,) = drive(
                port,
                [
                    {
                        "name": "steady",
                        "requests": refresh,
                        "concurrency": 4,
                        "max_requests": 3000,
                        "seconds": 3,
                    }
                ],
            )
            # The sustainable rate is what the workers answered, not what
            # they shed: a shed answer is fast and would inflate it.
            rate = 3 * steady.statuses.get(200, 0) / steady.seconds
            uploads = checkin_batches(
                fixture, BATCH, len(fixture.codes) // BATCH, fixture.issued_at
            )
            total = int(rate * 4)
            mixed: list[tuple[bytes, int]] = []
            for index in range(total):
                if index % 10 == 0 and uploads:
                    mixed.append(uploads.pop())
                else:
                    mixed.append(refresh[index % len(refresh)])

            (overload,) = drive(
                port,
                [
                    {
                        "name": "overload",
                        "requests": mixed,
                        "concurrency": 128,
                        "max_requests": len(mixed),
                        "seconds": 6,
                        "rate": rate,
                    }
                ],
            )

            with psycopg.connect(url.replace("+psycopg", "")) as connection:
                stored = connection.execute("SELECT count(*) FROM checkins").fetchone()
            assert server.poll() is None
            assert overload.statuses.get(503, 0) > 0
            assert set(overload.statuses) <= {200, 503}
            assert percentile(overload.admitted_ms, 0.99) < 200
            assert stored is not None and stored[0] == overload.items
            assert overload.items > 0
        finally:
            if server is not None:
                stop_server(server)
            drop_database(url)
