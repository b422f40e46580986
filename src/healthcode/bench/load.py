"""``healthcode bench load``: the service under load on this machine.

The bench makes a throwaway PostgreSQL database, fills it with a population
by ``COPY`` (an import through the feed importer would take longer than the
run itself), starts ``healthcode serve`` with two workers on the loopback
and drives it from a separate process. The load generator speaks HTTP/1.1
over keep-alive connections with plain asyncio, because a full client
library would spend more of this machine's two cores than the server under
test. Every phase is bounded both in requests and in seconds.

Each endpoint is measured beside ``/v1/health`` in the same run, so the
ratio says how much of the server's budget the endpoint's own work takes,
whatever the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import typer

__all__ = [
    "PhaseResult",
    "Target",
    "bench_load_command",
    "drive",
    "free_port",
    "percentile",
    "raw_request",
]

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
REGION = "610100"
COUNTY = "610113"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"


@dataclass(frozen=True)
class Target:
    """What a phase must reach: a rate, a p99 bound, a ratio to the trivial one."""

    per_second: float
    p99_ms: float | None = None
    ratio: float | None = None


@dataclass
class PhaseResult:
    """The figures of one phase: requests, items carried, seconds, latencies."""

    name: str
    requests: int
    items: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    admitted_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    #: Processor seconds the phase cost, by part: the generator, the
    #: server's workers, PostgreSQL and Redis (as far as they were measured).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def item_rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raw_request(
    method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    """One HTTP/1.1 keep-alive request, as bytes ready to write."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


def _accepted(body: bytes, count: int) -> int:
    # A check-in upload is answered 200 even when some scans are refused; the
    # answer says how many were stored.
    if body.startswith(b'{"accepted":'):
        return int(orjson.loads(body)["accepted"])
    return count


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]

# The pause between two connections the generator opens. Every worker
# accepts from the one listening socket, and a worker that wakes to a burst
# of connections takes them all; opened one at a time, each a moment after
# the last has been answered once, they spread over the workers.
_CONNECT_PAUSE = 0.002


async def _open(port: int) -> Connection:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw_request("GET", "/v1/health", {}))
    await _read_answer(reader)
    return reader, writer


async def open_connections(port: int, pool: list[Connection], count: int) -> None:
    """Grow ``pool`` to ``count`` keep-alive connections, one at a time."""
    while len(pool) < count:
        pool.append(await _open(port))
        await asyncio.sleep(_CONNECT_PAUSE)


async def close_connections(pool: list[Connection]) -> None:
    """Close every connection in ``pool`` and wait until each is closed."""
    for _, writer in pool:
        writer.close()
    for _, writer in pool:
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    pool.clear()


async def _drive(
    port: int,
    requests: Sequence[tuple[bytes, int]],
    *,
    concurrency: int,
    max_requests: int,
    seconds: float,
    rate: float | None,
    pool: list[Connection] | None = None,
) -> dict[str, Any]:
    # Each connection takes the next request from a shared counter, so the
    # templates are spread evenly and none is sent twice in a row by two
    # connections at once. With a rate, requests start on a fixed schedule
    # (an open loop) instead of as fast as answers come back. A latency runs
    # from the moment the request is written, so a generator that falls
    # behind its schedule does not charge its own delay to the server.
    # Connections come from ``pool`` and go back to it, so that phases run
    # one after another share the same spread of connections over workers.
    own = pool is None
    held: list[Connection] = [] if pool is None else pool
    await open_connections(port, held, concurrency)
    issued = 0
    latencies: list[float] = []
    admitted: list[float] = []
    statuses: dict[int, int] = {}
    items = 0
    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds

    async def connection(slot: int) -> None:
        nonlocal issued, items
        reader, writer = held[slot]
        while True:
            now = time.perf_counter()
            if issued >= max_requests or now >= deadline:
                return
            index = issued
            issued += 1
            if rate is not None:
                due = started + index / rate
                if due > now:
                    await asyncio.sleep(due - now)
            sent = time.perf_counter()
            payload, count = requests[index % len(requests)]
            writer.write(payload)
            status, body = await _read_answer(reader)
            took = (time.perf_counter() - sent) * 1000
            latencies.append(took)
            statuses[status] = statuses.get(status, 0) + 1
            if status < 300:
                items += _accepted(body, count)
                admitted.append(took)
            if status == 503 and not payload.startswith(b"GET "):
                # A shed request closes nothing, but the server may have
                # answered before reading the body; start afresh. A request
                # without a body leaves nothing unread, and its connection
                # goes on, as a phone's would.
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                held[slot] = (reader, writer)

    try:
        await asyncio.gather(*(connection(slot) for slot in range(concurrency)))
    finally:
        if own:
            await close_connections(held)
    return {
        "requests": issued,
        "items": items,
        "seconds": time.perf_counter() - started,
        "generator_cpu": time.process_time() - cpu,
        "latencies": latencies,
        "admitted": admitted,
        "statuses": statuses,
    }


async def _drive_phases(plan: dict[str, Any], answers: Any, go: Any) -> None:
    pool: list[Connection] = []
    try:
        for phase in plan["phases"]:
            await open_connections(plan["port"], pool, phase["concurrency"])
            # The parent reads the server's processor times between phases;
            # it says when it has, and the phase starts.
            answers.put("ready")
            go.get()
            outcome = await _drive(
                plan["port"],
                [(bytes(p), c) for p, c in phase["requests"]],
                concurrency=phase["concurrency"],
                max_requests=phase["max_requests"],
                seconds=phase["seconds"],
                rate=phase.get("rate"),
                pool=pool,
            )
            outcome["name"] = phase["name"]
            answers.put(outcome)
    finally:
        await close_connections(pool)


def _driver_main(plan: dict[str, Any], answers: Any, go: Any) -> None:
    asyncio.run(_drive_phases(plan, answers, go))


Meter = Callable[[], dict[str, float]]


def drive(
    port: int, phases: list[dict[str, Any]], meter: Meter | None = None
) -> list[PhaseResult]:
    """Run ``phases`` against the server on ``port`` from a separate process.

    Each phase is a mapping with ``name``, ``requests`` (pairs of request
    bytes and the number of items each carries), ``concurrency``,
    ``max_requests``, ``seconds`` and optionally ``rate`` per second. The
    phases share their connections. ``meter`` gives the processor seconds
    used so far by each part of the server; it is read before and after
    every phase, and the differences are the phase's ``cpu``.
    """
    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    go = context.Queue()
    worker = context.Process(
        target=_driver_main, args=({"port": port, "phases": phases}, answers, go)
    )
    worker.start()
    results = []
    try:
        for phase in phases:
            limit = float(phase["seconds"]) + 60
            ready = answers.get(timeout=limit)
            if ready != "ready":
                raise RuntimeError("The load generator lost its place.")
            before = meter() if meter else {}
            go.put("go")
            outcome = answers.get(timeout=limit)
            after = meter() if meter else {}
            outcome["cpu"] = {
                part: after[part] - before.get(part, 0.0) for part in after
            }
            results.append(outcome)
    finally:
        worker.join(timeout=10)
        if worker.is_alive():
            worker.kill()
    return [
        PhaseResult(
            name=r["name"],
            requests=r["requests"],
            items=r["items"],
            seconds=r["seconds"],
            latencies_ms=r["latencies"],
            admitted_ms=r["admitted"],
            statuses={int(k): v for k, v in r["statuses"].items()},
            cpu={"generator": r["generator_cpu"], **r["cpu"]},
        )
        for r in results
    ]


# The population


