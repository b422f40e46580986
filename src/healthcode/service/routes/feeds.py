"""Department feeds over HTTP, and officials' risk areas.

A department system sends the same files it would hand to
``healthcode import``, with a department key that lists the feed kinds it
may send; the answer is the importer's report. Officials declare, change and
end risk areas with a JSON body or a file; both go through the same
importer.
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator
from starlette.concurrency import run_in_threadpool

from healthcode.accounts.errors import OutOfScope
from healthcode.accounts.services import ApiKeyKind, Permission
from healthcode.feeds.errors import UnknownFeedFormat
from healthcode.feeds.formats import FEED_KINDS
from healthcode.feeds.services import ImportReport
from healthcode.service.deps import (
    KeyRef,
    Now,
    OfficialRef,
    Rt,
    api_key_of,
    official_with,
)
from healthcode.service.errors import FeedRefused
from healthcode.service.feeding import (
    Actor,
    import_file,
    import_rows,
    report_body,
    save_upload,
)
from healthcode.service.runtime import Runtime
from healthcode.service.schemas import ImportAnswer, RiskAreasRequest

router = APIRouter(tags=["feeds"])

FeedKindName = StrEnum(
    "FeedKindName", {kind.replace("-", "_"): kind for kind in FEED_KINDS}
)  # type: ignore[misc]

_SUFFIXES = {
    "text/csv": ".csv",
    "application/csv": ".csv",
    "application/x-ndjson": ".ndjson",
    "application/ndjson": ".ndjson",
    "application/jsonl": ".ndjson",
}

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The feed file as sent to `healthcode import`: CSV or NDJSON.",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a time zone name such as Asia/Shanghai") from None
    return value


Zone = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Zone of times without an offset; default HEALTHCODE_ZONE.",
    ),
    AfterValidator(_zone),
]
SkipBad = Annotated[
    bool,
    Query(
        alias="skipBad",
        description="Write the good rows and report the bad ones, instead of"
        " refusing the whole file for one bad row.",
    ),
]


def _suffix(request: Request) -> str:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    suffix = _SUFFIXES.get(given)
    if suffix is None:
        raise UnknownFeedFormat(
            "The upload's Content-Type is neither text/csv nor application/x-ndjson."
        )
    return suffix


def _answer(report: ImportReport) -> ImportAnswer:
    body = report_body(report)
    if not report.committed:
        first = report.errors[0] if report.errors else None
        where = f" (line {first.line}: {first.reason})" if first else ""
        raise FeedRefused(
            f"The file was refused and nothing was written{where}; correct the rows"
            " listed in report.errors, or send it again with skipBad=true.",
            body,
        )
    return ImportAnswer.model_validate(body)


async def _upload(
    request: Request,
    rt: Runtime,
    kind: str,
    now: Any,
    actor: Actor,
    department: str | None,
    skip_bad: bool,
    zone: str | None,
) -> ImportAnswer:
    suffix = _suffix(request)
    with tempfile.TemporaryDirectory(prefix="healthcode-upload-") as folder:
        path = Path(folder) / f"{kind}-upload{suffix}"
        await save_upload(request.stream(), path, rt.settings.max_upload_bytes)
        report = await run_in_threadpool(
            import_file,
            rt,
            kind,
            path,
            now,
            actor=actor,
            department=department,
            skip_bad=skip_bad,
            zone=ZoneInfo(zone) if zone else None,
        )
    return _answer(report)


@router.post("/v1/feeds/{kind}", response_model=ImportAnswer, openapi_extra=UPLOAD_BODY)
async def upload_feed(
    kind: FeedKindName,  # type: ignore[valid-type]
    request: Request,
    rt: Rt,
    now: Now,
    key: Annotated[KeyRef, Depends(api_key_of(ApiKeyKind.DEPARTMENT))],
    zone: Zone = None,
    skip_bad: SkipBad = False,
) -> ImportAnswer:
    """Import a department's feed file; the answer is the import report.

    The key must list the kind among the feeds it may send. The records are
    recorded under the key's department. One file is one transaction: by
    default one bad row refuses the file (422, with every fault listed).
    """
    name = kind.value
    if name not in key.feed_kinds:
        raise OutOfScope(
            f"This key may send {', '.join(key.feed_kinds)}; it may not send {name}."
        )
    actor = Actor(key.actor, "department")
    return await _upload(request, rt, name, now, actor, key.scope, skip_bad, zone)


RiskOfficial = Annotated[
    OfficialRef, Depends(official_with(Permission.DECLARE_RISK_AREAS))
]


@router.post(
    "/v1/officials/risk-areas", response_model=ImportAnswer, tags=["officials"]
)
def declare_risk_areas(
    body: RiskAreasRequest, official: RiskOfficial, rt: Rt, now: Now
) -> ImportAnswer:
    """Declare, change or end risk areas; row n of the report is area n.

    Sending an area again under its record id changes it; giving it an end
    time ends it. Residents who stayed there are recoloured at once.
    """
    rows = [
        {
            "record_id": area.record_id,
            "code": area.code,
            "name": area.name,
            "level": area.level,
            "starts_at": area.starts_at.isoformat(),
            "ends_at": area.ends_at.isoformat() if area.ends_at else None,
        }
        for area in body.areas
    ]
    actor = Actor(official.actor, official.role)
    report = import_rows(rt, "risk-areas", rows, now, actor=actor)
    return _answer(report)


@router.post(
    "/v1/officials/risk-areas/file",
    response_model=ImportAnswer,
    tags=["officials"],
    openapi_extra=UPLOAD_BODY,
)
async def upload_risk_areas(
    request: Request,
    official: RiskOfficial,
    rt: Rt,
    now: Now,
    zone: Zone = None,
    skip_bad: SkipBad = False,
) -> ImportAnswer:
    """Declare risk areas from a risk-areas feed file, as the command line would."""
    actor = Actor(official.actor, official.role)
    return await _upload(request, rt, "risk-areas", now, actor, None, skip_bad, zone)
