"""Databases for the suites: SQLite always, PostgreSQL where one is named.

The ``engine`` fixture is parametrised over both backends. Each test gets a
database in the state the migrations leave it in:

* SQLite: a copy of a file migrated once per session, opened with
  :func:`healthcode.db.open_database` (which finds nothing left to migrate);
* PostgreSQL: one database per session, ``healthcode_test_<random>``, made
  with ``CREATE DATABASE`` on the server that ``HEALTHCODE_TEST_POSTGRES_URL``
  names and dropped at the end. After each test its tables are emptied and
  the rows the migrations seed are put back.

Tests on PostgreSQL carry the ``postgres`` mark and are skipped, with the
reason printed in the header and the summary, when the variable is unset.

The ``redis_cluster_url`` fixture starts, once per session, a Redis Cluster
of three primaries on loopback ports of its own (from 7301 up, or in the range
``HEALTHCODE_TEST_CLUSTER_PORTS`` names), with
``redis-server`` and ``redis-cli --cluster create``, and stops it at the
end. Without those programs its tests are skipped with the reason printed,
except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.accounts.stores import RedisStore
from healthcode.db import Base, make_engine, open_database

# Sealed columns take their keys from HEALTHCODE_DATA_KEY_DIR. The suite
# keeps them in a directory of its own, outside the working tree, which the
# commands that tests start as child processes inherit.
if "HEALTHCODE_DATA_KEY_DIR" not in os.environ:
    _DATA_KEYS = tempfile.mkdtemp(prefix="healthcode-test-keys-")
    os.environ["HEALTHCODE_DATA_KEY_DIR"] = _DATA_KEYS
    atexit.register(shutil.rmtree, _DATA_KEYS, ignore_errors=True)

POSTGRES_ENV = "HEALTHCODE_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"{POSTGRES_ENV} is not set, so the PostgreSQL tests do not run."
CLUSTER_SKIP = (
    "redis-server or redis-cli is not installed, so the Redis Cluster tests do not run."
)
CLUSTER_PORTS_ENV = "HEALTHCODE_TEST_CLUSTER_PORTS"


def _cluster_port_range() -> tuple[range, int]:
    """Loopback ports the test cluster may take, and its bus ports' offset.

    By default from 7301, each node's bus on its port + 10000. A machine that
    gives the suite a range of its own names it as ``low-high`` in
    ``HEALTHCODE_TEST_CLUSTER_PORTS``: nodes take the lower half, their buses
    the upper half, so nothing is opened outside it.
    """
    spec = os.environ.get(CLUSTER_PORTS_ENV)
    if not spec:
        return range(7301, 7400), 10000
    low, _, high = spec.partition("-")
    half = (int(high) - int(low) + 1) // 2
    return range(int(low), int(low) + half), half


CLUSTER_PORTS, CLUSTER_BUS_OFFSET = _cluster_port_range()


def pytest_report_header(config: pytest.Config) -> list[str]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        lines = [f"postgres: {POSTGRES_SKIP}"]
    else:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        lines = [f"postgres: tests run against a fresh database on {shown}"]
    if shutil.which("redis-server") and shutil.which("redis-cli"):
        lines.append(
            "redis cluster: three nodes of its own on loopback, from"
            f" {CLUSTER_PORTS.start}"
        )
    else:
        lines.append(f"redis cluster: {CLUSTER_SKIP}")
    return lines


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int = 3) -> list[int]:
    free = [
        p for p in CLUSTER_PORTS if _port_free(p) and _port_free(p + CLUSTER_BUS_OFFSET)
    ]
    if len(free) < count:
        raise RuntimeError(
            f"Fewer than {count} free loopback ports in {CLUSTER_PORTS.start}"
            f"-{CLUSTER_PORTS.stop - 1} for the test Redis Cluster."
        )
    return free[:count]


def _wait_for_cluster(cli: str, ports: list[int], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = [
            subprocess.run(
                [cli, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
            for port in ports
        ]
        if all("cluster_state:ok" in state for state in states):
            return
        time.sleep(0.1)
    raise RuntimeError(f"The test Redis Cluster was not ok within {seconds} s.")


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``redis+cluster://`` URL of three primaries started for this session."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CLUSTER_SKIP} Under CI they are required.")
        pytest.skip(CLUSTER_SKIP)
    folder = tmp_path_factory.mktemp("redis-cluster")
    ports = _cluster_ports()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node = folder / str(port)
            node.mkdir()
            processes.append(
                subprocess.Popen(
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-port",
                        str(port + CLUSTER_BUS_OFFSET),
                        "--cluster-config-file",
                        str(node / "nodes.conf"),
                        "--dir",
                        str(node),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--daemonize",
                        "no",
                    ],  # fmt: skip
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            _wait_for_port(port)
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],  # fmt: skip
            check=True,
            capture_output=True,
            timeout=60,
        )
        _wait_for_cluster(cli, ports)
        yield f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _wait_for_port(port: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"Nothing listened on port {port} within {seconds} s.")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the whole schema, migrated once per session."""
    path = tmp_path_factory.mktemp("sqlite-template") / "healthcode.db"
    engine = open_database(f"sqlite:///{path}")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a migrated PostgreSQL database made for this session."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    name = f"healthcode_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        open_database(url).dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_seed(postgres_url: str) -> dict[str, list[dict[str, Any]]]:
    """Rows the migrations put in, table by table, to restore after each test."""
    engine = make_engine(postgres_url)
    seed: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = [dict(row) for row in connection.execute(table.select()).mappings()]
            if rows:
                seed[table.name] = rows
    engine.dispose()
    return seed


def _reset_postgres(engine: Engine, seed: dict[str, list[dict[str, Any]]]) -> None:
    tables = Base.metadata.sorted_tables
    names = ", ".join(f'"{table.name}"' for table in tables)
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        for table in tables:
            if table.name in seed:
                connection.execute(table.insert(), seed[table.name])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[Engine]:
    """An engine on a freshly migrated database, SQLite or PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "healthcode.db"
        shutil.copyfile(sqlite_template, path)
        engine = open_database(f"sqlite:///{path}")
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    seed = request.getfixturevalue("postgres_seed")
    engine = open_database(url)
    try:
        yield engine
    finally:
        engine.dispose()
        cleaner = make_engine(url)
        _reset_postgres(cleaner, seed)
        cleaner.dispose()


@pytest.fixture
def redis_cluster_store(redis_cluster_url: str) -> Iterator[RedisStore]:
    """A store in the test cluster under a fresh prefix, emptied afterwards."""
    store = RedisStore.from_url(
        redis_cluster_url, prefix=f"healthcode-test-{secrets.token_hex(6)}:"
    )
    try:
        yield store
    finally:
        store.clear()
        store.client.close()
