"""The server's daily jobs: partitions, retention, counts and seals; key rotation.

After that it refreshes the trust lists of the peer regions, so that their
codes stay trusted without an operator's hand (see docs/regions.md).

:func:`run_daily` does one day's work at the instant it is given: on
PostgreSQL it first creates the day partitions of check-ins and status
events for today and the week after (:mod:`healthcode.partitions`), so that
no insert waits in the default partition, then purges, which drops the
partitions of expired days.
:func:`start_daily_job` runs it inside the service, once a day at the local
time ``HEALTHCODE_DAILY_JOB_AT``, as a background task of the service's
lifespan; :func:`stop_daily_job` ends that task when the service stops.
Several service processes each run the job; running it twice in a day
purges nothing more, counts the same day again and adds a second head seal,
which is harmless.

:func:`run_rotation` is the job beside it: when the current data key is
older than ``HEALTHCODE_DATA_KEY_ROTATION_DAYS`` it makes a new one and
re-seals every sealed column in batches, and on any other day it finishes
a re-sealing that was interrupted. One process at a time does it, under a
lock file in the data key directory; the others skip that day's run.
:func:`start_rotation_job` runs it at the same local time as the daily job.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.partitions import ensure_upcoming_partitions
from healthcode.privacy.counts import count_day, day_end, record_counts
from healthcode.privacy.crypto import DataKeys
from healthcode.privacy.retention import PurgeReport, RetentionPolicy, purge
from healthcode.privacy.rotation import RotationReport, rotate_keys
from healthcode.privacy.seals import SealKeys, seal_head

__all__ = [
    "DailyReport",
    "next_run",
    "run_daily",
    "run_rotation",
    "rotation_lock",
    "start_daily_job",
    "start_rotation_job",
    "stop_daily_job",
]

log = structlog.get_logger(__name__)

# The longest the task sleeps in one go, so that a clock that jumps (or a
# test clock that is moved) is noticed within minutes.
_LONGEST_NAP = 600.0


@dataclass(frozen=True)
class DailyReport:
    """What one run of the daily job did."""

    purge: PurgeReport
    counted_day: date
    seal_id: int
    partitions_created: list[str] = field(default_factory=list)


def next_run(after: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The first instant after ``after`` at which the local clock reads ``at``."""
    local = after.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(after.tzinfo)


def run_daily(
    engine: Engine,
    now: datetime,
    policy: RetentionPolicy,
    keys: SealKeys,
    *,
    sign_in_file: Path | None = None,
) -> DailyReport:
    """Make the coming days' partitions, purge every kind by ``policy``,
    count yesterday, then seal the head."""
    with engine.begin() as connection:
        created = ensure_upcoming_partitions(connection, now, policy.zone)
    purged = purge(engine, now, policy, keys, sign_in_file=sign_in_file)
    yesterday = now.astimezone(policy.zone).date() - timedelta(days=1)
    with Session(engine) as session, session.begin():
        counts = count_day(session, day_end(yesterday, policy.zone))
        record_counts(session, {yesterday: counts})
        sealed = seal_head(session, now, keys)
        seal_id = sealed.id
    log.info(
        "daily_job_done",
        deleted=sum(purged.deleted.values()),
        problems=len(purged.problems),
        counted_day=yesterday.isoformat(),
        seal_id=seal_id,
        partitions_created=len(created),
    )
    return DailyReport(purged, yesterday, seal_id, created)


async def _daily_loop(
    clock: Callable[[], datetime],
    at: time,
    work: Callable[[datetime], Any],
    zone: ZoneInfo,
) -> None:
    due = next_run(clock(), at, zone)
    while True:
        now = clock()
        if now < due:
            await asyncio.sleep(min(_LONGEST_NAP, (due - now).total_seconds()))
            continue
        try:
            await asyncio.to_thread(work, now)
        except Exception as exc:  # noqa: BLE001
            # The job runs again tomorrow; a database error's text may quote
            # the values of the rows it failed on, so only its kind is logged.
            log.error("daily_job_failed", error=type(exc).__name__)
        due = next_run(max(now, due), at, zone)


def start_daily_job(runtime: Any) -> asyncio.Task[None] | None:
    """Start the daily job for a service ``runtime``; None when switched off.

    Call it from inside the service's lifespan, where an event loop runs.
    """
    from healthcode.privacy.config import get_privacy_settings

    privacy = get_privacy_settings()
    if not privacy.daily_job:
        return None
    settings = runtime.settings
    policy = RetentionPolicy.configured(settings)
    keys = SealKeys(privacy.data_key_dir)
    sign_in_file = (
        Path(settings.sign_in_file) if settings.sign_in_sender == "file" else None
    )

    def work(now: datetime) -> DailyReport:
        from healthcode.regions.services import refresh_peers

        try:
            return run_daily(
                runtime.engine, now, policy, keys, sign_in_file=sign_in_file
            )
        finally:
            refresh_peers(runtime.peers, now)

    loop = asyncio.get_running_loop()
    return loop.create_task(
        _daily_loop(runtime.clock, privacy.daily_time, work, policy.zone),
        name="healthcode-daily-job",
    )


@contextlib.contextmanager
def rotation_lock(directory: Path) -> Iterator[bool]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / "rotation.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_rotation(
    engine: Engine,
    keys: DataKeys,
    now: datetime,
    every: timedelta,
    *,
    batch: int = 1000,
) -> RotationReport | None:
    """Rotate when the current key is ``every`` old, else finish a re-sealing.

    None when there was nothing to do, or another process holds the lock.
    """
    with rotation_lock(keys.directory) as held:
        if not held:
            log.info("key_rotation_skipped", reason="another process rotates")
            return None
        due = now - keys.current_since() >= every
        if not due and keys.versions() == [keys.current]:
            return None
        report = rotate_keys(engine, keys, new_key=due, batch=batch)
    log.info(
        "key_rotation_done",
        version=report.version,
        resealed=sum(report.resealed.values()),
        retired=len(report.retired),
    )
    return report


def start_rotation_job(runtime: Any) -> asyncio.Task[None] | None:
    """Start the key rotation job for a service ``runtime``; None when off."""
    from healthcode.privacy.config import get_privacy_settings
    from healthcode.privacy.types import data_keys

    privacy = get_privacy_settings()
    if not privacy.daily_job or privacy.data_key_rotation_days == 0:
        return None
    every = timedelta(days=privacy.data_key_rotation_days)
    keys = data_keys()

    def work(now: datetime) -> RotationReport | None:
        return run_rotation(runtime.engine, keys, now, every)

    loop = asyncio.get_running_loop()
    return loop.create_task(
        _daily_loop(runtime.clock, privacy.daily_time, work, runtime.settings.tz),
        name="healthcode-key-rotation",
    )


async def stop_daily_job(task: asyncio.Task[None] | None) -> None:
    """End the daily job's task and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
