"""A door device's queue: kept on disk, removed only by a delivered upload."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from healthcode.checkins.device import DeviceQueue

AT = datetime(2026, 3, 10, 4, 0, 5, tzinfo=UTC)


class Service:
    """Answers uploads with the statuses it is given, one per upload."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(httpx.Response(200, content=request.content).json())
        status = self.statuses.pop(0)
        if status is None:
            raise httpx.ReadTimeout("no answer", request=request)
        if status == 503:
            return httpx.Response(
                503, headers={"Retry-After": "2"}, json={"code": "database_unavailable"}
            )
        return httpx.Response(status, json={"accepted": 1, "duplicates": 0})


def _device(path: Path, service: Service, **options) -> DeviceQueue:
    client = httpx.Client(
        base_url="http://door.test", transport=httpx.MockTransport(service)
    )
    return DeviceQueue(path, "http://door.test", "key-1", client=client, **options)


def test_a_scan_is_on_disk_in_the_pages_form(tmp_path: Path) -> None:
    device = _device(tmp_path / "q.json", Service())

    key = device.scan("HC1:ABC DEF", AT)
    again = DeviceQueue(tmp_path / "q.json", "http://door.test", "key-1")

    assert key.startswith("cp-") and len(key) == 39
    assert again.pending() == [
        {
            "code": "HC1:ABC DEF",
            "idempotencyKey": key,
            "checkedInAt": "2026-03-10T04:00:05Z",
        }
    ]


def test_only_a_delivered_upload_empties_the_queue(tmp_path: Path) -> None:
    service = Service(503, None, 200)
    device = _device(tmp_path / "q.json", service)
    device.scan("HC1:A", AT)
    waits: list[float] = []

    attempts = device.drain(60, sleep=waits.append)

    assert [a.status for a in attempts] == [503, None, 200]
    assert waits == [2.0, 1.0]
    assert device.pending() == []
    # Every attempt carried the same scan under the same key.
    assert len({b["scans"][0]["idempotencyKey"] for b in service.bodies}) == 1


def test_an_upload_sends_at_most_its_batch(tmp_path: Path) -> None:
    service = Service(200, 200)
    device = _device(tmp_path / "q.json", service, batch=2)
    for letter in "ABC":
        device.scan(f"HC1:{letter}", AT)

    device.drain(60, sleep=lambda _: None)

    assert [len(b["scans"]) for b in service.bodies] == [2, 1]


def test_a_batch_beyond_the_pages_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1 to 500 scans"):
        DeviceQueue(tmp_path / "q.json", "http://door.test", "k", batch=501)


@pytest.mark.parametrize(
    "damage",
    [
        b'[{"code": "HC1:A", "idempotencyKey": "cp-1", "checked',
        b'{"code": "HC1:A"}',
        b'[{"code": "HC1:A", "idempotencyKey": 7, "checkedInAt": "2026-03-10"}]',
        b"",
    ],
    ids=["cut-short", "not-a-list", "entry-malformed", "empty"],
)
def test_a_damaged_queue_file_is_kept_aside_and_the_next_scan_is_queued(
    tmp_path: Path, damage: bytes
) -> None:
    path = tmp_path / "q.json"
    path.write_bytes(damage)
    device = _device(path, Service())

    key = device.scan("HC1:NEXT", AT)

    assert [entry["idempotencyKey"] for entry in device.pending()] == [key]
    aside = list(tmp_path.glob("q.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage
