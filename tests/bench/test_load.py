"""The load bench's own parts: percentiles, requests, generated documents."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer

from healthcode.bench import load
from healthcode.bench.load import (
    PhaseResult,
    identity_number,
    percentile,
    raw_request,
)
from healthcode.identity.documents import parse_document


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    p50, p99, top = (percentile(values, f) for f in (0.50, 0.99, 1.0))

    assert (p50, p99, top) == (50.0, 99.0, 100.0)


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 0.99) == 0.0


def test_raw_request_carries_a_body_length() -> None:
    request = raw_request("POST", "/v1/x", {"X-API-Key": "k"}, b'{"a":1}')

    head, _, body = request.partition(b"\r\n\r\n")

    assert head.split(b"\r\n") == [
        b"POST /v1/x HTTP/1.1",
        b"Host: 127.0.0.1",
        b"X-API-Key: k",
        b"Content-Length: 7",
    ]
    assert body == b'{"a":1}'


def test_generated_identity_numbers_are_valid_and_distinct() -> None:
    numbers = [identity_number(i) for i in (1, 999, 1000, 1_000_000)]

    parsed = [parse_document("cn-id", n, today=date(2026, 1, 1)) for n in numbers]

    assert [d.number for d in parsed] == numbers
    assert len(set(numbers)) == 4


def test_phase_rates_count_requests_and_items() -> None:
    result = PhaseResult("upload", requests=10, items=5000, seconds=2.0)

    assert (result.rate, result.item_rate) == (5.0, 2500.0)


def test_drive_against_a_tiny_server_counts_statuses() -> None:
    from healthcode.bench.load import _drive

    async def run() -> dict[str, object]:
        async def answer(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await _drive(
                port,
                [(raw_request("GET", "/", {}), 3)],
                concurrency=4,
                max_requests=40,
                seconds=10,
                rate=None,
            )

    outcome = asyncio.run(run())

    assert outcome["requests"] == 40
    assert outcome["items"] == 120
    assert outcome["statuses"] == {200: 40}


def test_phases_sharing_a_pool_reuse_its_connections() -> None:
    from healthcode.bench.load import _drive, close_connections

    accepted = 0

    async def run() -> list[dict[str, object]]:
        async def answer(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            nonlocal accepted
            accepted += 1
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool: list = []
        async with server:
            outcomes = [
                await _drive(
                    port,
                    [(raw_request("GET", "/", {}), 1)],
                    concurrency=3,
                    max_requests=30,
                    seconds=10,
                    rate=None,
                    pool=pool,
                )
                for _ in range(2)
            ]
            await close_connections(pool)
            return outcomes

    first, second = asyncio.run(run())

    assert (first["requests"], second["requests"]) == (30, 30)
    assert accepted == 3
    assert float(first["generator_cpu"]) >= 0.0  # type: ignore[arg-type]


def test_phases_are_chosen_by_name() -> None:
    chosen = load._chosen_phases(" upload,health ")

    assert chosen == frozenset({"check-in upload", "health"})
    assert load._chosen_phases(",".join(load.PHASES)) == frozenset(load.PHASES.values())


@pytest.mark.parametrize("text", ["", "upload,uploads", "warm-up"])
def test_an_unknown_phase_is_refused_by_name(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="--phases"):
        load._chosen_phases(text)


def _bench(*arguments: str) -> Any:
    from typer.testing import CliRunner

    from healthcode.bench.load import bench_load_command

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The bench, as the package registers it."""

    app.command("load")(bench_load_command)
    return CliRunner().invoke(app, ["load", *arguments], env={"COLUMNS": "200"})


def test_a_postgresql_that_does_not_answer_is_named_before_any_work() -> None:
    # Port 1 on the loopback: nothing listens there.
    result = _bench("--postgres-url", "postgresql://postgres@127.0.0.1:1/x")

    assert result.exit_code == 2
    assert "--postgres-url" in result.output
    assert "no PostgreSQL server answers" in result.output


def test_a_redis_that_does_not_answer_is_named_before_any_work() -> None:
    from healthcode.bench.load import ADMIN_URL, _check_servers

    try:
        _check_servers(ADMIN_URL, "redis://127.0.0.1:6379/0")
    except typer.BadParameter as exc:
        pytest.skip(f"The bench's default servers do not answer here: {exc}")

    result = _bench("--redis-url", "redis://127.0.0.1:1/0")

    assert result.exit_code == 2
    assert "--redis-url" in result.output
    assert "no Redis server answers" in result.output


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgres://postgres:hunter2@127.0.0.1:5432/test", "of the form"),
        ("host=127.0.0.1 dbname=test", "of the form"),
        ("postgresql://postgres@127.0.0.1:5432/test?sslmode=disable", "nothing after"),
        ("postgresql://postgres@127.0.0.1:5432/", "nothing after"),
    ],
)
def test_a_postgresql_url_the_bench_cannot_build_on_is_refused(
    url: str, problem: str
) -> None:
    result = _bench("--postgres-url", url)

    assert result.exit_code == 2
    assert "--postgres-url" in result.output
    assert problem in result.output
    assert "hunter2" not in result.output


def test_a_plot_that_could_not_be_written_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    too_long = tmp_path / ("x" * 300 + ".svg")

    result = _bench("--plot", str(too_long))

    assert result.exit_code == 2
    assert "--plot" in result.output
    assert "cannot be written" in result.output
    assert list(tmp_path.iterdir()) == []
