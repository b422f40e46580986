"""Forgetting on time: each kind of personal data purged after its period.

========================  ==========================  ===========================
kind                      kept for                    purged by
========================  ==========================  ===========================
check-ins (and the venue  21 days, in local days      :func:`purge_checkins` of
exposures they made)                                  the check-in package
declarations              14 days, in local days      :func:`purge_declarations`
sign-in codes             their life, minutes         the store's expiry;
                                                      :func:`purge_sign_in_file`
audit entries             a configured period         :func:`purge_audit`, behind
                                                      a signed purge seal
lab results               90 days from the sample     :func:`purge_records`
vaccinations              1095 days from the dose     :func:`purge_records`
cases (and the exposures  180 days from the release;  :func:`purge_records`
traced from them)         never while not released
quarantine orders         90 days from the end;       :func:`purge_records`
                          never while not ended
journeys                  60 days from the arrival    :func:`purge_records`
========================  ==========================  ===========================

Each period of an authoritative record is configured, and refused at
start-up when it is shorter than :func:`record_floor`: the longest lookback
of the active rule set or of tracing, plus a margin. A record a rule could
still read is never purged, so purging changes no colour.

Days are counted in the region's zone, as the check-in package counts them:
a record is kept on the day it was made and the period's days after it, and
goes on the next. Every function takes the clock as ``now``.

Sign-in codes never reach the database: the store keeps each for its life
and forgets it then (Redis expires the key; the in-process store drops it
when touched or swept). The development sender that writes codes to a file
keeps them until :func:`purge_sign_in_file` drops the expired ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.audit.models import AuditEntry, AuditHead
from healthcode.audit.services import append
from healthcode.checkins.models import Exposure
from healthcode.checkins.services import purge_checkins, retention_cutoff
from healthcode.checkins.tracing import SAMPLE_LOOKBACK
from healthcode.config import Settings
from healthcode.errors import ConfigurationError
from healthcode.feeds.models import (
    CaseReport,
    Declaration,
    LabResult,
    QuarantineOrder,
    TravelSegment,
    Vaccination,
)
from healthcode.feeds.services import RISK_LOOKBACK
from healthcode.privacy.models import AuditSeal
from healthcode.privacy.seals import SealKeys, seal, verify_audit

__all__ = [
    "KINDS",
    "RECORD_KINDS",
    "AuditPurge",
    "PurgeReport",
    "RetentionPolicy",
    "purge",
    "purge_audit",
    "purge_declarations",
    "purge_records",
    "record_floor",
    "purge_sign_in_file",
]

log = structlog.get_logger(__name__)

#: The kinds of authoritative records purged by retention, with the table,
#: the column their age is counted from, and the setting of their period.
RECORD_KINDS: dict[str, tuple[Any, str, str]] = {
    "lab-results": (LabResult, "sampled_at", "lab_result_retention_days"),
    "vaccinations": (Vaccination, "administered_at", "vaccination_retention_days"),
    "cases": (CaseReport, "released_at", "case_retention_days"),
    "quarantine-orders": (
        QuarantineOrder,
        "ends_at",
        "quarantine_order_retention_days",
    ),
    "journeys": (TravelSegment, "arr_at", "journey_retention_days"),
}

#: The kinds of data purged by retention, in the order they are purged.
KINDS = ("checkins", "declarations", "sign-in-codes", "audit", *RECORD_KINDS)

#: Added to the longest lookback to give the shortest period a record may be
#: kept: a record late from its department, or a rule set changed to look a
#: little further back, still finds what it needs.
RECORD_MARGIN = timedelta(days=7)

_DEFAULT_RECORDS = {
    "lab-results": timedelta(days=90),
    "vaccinations": timedelta(days=1095),
    "cases": timedelta(days=180),
    "quarantine-orders": timedelta(days=90),
    "journeys": timedelta(days=60),
}


def record_floor(rule_lookback: timedelta) -> timedelta:
    """The shortest period any authoritative record may be kept.

    The rules look back ``rule_lookback`` (see
    :attr:`healthcode.rules.ruleset.RuleSet.lookback`); tracing reads the
    tests of the last 14 days before a diagnosis, and a risk area declared
    today reaches journeys of the 14 days before it started.
    """
    return max(rule_lookback, SAMPLE_LOOKBACK, RISK_LOOKBACK) + RECORD_MARGIN


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of data is kept, and the zone days are counted in."""

    zone: ZoneInfo
    checkins: timedelta = timedelta(days=21)
    declarations: timedelta = timedelta(days=14)
    sign_in_codes: timedelta = timedelta(minutes=5)
    audit: timedelta = timedelta(days=730)
    records: dict[str, timedelta] = field(
        default_factory=lambda: dict(_DEFAULT_RECORDS)
    )

    @classmethod
    def configured(cls, settings: Settings | None = None) -> RetentionPolicy:
        """The policy the ``HEALTHCODE_*`` settings describe.

        ``settings`` gives the zone and the life of sign-in codes (default:
        the environment's); the other periods are always the environment's.
        """
        from healthcode.checkins.config import get_checkin_settings
        from healthcode.config import get_settings
        from healthcode.privacy.config import get_privacy_settings
        from healthcode.status.services import active_rule_set

        settings = settings or get_settings()
        privacy = get_privacy_settings()
        records = privacy.record_retention
        floor = record_floor(active_rule_set().lookback)
        for kind, period in records.items():
            if period < floor:
                variable = f"HEALTHCODE_{RECORD_KINDS[kind][2].upper()}"
                raise ConfigurationError(
                    f"{variable} is {period.days} days, shorter than the"
                    f" {floor.days} days that the active rule set and tracing"
                    " may still read such records (their longest lookback plus"
                    f" {RECORD_MARGIN.days} days); set it to {floor.days} or more."
                )
        return cls(
            zone=settings.tz,
            checkins=get_checkin_settings().retention,
            declarations=privacy.declaration_retention,
            sign_in_codes=timedelta(minutes=settings.sign_in_code_minutes),
            audit=privacy.audit_retention,
            records=records,
        )


@dataclass
class PurgeReport:
    """What one purge deleted, kind by kind, and what it could not do."""

    at: datetime
    deleted: dict[str, int] = field(default_factory=dict)
    cutoffs: dict[str, datetime] = field(default_factory=dict)
    seal_id: int | None = None
    problems: list[str] = field(default_factory=list)


def purge_declarations(
    session: Session, now: datetime, retention: timedelta, zone: ZoneInfo
) -> int:
    """Delete declarations made before the period's first kept day."""
    cutoff = retention_cutoff(now, retention, zone)
    deleted = session.execute(
        sa.delete(Declaration).where(Declaration.declared_at < cutoff),
        execution_options={"synchronize_session": False},
    ).rowcount
    log.info("declarations_purged", deleted=deleted, cutoff=cutoff.isoformat())
    return int(deleted or 0)


def purge_records(
    session: Session, kind: str, now: datetime, retention: timedelta, zone: ZoneInfo
) -> int:
    """Delete the records of ``kind`` whose age passed ``retention``.

    A case not yet released and an order not yet ended have no age: they
    are never purged, however old. The exposures traced from a purged case
    go with it.
    """
    model, column_name, _ = RECORD_KINDS[kind]
    column = getattr(model, column_name)
    cutoff = retention_cutoff(now, retention, zone)
    old = sa.and_(column.is_not(None), column < cutoff, column <= now)
    if kind == "cases":
        traced = sa.select(CaseReport.id).where(old)
        session.execute(
            sa.delete(Exposure).where(Exposure.case_report_id.in_(traced)),
            execution_options={"synchronize_session": False},
        )
    deleted = session.execute(
        sa.delete(model).where(old), execution_options={"synchronize_session": False}
    ).rowcount
    log.info("records_purged", kind=kind, deleted=deleted, cutoff=cutoff.isoformat())
    return int(deleted or 0)


def purge_sign_in_file(path: Path, now: datetime) -> int:
    """Drop the codes whose life has ended from a file sender's file.

    Known shortcoming: a code the server appends between this read and the
    rename is lost from the file (the code itself still works: the store
    holds it). The file sender is for development, where that costs a
    developer one look at the console instead.
    """
    if not path.exists():
        return 0
    kept: list[bytes] = []
    dropped = 0
    for line in path.read_bytes().splitlines():
        try:
            until = datetime.fromisoformat(orjson.loads(line)["validUntil"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            # A line that names no life cannot be shown to be alive.
            dropped += 1
            continue
        if until.tzinfo is not None and until > now:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        temporary = path.with_name(path.name + ".purging")
        temporary.write_bytes(b"".join(line + b"\n" for line in kept))
        os.replace(temporary, path)
    log.info("sign_in_codes_purged", deleted=dropped)
    return dropped


@dataclass(frozen=True)
class AuditPurge:
    """What a purge of the audit log did: entries gone, the seal, or why not."""

    deleted: int = 0
    seal: AuditSeal | None = None
    problem: str | None = None


def purge_audit(
    session: Session,
    now: datetime,
    retention: timedelta,
    zone: ZoneInfo,
    keys: SealKeys,
) -> AuditPurge:
    """Delete the oldest entries of the audit log behind a signed purge seal.

    Only a run of entries from the start of what is kept can go, so the
    chain stays whole: the entries before the first one made on or after
    the cutoff day. The log is checked first, and nothing is purged from a
    broken log, since that would destroy the evidence of what broke it.
    """
    cutoff = retention_cutoff(now, retention, zone)
    first_recent = session.scalar(
        sa.select(sa.func.min(AuditEntry.id)).where(AuditEntry.at >= cutoff)
    )
    if first_recent is None:
        head = session.get(AuditHead, 1)
        last_old = int(head.last_id) if head is not None else 0
    else:
        last_old = int(first_recent) - 1
    purged_before = session.scalar(
        sa.select(sa.func.max(AuditSeal.last_id)).where(AuditSeal.kind == "purge")
    )
    if last_old <= int(purged_before or 0):
        return AuditPurge()
    report = verify_audit(session, keys)
    if not report.intact:
        log.warning("audit_purge_refused", first_broken=report.first_broken)
        return AuditPurge(problem=report.problem)
    entry = session.get(AuditEntry, last_old)
    if entry is None:
        return AuditPurge(problem=f"Entry {last_old} is missing.")
    sealed = seal(session, "purge", last_old, entry.hash, now, keys)
    deleted = session.execute(
        sa.delete(AuditEntry).where(AuditEntry.id <= last_old),
        execution_options={"synchronize_session": False},
    ).rowcount
    log.info("audit_purged", deleted=deleted, seal_id=sealed.id, last_id=last_old)
    return AuditPurge(int(deleted or 0), sealed)


def purge(
    engine: Engine,
    now: datetime,
    policy: RetentionPolicy,
    keys: SealKeys,
    *,
    kinds: Iterable[str] = KINDS,
    sign_in_file: Path | None = None,
    actor: str = "system",
) -> PurgeReport:
    """Purge each of ``kinds`` by ``policy`` and audit what went.

    The audit log goes first, in a transaction of its own, so that the entry
    that records this purge is one of the kept ones. The other kinds go
    together in a second transaction with that entry.
    """
    chosen = [kind for kind in KINDS if kind in set(kinds)]
    report = PurgeReport(at=now)
    zone = policy.zone
    if "audit" in chosen:
        report.cutoffs["audit"] = retention_cutoff(now, policy.audit, zone)
        with Session(engine) as session, session.begin():
            done = purge_audit(session, now, policy.audit, zone, keys)
            report.seal_id = done.seal.id if done.seal is not None else None
        report.deleted["audit"] = done.deleted
        if done.problem:
            report.problems.append(
                f"Audit entries were not purged: {done.problem} Check the log"
                " with `healthcode audit verify`."
            )
    with Session(engine) as session, session.begin():
        if "checkins" in chosen:
            report.cutoffs["checkins"] = retention_cutoff(now, policy.checkins, zone)
            report.deleted["checkins"] = purge_checkins(
                session, now, policy.checkins, zone=zone
            )
        if "declarations" in chosen:
            report.cutoffs["declarations"] = retention_cutoff(
                now, policy.declarations, zone
            )
            report.deleted["declarations"] = purge_declarations(
                session, now, policy.declarations, zone
            )
        for record_kind, period in policy.records.items():
            if record_kind in chosen:
                report.cutoffs[record_kind] = retention_cutoff(now, period, zone)
                report.deleted[record_kind] = purge_records(
                    session, record_kind, now, period, zone
                )
        if "sign-in-codes" in chosen:
            report.deleted["sign-in-codes"] = (
                purge_sign_in_file(sign_in_file, now) if sign_in_file else 0
            )
        append(
            session,
            at=now,
            actor=actor,
            action="privacy.purge",
            details={
                "deleted": dict(report.deleted),
                "sealId": report.seal_id,
            },
        )
    return report
