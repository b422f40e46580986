"""A door device's queue of scans, for devices that are not the scanner page.

The scanner page keeps its queue in the browser; a turnstile, a kiosk or a
gate controller that runs Python keeps the same queue here, in a file on
the device, and uploads it the same way:

* each scan is queued at once with its own idempotency key (``cp-`` and a
  random UUID) and the instant it was scanned, and the queue is written to
  disk (a whole new file moved into place) before :meth:`DeviceQueue.scan`
  returns, so a device that loses power loses no scan;
* an upload sends up to :data:`BATCH` scans in the page's form
  (``POST /v1/checkpoints/checkins`` with ``{"scans": [{"code",
  "idempotencyKey", "checkedInAt"}]}`` and the device's ``X-API-Key``);
* only a 2xx answer removes the scans it carried: each then has its outcome
  (recorded, a duplicate, or refused for good). Any other answer, and an
  answer that never arrives, keeps them; a 503's ``Retry-After`` says when to
  send again. Sending a batch again whose first sending was stored but
  whose answer was lost is harmless: the service counts its scans as
  duplicates.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import structlog

__all__ = ["BATCH", "DeviceQueue", "Upload"]

log = structlog.get_logger(__name__)

#: Scans sent in one upload, as the scanner page sends them.
BATCH = 500
_PATH = "/v1/checkpoints/checkins"


@dataclass(frozen=True)
class Upload:
    """What one upload attempt came to."""

    sent: int
    #: The HTTP status, or None when no answer arrived.
    status: int | None
    #: Seconds the service asked the device to wait, when it asked.
    retry_after: float | None = None
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class DeviceQueue:
    """Scans kept in ``path`` until the service at ``base_url`` has them."""

    def __init__(
        self,
        path: Path,
        base_url: str,
        api_key: str,
        *,
        batch: int = BATCH,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        if not 1 <= batch <= BATCH:
            raise ValueError(f"An upload carries 1 to {BATCH} scans, not {batch}.")
        self.path = path
        self.api_key = api_key
        self.batch = batch
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout)

    def pending(self) -> list[dict[str, str]]:
        """The scans not yet delivered, oldest first.

        A queue file that is not a list of scans in the page's form (written
        by something else, or damaged on the device's storage) is moved
        aside, whole, to ``<name>.damaged-<time>`` for someone to look at,
        and the queue starts again empty: refusing it would lose every scan
        made from then on.
        """
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        try:
            scans = orjson.loads(data)
        except orjson.JSONDecodeError:
            scans = None
        if isinstance(scans, list) and all(map(_well_formed, scans)):
            return scans
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.time_ns()}")
        os.replace(self.path, aside)
        log.warning("device_queue_damaged", path=str(self.path), kept=str(aside))
        return []

    def _save(self, scans: list[dict[str, str]]) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("wb") as handle:
            handle.write(orjson.dumps(scans))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)

    def scan(self, code: str, at: datetime | None = None) -> str:
        """Queue a scan of ``code`` made at ``at`` (now); return its key."""
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        key = f"cp-{uuid.uuid4()}"
        entry = {
            "code": code,
            "idempotencyKey": key,
            "checkedInAt": moment.isoformat().replace("+00:00", "Z"),
        }
        self._save([*self.pending(), entry])
        return key

    def upload(self) -> Upload:
        """Send the oldest batch once; drop it from the queue if it was delivered."""
        batch = self.pending()[: self.batch]
        if not batch:
            return Upload(0, 200)
        try:
            answer = self._client.post(
                _PATH, json={"scans": batch}, headers={"X-API-Key": self.api_key}
            )
        except httpx.HTTPError as exc:
            # No answer: the scans may or may not be stored; they are kept
            # and their keys make sending them again safe.
            log.info("device_upload_unanswered", error=type(exc).__name__)
            return Upload(len(batch), None)
        outcome = Upload(
            len(batch),
            answer.status_code,
            _seconds(answer.headers.get("retry-after")),
            _json(answer),
        )
        if outcome.delivered:
            sent = {entry["idempotencyKey"] for entry in batch}
            self._save([e for e in self.pending() if e["idempotencyKey"] not in sent])
        log.info(
            "device_upload",
            status=outcome.status,
            sent=outcome.sent,
            left=len(self.pending()),
        )
        return outcome

    def drain(
        self,
        seconds: float,
        *,
        pause: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[Upload]:
        """Upload until the queue is empty or ``seconds`` have passed.

        Between attempts the device waits what ``Retry-After`` asked, or
        ``pause`` seconds when the answer named no wait or none came.
        """
        deadline = time.monotonic() + seconds
        attempts = []
        while self.pending():
            attempt = self.upload()
            attempts.append(attempt)
            if attempt.delivered:
                continue
            wait = attempt.retry_after if attempt.retry_after is not None else pause
            if time.monotonic() + wait > deadline:
                break
            sleep(wait)
        return attempts

    def close(self) -> None:
        self._client.close()


def _well_formed(entry: Any) -> bool:
    return isinstance(entry, dict) and all(
        isinstance(entry.get(name), str)
        for name in ("code", "idempotencyKey", "checkedInAt")
    )


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        value = answer.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
