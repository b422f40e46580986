"""Run the test suite, against PostgreSQL too where one answers.

People and CI both run this (through ``make test``). It looks for the
PostgreSQL server the suite may use, says plainly which suites it will not
run when the server is absent, and treats "no tests ran" as a failure.
Under CI (``CI=true``) a missing server is a failure, not a skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def main() -> int:
    env = dict(os.environ)
    in_ci = env.get("CI", "").lower() == "true"
    postgres_url = env.get("HEALTHCODE_TEST_POSTGRES_URL", DEFAULT_POSTGRES)

    if reachable("127.0.0.1", 5432) or "HEALTHCODE_TEST_POSTGRES_URL" in env:
        env["HEALTHCODE_TEST_POSTGRES_URL"] = postgres_url
        print(f"test: PostgreSQL suites run against {postgres_url}")
    else:
        env.pop("HEALTHCODE_TEST_POSTGRES_URL", None)
        print("test: PostgreSQL is not reachable on 127.0.0.1:5432;"
              " the PostgreSQL suites will NOT run (they show as skipped).")
        if in_ci:
            print("test: under CI the PostgreSQL suites are required; failing.")
            return 1

    args = [sys.executable, "-m", "pytest", *sys.argv[1:]]
    code = subprocess.call(args, env=env)
    if code == 5:
        print("test: pytest ran no tests; that is a failure.")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
