"""Run the test suite, against PostgreSQL too where one answers.

People and CI both run this (through ``make test``). It looks for the
PostgreSQL and Redis servers the suites may use, says plainly which suites it will not
run when the server is absent, and treats "no tests ran" as a failure.
Under CI (``CI=true``) a missing server is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from urllib.parse import urlsplit

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# Tests take their own key prefix in database 15, and clean it up.
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = urlsplit(url.replace("+psycopg", ""))
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def main() -> int:
    env = dict(os.environ)
    in_ci = env.get("CI", "").lower() == "true"
    chosen = "HEALTHCODE_TEST_POSTGRES_URL" in env
    postgres_url = env.get("HEALTHCODE_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    host, port = _host_port(postgres_url, 5432)

    if reachable(host, port):
        env["HEALTHCODE_TEST_POSTGRES_URL"] = postgres_url
        print(f"test: PostgreSQL suites run against {host}:{port}")
    elif chosen:
        print(f"test: HEALTHCODE_TEST_POSTGRES_URL names {host}:{port}, which does"
              " not answer; start that server or unset the variable.")
        return 1
    else:
        env.pop("HEALTHCODE_TEST_POSTGRES_URL", None)
        print(f"test: PostgreSQL is not reachable on {host}:{port};"
              " the PostgreSQL suites will NOT run (they show as skipped).")
        if in_ci:
            print("test: under CI the PostgreSQL suites are required; failing.")
            return 1

    redis_url = env.get("HEALTHCODE_TEST_REDIS_URL", DEFAULT_REDIS)
    redis_host, redis_port = _host_port(redis_url, 6379)
    if reachable(redis_host, redis_port):
        env["HEALTHCODE_TEST_REDIS_URL"] = redis_url
        print(f"test: Redis suites run against {redis_host}:{redis_port}")
    else:
        env.pop("HEALTHCODE_TEST_REDIS_URL", None)
        print(f"test: Redis is not reachable on {redis_host}:{redis_port};"
              " the Redis suites will NOT run (they show as skipped).")
        if in_ci:
            print("test: under CI the Redis suites are required; failing.")
            return 1

    # The Redis Cluster suites start a cluster of their own on loopback, and
    # the fault tests a PostgreSQL server of their own that they stop.
    for suites, programs in (
        ("Redis Cluster", ("redis-server", "redis-cli")),
        ("PostgreSQL restart", ("initdb", "pg_ctl")),
    ):
        missing = [name for name in programs if not shutil.which(name)]
        if not missing:
            print(f"test: {suites} suites run on servers they start on 127.0.0.1")
            continue
        print(f"test: {' and '.join(missing)} not installed; the {suites}"
              " suites will NOT run (they show as skipped).")
        if in_ci:
            print(f"test: under CI the {suites} suites are required; failing.")
            return 1

    args = [sys.executable, "-m", "pytest", *sys.argv[1:]]
    code = subprocess.call(args, env=env)
    if code == 5:
        print("test: pytest ran no tests; that is a failure.")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