def _check_character(body: str) -> str:
    total = sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def identity_number(index: int) -> str:
    """A well-formed mainland number for the ``index``-th generated resident."""
    born = date(1950, 1, 1) + timedelta(days=index // 1000)
    body = f"{COUNTY}{born:%Y%m%d}{index % 1000:03d}"
    return body + _check_character(body)


def _name(index: int) -> str:
    return (
        _SURNAMES[index % len(_SURNAMES)]
        + _GIVEN[(index // 7) % len(_GIVEN)]
        + _GIVEN[(index // 131) % len(_GIVEN)]
    )


def _resident_rows(count: int, at: str) -> Iterator[str]:
    from healthcode.identity.models import PERSONAL_COLUMNS, stored_personal_values

    for index in range(1, count + 1):
        number = identity_number(index)
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        stored = stored_personal_values(number, _name(index), born)
        personal = "\t".join(stored[key] or "\\N" for key in PERSONAL_COLUMNS)
        yield (
            f"{index}\tcn-id\t\t{personal}\t{born.isoformat()}\t{COUNTY}\t\\N"
            f"\tconfirmed\t{at}\t{at}\n"
        )


def _account_rows(count: int, at: str) -> Iterator[str]:
    from healthcode.accounts.models import Account

    columns = Account.__table__.c
    for index in range(1, count + 1):
        phone = f"+8613{index:09d}"
        sealed = columns.phone_sealed.type.process_bind_param(phone, None)
        indexed = columns.phone_index.type.process_bind_param(phone, None)
        yield f"{index}\t{sealed}\t{indexed}\t{index}\t{at}\n"


def create_database(admin_url: str = ADMIN_URL) -> str:
    """Make an empty throwaway database; return its SQLAlchemy URL."""
    import psycopg

    name = f"healthcode_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "")
    return f"postgresql+psycopg://{base}/{name}"


def drop_database(url: str, admin_url: str = ADMIN_URL) -> None:
    """Drop a database :func:`create_database` made, closing its connections."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    if not name.startswith("healthcode_bench_"):
        raise ValueError("Only a bench database is dropped here.")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load_population(url: str, residents: int, accounts: int, now: datetime) -> None:
    """Migrate the database and copy in residents, green statuses and accounts.

    The first resident's status is computed by the rules; everyone else is
    given the same green status, which is what the rules give a confirmed
    resident with no records.
    """
    import psycopg
    from sqlalchemy.orm import Session

    from healthcode.db import open_database
    from healthcode.status.models import Status
    from healthcode.status.services import recolor_residents

    engine = open_database(url)
    at = now.isoformat()
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as connection, connection.cursor() as cursor:
        with cursor.copy(
            "COPY residents (id, doc_kind, doc_country, doc_number_sealed,"
            " doc_number_index, name_sealed, name_index, name_year_index,"
            " birth_date, region_code, street, identity_state,"
            " identity_confirmed_at, registered_at) FROM STDIN"
        ) as copy:
            batch: list[str] = []
            for row in _resident_rows(residents, at):
                batch.append(row)
                if len(batch) == 50_000:
                    copy.write("".join(batch))
                    batch = []
            copy.write("".join(batch))
        cursor.execute("SELECT setval('residents_id_seq', %s)", (residents,))
    with Session(engine) as session, session.begin():
        recolor_residents(session, [1], now, "time", records_changed=False)
    with Session(engine) as session:
        first = session.get(Status, 1)
        if first is None:
            raise RuntimeError("The rules gave the first resident no status.")
        sample = (
            first.colour,
            orjson.dumps(first.reasons).decode(),
            first.as_of.isoformat(),
            first.rule_set,
        )
    engine.dispose()
    with psycopg.connect(plain) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO statuses (resident_id, colour, reasons, as_of,"
            " changes_at, changes_to, recheck_at, rule_set)"
            " SELECT g, %s, %s, %s, NULL, NULL, NULL, %s"
            " FROM generate_series(2, %s) AS g",
            (*sample, residents),
        )
        with cursor.copy(
            "COPY accounts (id, phone_sealed, phone_index, resident_id, created_at)"
            " FROM STDIN"
        ) as copy:
            copy.write("".join(_account_rows(accounts, at)))
        cursor.execute("SELECT setval('accounts_id_seq', %s)", (accounts,))
        cursor.execute("ANALYZE")


@dataclass
class Fixture:
    """What the load needs: session tokens, device keys, codes to show."""

    tokens: list[str]
    checkpoint_key: str
    door_key: str
    codes: list[str]
    issued_at: datetime


def make_fixture(
    url: str,
    redis_url: str,
    prefix: str,
    key_dir: Path,
    now: datetime,
    accounts: int,
    codes: int,
) -> Fixture:
    """Open sessions, make a venue and its keys, and issue screen codes."""
    from sqlalchemy.orm import Session

    from healthcode.accounts.services import (
        Principal,
        Transport,
        create_api_key,
        open_session,
    )
    from healthcode.accounts.stores import RedisStore
    from healthcode.checkins.services import register_venue
    from healthcode.codes.format import Colour
    from healthcode.codes.keys import KeyStore
    from healthcode.codes.services import CodeService
    from healthcode.db import make_engine
    from healthcode.identity.names import mask_name

    store = RedisStore.from_url(redis_url, prefix)
    tokens = [
        open_session(
            store,
            Principal("account", i),
            Transport.BEARER,
            now,
            timedelta(hours=2),
        ).token
        for i in range(1, accounts + 1)
    ]
    engine = make_engine(url)
    key_store = KeyStore(key_dir)
    if not key_store.records():
        # The bench's own key, made here so that nothing warns of a key made
        # on first use: no door outside this run ever sees its codes.
        key_store.generate(REGION, now)
    service = CodeService(key_store, region=REGION)
    with Session(engine) as session, session.begin():
        venue = register_venue(
            session,
            name="Bench hall",
            address="1 Bench Road",
            region_code=COUNTY,
            venue_type="office",
            now=now,
        )
        _, checkpoint_key = create_api_key(session, "checkpoint", "gate-1", now)
        _, door_key = create_api_key(session, "checkpoint", f"venue:{venue.id}", now)
        service.screen_code(session, 1, now)
    engine.dispose()
    # Every generated resident is green and lives in the same county, so
    # their codes are signed from the generated names without reading each
    # resident back.
    issued = [
        service.screen_code_with(i, mask_name(_name(i)), REGION, Colour.GREEN, now).text
        for i in range(1, codes + 1)
    ]
    return Fixture(tokens, checkpoint_key, door_key, issued, now)


def start_server(
    port: int,
    env: dict[str, str],
    workers: int = 2,
    stderr: Any = None,
) -> subprocess.Popen[bytes]:
    """Start ``healthcode serve`` and wait until its health endpoint answers."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from healthcode.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        # A group of its own, so that stopping it stops its workers too.
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("The server exited before it answered.")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(raw_request("GET", "/v1/health", {}))
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return process
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(process)
    raise RuntimeError("The server did not answer within 60 seconds.")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop a server :func:`start_server` started, with its workers."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass
    with contextlib.suppress(ProcessLookupError):
        # Workers that outlived their supervisor are stopped as well.
        os.killpg(process.pid, signal.SIGKILL)


def _json(method: str, path: str, headers: dict[str, str], body: Any) -> bytes:
    data = orjson.dumps(body)
    return raw_request(
        method, path, {**headers, "Content-Type": "application/json"}, data
    )


def checkin_batches(
    fixture: Fixture, batch: int, count: int, at: datetime
) -> list[tuple[bytes, int]]:
    """Door-scan uploads of ``batch`` scans each, all scanned at ``at``.

    ``at`` must fall while the fixture's codes hold. Scans go round the
    codes, so a scan is a new check-in only while there are more codes than
    scans; a repeat scan of a code is counted as an extended visit.
    """
    uploads = []
    for number in range(count):
        scans = [
            {
                "code": fixture.codes[(number * batch + i) % len(fixture.codes)],
                "idempotencyKey": secrets.token_hex(12),
                "checkedInAt": at.isoformat(),
            }
            for i in range(batch)
        ]
        uploads.append(
            (
                _json(
                    "POST",
                    "/v1/checkpoints/checkins",
                    {"X-API-Key": fixture.door_key},
                    {"scans": scans},
                ),
                batch,
            )
        )
    return uploads


class ProcessMeter:
    """Processor seconds used so far by the server's workers, PostgreSQL and Redis.

    The workers are the server process's descendants; PostgreSQL's share is
    its backends connected to the bench's database; Redis's is the whole
    redis-server process, which counts any other client it serves too. A
    process that ends between two readings keeps the time it had at the
    last one, so the sums never go back.
    """

    def __init__(
        self,
        server_pid: int,
        database: str,
        redis_url: str,
        admin_url: str = ADMIN_URL,
    ) -> None:
        import psutil
        import redis

        self._psutil = psutil
        self.server = psutil.Process(server_pid)
        self.database = database
        self.admin_url = admin_url
        client = redis.Redis.from_url(redis_url)
        try:
            self.redis_pid: int | None = int(client.info("server")["process_id"])
        except (redis.RedisError, KeyError, ValueError):
            self.redis_pid = None
        finally:
            client.close()
        self._seen: dict[str, dict[int, float]] = {}

    def _add(self, part: str, pids: list[int]) -> float:
        seen = self._seen.setdefault(part, {})
        for pid in pids:
            try:
                times = self._psutil.Process(pid).cpu_times()
            except self._psutil.Error:
                continue
            seen[pid] = times.user + times.system
        return sum(seen.values())

    def _backends(self) -> list[int]:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                (self.database,),
            ).fetchall()
        return [int(pid) for (pid,) in rows]

    def __call__(self) -> dict[str, float]:
        workers = [p.pid for p in self.server.children(recursive=True)]
        parts = {
            "workers": self._add("workers", workers),
            "postgres": self._add("postgres", self._backends()),
        }
        if self.redis_pid is not None:
            parts["redis"] = self._add("redis", [self.redis_pid])
        return parts


def _us(result: PhaseResult, part: str) -> float:
    return result.cpu.get(part, 0.0) / max(result.requests, 1) * 1e6


def _service_us(result: PhaseResult) -> float:
    return sum(_us(result, part) for part in ("workers", "postgres", "redis"))


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# The phases a run may choose, by the names ``--phases`` takes. The first
# refresh always runs first: it is the warm-up that the refresh phase
# depends on, and it spares the first chosen phase the workers' first
# requests.
PHASES = {
    "health": "health",
    "refresh": "code refresh",
    "verify": "checkpoint verify",
    "upload": "check-in upload",
}


def _chosen_phases(text: str) -> frozenset[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(PHASES))
    if unknown or not names:
        raise typer.BadParameter(
            f"--phases takes a comma-separated list of {', '.join(PHASES)};"
            f" {', '.join(unknown) or 'nothing'} is not one.",
            param_hint="--phases",
        )
    return frozenset(PHASES[name] for name in names)


def bench_load_command(
    residents: Annotated[
        int, typer.Option(min=1, help="Residents in the population.")
    ] = 1_000_000,
    seconds: Annotated[
        float, typer.Option(min=1, max=120, help="Seconds each phase may run.")
    ] = 10.0,
    concurrency: Annotated[
        int, typer.Option(min=1, max=1000, help="Connections the generator holds.")
    ] = 16,
    batch: Annotated[
        int, typer.Option(min=1, max=1000, help="Check-ins per upload.")
    ] = 500,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Server workers.")] = 2,
    phases: Annotated[
        str,
        typer.Option(
            help="Comma-separated phases to run after the first refresh, of: "
            + ", ".join(PHASES)
            + "; all by default."
        ),
    ] = ",".join(PHASES),
    port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, help="Loopback port to serve on; a free one if 0."
        ),
    ] = 0,
    postgres_url: Annotated[
        str,
        typer.Option(
            help="PostgreSQL server to serve from, in a database the bench"
            " creates and drops."
        ),
    ] = ADMIN_URL,
    redis_url: Annotated[
        str,
        typer.Option(
            help="Redis server the service shares, under a key prefix the bench"
            " removes afterwards."
        ),
    ] = REDIS_URL,
    plot: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Also draw each phase's latency at every percentile, as SVG.",
        ),
    ] = None,
) -> None:
    """Serve a population from PostgreSQL and Redis on the loopback, and load it.

    Prints throughput and p50/p95/p99 latency for code refresh, check-in
    upload and online verification, each beside the health endpoint, and
    whether the targets are met.
    """
    chosen = _chosen_phases(phases)
    if plot is not None:
        _check_plot(plot)
    admin_url = _admin_url(postgres_url)
    _check_servers(admin_url, redis_url)
    now = datetime.now(UTC).replace(microsecond=0)
    accounts = min(residents, 5_000)
    prefix = f"healthcode-bench-{uuid.uuid4().hex[:8]}:"
    url = create_database(admin_url)
    server = None
    from healthcode.privacy.crypto import DataKeys
    from healthcode.privacy.types import using_keys

    with tempfile.TemporaryDirectory(prefix="healthcode-bench-") as keys:
        # The service's processes open what the population was sealed with.
        data_key_dir = Path(keys) / "data-keys"
        try:
            started = time.perf_counter()
            with using_keys(DataKeys(data_key_dir)):
                load_population(url, residents, accounts, now)
                typer.echo(
                    f"population: {residents} residents copied in"
                    f" {time.perf_counter() - started:.1f} s"
                )
                fixture = make_fixture(
                    url,
                    redis_url,
                    prefix,
                    Path(keys),
                    now,
                    accounts,
                    min(residents, 50_000),
                )
            port = port or free_port()
            env = {
                "HEALTHCODE_DATABASE_URL": url,
                "HEALTHCODE_REDIS_URL": redis_url,
                "HEALTHCODE_REDIS_PREFIX": prefix,
                "HEALTHCODE_KEY_DIR": keys,
                "HEALTHCODE_DATA_KEY_DIR": str(data_key_dir),
                "HEALTHCODE_REGION": REGION,
                "HEALTHCODE_LOG_FORMAT": "json",
            }
            server = start_server(port, env, workers)
            meter = ProcessMeter(
                server.pid, url.rsplit("/", 1)[1], redis_url, admin_url
            )
            results = _run_phases(
                port, fixture, seconds, concurrency, batch, meter, chosen
            )
        finally:
            if server is not None:
                stop_server(server)
            drop_database(url, admin_url)
            _forget_prefix(prefix, redis_url)
    _report(results, workers)
    if plot is not None:
        from healthcode.bench.plot import latency_svg

        title = (
            f"healthcode serve, {workers} workers, {residents:,} residents:"
            " latency by percentile"
        )
        plot.write_text(latency_svg(list(results.values()), title), "utf-8")
        typer.echo(f"plot: {plot}")


