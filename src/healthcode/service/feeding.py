"""Records that arrive over HTTP go through the feed importer, like files do.

A department's upload, an official's risk areas sent as JSON and a
resident's daily declaration all become a feed file in a private temporary
folder and are handed to :func:`healthcode.feeds.services.import_feed`, so
that they are checked, matched, written and recoloured exactly as the
command line does it, and answered with the same report.

An import by anyone but the resident concerned is audited. The entry is
appended inside the import's own transaction when the import recolours
anyone (the importer's recolour step is where its transaction can be
reached), and in a transaction of its own right after the import otherwise.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session

from healthcode.audit.services import append
from healthcode.feeds.services import ImportReport, import_feed
from healthcode.service.errors import UploadTooLarge
from healthcode.service.runtime import Runtime
from healthcode.status.services import recolor_residents

__all__ = ["Actor", "import_file", "import_rows", "report_body", "save_upload"]


@dataclass(frozen=True)
class Actor:
    """Who sends the records, for the audit log; None for a resident's own."""

    actor: str
    role: str | None = None


def _details(report: ImportReport, import_id: int | None) -> dict[str, Any]:
    return {
        "kind": report.kind,
        "department": report.department,
        "importId": import_id,
        "committed": report.committed,
        "read": report.read,
        "rejected": report.rejected,
    }


def import_file(
    rt: Runtime,
    kind: str,
    path: Path,
    now: datetime,
    *,
    actor: Actor | None,
    department: str | None = None,
    skip_bad: bool = False,
    zone: Any = None,
) -> ImportReport:
    """Import one feed file and audit it when ``actor`` is given."""
    audited = False

    def recolor(session: Session, ids: set[int], at: datetime, cause: str) -> int:
        nonlocal audited
        changed = recolor_residents(session, ids, at, cause)
        if actor is not None:
            import_id = int(cause.split(":", 1)[1]) if ":" in cause else None
            append(
                session,
                at=at,
                actor=actor.actor,
                actor_role=actor.role,
                action=f"feed.{kind}",
                details={
                    "kind": kind,
                    "importId": import_id,
                    "residents": len(ids),
                    "statusesChanged": changed,
                },
            )
            audited = True
        return changed

    report = import_feed(
        rt.engine,
        kind,
        path,
        now=now,
        zone=zone or rt.settings.tz,
        future_skew=rt.settings.future_skew,
        skip_bad=skip_bad,
        department=department,
        recolor=recolor,
    )
    if actor is not None and not audited:
        with Session(rt.engine) as session, session.begin():
            append(
                session,
                at=now,
                actor=actor.actor,
                actor_role=actor.role,
                action=f"feed.{kind}",
                details=_details(report, report.import_id),
            )
    return report


def import_rows(
    rt: Runtime,
    kind: str,
    rows: Iterable[dict[str, Any]],
    now: datetime,
    *,
    actor: Actor | None,
    department: str | None = None,
    file_name: str = "request.ndjson",
) -> ImportReport:
    """Import rows given as dictionaries; line n of the report is row n."""
    with tempfile.TemporaryDirectory(prefix="healthcode-feed-") as folder:
        path = Path(folder) / file_name
        with path.open("wb") as out:
            for row in rows:
                out.write(orjson.dumps(row) + b"\n")
        return import_file(rt, kind, path, now, actor=actor, department=department)


async def save_upload(chunks: AsyncIterator[bytes], path: Path, limit: int) -> int:
    """Write a request body to ``path``, refusing it past ``limit`` bytes."""
    size = 0
    with path.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(
                    f"The file is larger than the {limit} bytes accepted; split it"
                    " into smaller files."
                )
            out.write(chunk)
    return size


def report_body(report: ImportReport) -> dict[str, Any]:
    """The import report as the command line prints it, as JSON."""
    return {
        "kind": report.kind,
        "fileName": report.file_name,
        "department": report.department,
        "mode": report.mode,
        "read": report.read,
        "imported": report.imported,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "statusesChanged": report.statuses_changed,
        "committed": report.committed,
        "importId": report.import_id,
        "errors": [
            {"line": error.line, "field": error.field, "reason": error.reason}
            for error in report.errors
        ],
    }
