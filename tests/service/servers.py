"""Servers the load and fault tests start for themselves on the loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from healthcode.bench.load import ADMIN_URL, free_port


def postgres_or_skip() -> None:
    """Skip, saying why, when no PostgreSQL answers on 127.0.0.1:5432."""
    import psycopg

    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error:
        pytest.skip(f"No PostgreSQL answers at {ADMIN_URL}, so this test does not run.")


@contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of our own on a free loopback port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed, so this test does not run.")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="healthcode-redis-") as folder:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            yield f"redis://127.0.0.1:{port}/0", process
        finally:
            process.terminate()
            process.wait(timeout=10)


#: Loopback ports a test PostgreSQL of its own may take.
POSTGRES_PORTS = range(7380, 7400)


class PostgresInstance:
    """A PostgreSQL server of the test's own, in a data folder it made."""

    def __init__(self, pg_ctl: str, data: Path, port: int, owner: dict[str, Any]):
        self.pg_ctl = pg_ctl
        self.data = data
        self.port = port
        self._owner = owner

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _control(self, *args: str) -> None:
        subprocess.run(
            [self.pg_ctl, "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=120,
            **self._owner,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            f" -k {self.data} -c max_connections=60"
        )
        self._control("-l", str(self.data / "server.log"), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop it the way an operator would for a restart: fast, cleanly."""
        self._control("-m", "fast", "-w", "stop")


@contextmanager
def postgres_instance() -> Iterator[PostgresInstance]:
    """Start a PostgreSQL server of our own on a loopback port from 7380."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        reason = "initdb and pg_ctl are not installed, so this test does not run."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} Under CI it is required.")
        pytest.skip(reason)
    owner: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="healthcode-pg-"))
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; it runs as its own system user.
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("Running as root without a postgres user to run PostgreSQL.")
        owner = {"user": account.pw_uid, "group": account.pw_gid}
        os.chown(folder, account.pw_uid, account.pw_gid)
    port = next(
        (p for p in POSTGRES_PORTS if _port_free(p)),
        None,
    )
    if port is None:
        raise RuntimeError("No free loopback port in 7380-7399 for PostgreSQL.")
    data = folder / "data"
    subprocess.run(
        [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
        **owner,
    )
    instance = PostgresInstance(pg_ctl, data, port, owner)
    instance.start()
    try:
        yield instance
    finally:
        with suppress(subprocess.CalledProcessError):
            instance.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, seconds: float = 10) -> None:
    """Wait until something accepts connections on the loopback ``port``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"Nothing listened on port {port} within {seconds} s.")


def key_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="healthcode-keys-"))


class TcpProxy:
    """A loopback TCP proxy to ``target_port`` that can be cut, as a lost link.

    With ``answers=False`` it passes requests on but never an answer: when
    the first bytes of one come back it closes both ends, as a link that
    drops after the server has done the work.
    """

    def __init__(self, target_port: int, *, answers: bool = True) -> None:
        import threading

        self.target_port = target_port
        self.answers = answers
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while self._open:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._open:
                    # Accepted as the link was cut: it is refused, as any
                    # connection after the cut.
                    client.close()
                    return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            back = self._pump if self.answers else self._swallow
            for source, sink, pump in (
                (client, upstream, self._pump),
                (upstream, client, back),
            ):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _swallow(source: socket.socket, sink: socket.socket) -> None:
        try:
            source.recv(65536)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close the listener and every link, so the target looks gone."""
        with self._lock:
            self._open = False
        # A thread blocked in accept() keeps a closed listener accepting on
        # Linux; shutting it down first wakes that thread and refuses at once.
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for end in self._sockets:
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