def _run_phases(
    port: int,
    fixture: Fixture,
    seconds: float,
    concurrency: int,
    batch: int,
    meter: Meter | None = None,
    chosen: frozenset[str] = frozenset(PHASES.values()),
) -> dict[str, PhaseResult]:
    health = [(raw_request("GET", "/v1/health", {}), 1)]
    refresh = [
        (
            raw_request(
                "GET", "/v1/residents/me/code", {"Authorization": f"Bearer {token}"}
            ),
            1,
        )
        for token in fixture.tokens
    ]
    # A code shown at a door was refreshed on its phone moments before, so
    # the checkpoint verifies the codes of the residents whose sessions
    # refreshed: their statuses are in the store, as a door's would be.
    verify = [
        (
            _json(
                "POST",
                "/v1/checkpoints/verify",
                {"X-API-Key": fixture.checkpoint_key},
                {"code": code},
            ),
            1,
        )
        for code in fixture.codes[: len(fixture.tokens)]
    ]
    uploads = checkin_batches(
        fixture, batch, max(1, len(fixture.codes) // batch), fixture.issued_at
    )
    common = {"concurrency": concurrency, "seconds": seconds}
    phases = [
        # Every session's first refresh of the day finds no status in the
        # store; the warm-up makes each of them once, so that the refresh
        # phase measures what a phone refreshing all day sees. Its own rate
        # is reported as the first refresh.
        {
            "name": "first refresh",
            "requests": refresh,
            "max_requests": len(refresh),
            "concurrency": concurrency,
            "seconds": max(seconds, 120.0),
        },
        {"name": "health", "requests": health, "max_requests": 200_000, **common},
        {
            "name": "code refresh",
            "requests": refresh,
            "max_requests": 200_000,
            **common,
        },
        {
            "name": "checkpoint verify",
            "requests": verify,
            "max_requests": 200_000,
            **common,
        },
        {
            "name": "check-in upload",
            "requests": uploads,
            "max_requests": len(uploads),
            "concurrency": min(concurrency, 8),
            "seconds": seconds,
        },
    ]
    phases = [p for p in phases if p["name"] == "first refresh" or p["name"] in chosen]
    return {r.name: r for r in drive(port, phases, meter)}


def _check_plot(plot: Path) -> None:
    """Refuse a plot that could not be written, before the run rather than after."""
    if not plot.parent.is_dir():
        raise typer.BadParameter(
            f"{plot.parent} is not a folder to write the plot in.", param_hint="--plot"
        )
    try:
        existed = plot.exists()
        with plot.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise typer.BadParameter(
            f"the plot cannot be written there ({exc.strerror}).", param_hint="--plot"
        ) from None
    if not existed:
        plot.unlink()


def _admin_url(url: str) -> str:
    """The libpq URL of ``--postgres-url``, which the bench builds others from."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgresql+psycopg"):
        raise typer.BadParameter(
            "give a URL of the form postgresql://user@host:port/database.",
            param_hint="--postgres-url",
        )
    if parts.query or parts.fragment or not parts.path.strip("/"):
        raise typer.BadParameter(
            "give the database to connect to in the path and nothing after it"
            " (postgresql://user@host:port/database).",
            param_hint="--postgres-url",
        )
    return urlunsplit(parts._replace(scheme="postgresql"))


def _check_servers(admin_url: str, redis_url: str) -> None:
    """Name the option whose server does not answer, before any work starts."""
    import redis

    from healthcode.db import postgres_reachable

    if not postgres_reachable(admin_url.replace("postgresql", "postgresql+psycopg", 1)):
        raise typer.BadParameter(
            "no PostgreSQL server answers there, or it refused the connection;"
            " the bench makes a database of its own on that server.",
            param_hint="--postgres-url",
        )
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise typer.BadParameter(
            "give the URL of one Redis server (redis://host:port/db); the bench"
            " does not run on a cluster.",
            param_hint="--redis-url",
        )
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        raise typer.BadParameter(
            "no Redis server answers there, or it refused the connection"
            f" ({type(exc).__name__}).",
            param_hint="--redis-url",
        ) from None


def _forget_prefix(prefix: str, redis_url: str = REDIS_URL) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        names = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(names), 1000):
            client.delete(*names[start : start + 1000])
    finally:
        client.close()


def _report(results: dict[str, PhaseResult], workers: int) -> None:
    health = results.get("health")
    first = results.get("first refresh")
    refresh = results.get("code refresh")
    verify = results.get("checkpoint verify")
    upload = results.get("check-in upload")
    shown = [r for r in (health, first, refresh, verify, upload) if r is not None]
    timed = [r for r in (health, refresh, verify, upload) if r is not None]
    cores = os.cpu_count() or 1
    base = health.rate if health is not None and health.rate else None
    typer.echo(f"server: {workers} workers, {cores} cores on this machine")
    typer.echo("")
    typer.echo(
        f"{'endpoint':<18} {'req/s':>7} {'items/s':>8} {'p50 ms':>7} {'p95 ms':>7}"
        f" {'p99 ms':>7} {'ratio':>6} | CPU µs per request: {'workers':>7}"
        f" {'pg':>6} {'redis':>6} {'gen':>6} | {'per core':>8}"
    )
    for result in shown:
        items = f"{result.item_rate:8.0f}" if result is upload else f"{'':8}"
        ratio = f"{result.rate / base:6.2f}" if base else f"{'?':>6}"
        service = _service_us(result)
        per_core = f"{1e6 / service:8.0f}" if service else f"{'?':>8}"
        typer.echo(
            f"{result.name:<18} {result.rate:7.0f} {items} {result.p(0.50):7.1f}"
            f" {result.p(0.95):7.1f} {result.p(0.99):7.1f}"
            f" {ratio} |                     "
            f"{_us(result, 'workers'):7.0f} {_us(result, 'postgres'):6.0f}"
            f" {_us(result, 'redis'):6.0f} {_us(result, 'generator'):6.0f}"
            f" | {per_core}"
        )
    statuses = {r.name: r.statuses for r in timed}
    typer.echo(f"answers by status: {statuses}")
    typer.echo(
        "per core: requests a second one core would serve at the measured"
        " cost of workers, PostgreSQL and Redis together (for check-in upload,"
        " uploads of the batch size)."
    )
    shares = [
        f"{r.name} {r.cpu.get('generator', 0.0) / (r.seconds * cores):.0%}"
        for r in timed
        if r.seconds
    ]
    typer.echo(
        "load generator's share of the machine's processor time: " + ", ".join(shares)
    )
    typer.echo("")
    checks = []
    if refresh is not None:
        checks += [
            (
                "code refresh",
                ">= 3,000 req/s",
                f"{refresh.rate:,.0f} req/s",
                refresh.rate >= 3000,
            ),
            (
                "code refresh p99",
                "< 50 ms",
                f"{refresh.p(0.99):.1f} ms",
                refresh.p(0.99) < 50,
            ),
        ]
    if upload is not None:
        checks.append(
            (
                "check-in ingest",
                ">= 20,000 check-ins/s",
                f"{upload.item_rate:,.0f} check-ins/s",
                upload.item_rate >= 20_000,
            )
        )
    # The ratios need the health phase beside the one they compare.
    for label, result in (
        ("code refresh / health", refresh),
        ("checkpoint verify / health", verify),
    ):
        if result is not None and base:
            ratio = result.rate / base
            checks.append((label, ">= 0.5", f"{ratio:.2f}", ratio >= 0.5))
    typer.echo(f"{'target':<28} {'wanted':<22} {'measured':<22} verdict")
    for label, wanted, measured, ok in checks:
        typer.echo(f"{label:<28} {wanted:<22} {measured:<22} {_verdict(ok)}")
