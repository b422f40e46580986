"""Venues and check-ins, thin over :mod:`healthcode.checkins.services`.

An administrator registers a venue and receives its operator's key. The
operator fetches the venue's signed poster code and sees how many checked
in each hour, never who. Residents check in by scanning the poster; a door
device scans residents' codes. A door device is the venue's own key, or a
checkpoint key whose scope names the venue as ``venue:<id>`` (optionally
followed by ``:<gate>``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.orm import Session

from healthcode.accounts.errors import OutOfScope
from healthcode.accounts.services import ApiKeyKind, Permission, create_api_key
from healthcode.audit.services import append
from healthcode.checkins.errors import UnknownVenue
from healthcode.checkins.models import Venue
from healthcode.checkins.services import (
    CheckinItem,
    CheckinResult,
    Refusal,
    checkin_counts,
    record_checkins,
    register_venue,
)
from healthcode.checkins.venue_codes import DEFAULT_VALIDITY, venue_code_for
from healthcode.codes.errors import InvalidCode
from healthcode.codes.services import issuing_region_of, local_verifier
from healthcode.family.services import resident_of
from healthcode.service.deps import (
    AccountCaller,
    Db,
    KeyRef,
    Now,
    OfficialRef,
    Rt,
    api_key_of,
    official_with,
)
from healthcode.service.runtime import Runtime
from healthcode.service.schemas import (
    CheckinAnswer,
    CheckinRefusal,
    CountsAnswer,
    Day,
    DoorScansRequest,
    HourCount,
    ResidentCheckinRequest,
    VenueAnswer,
    VenueCodeAnswer,
    VenueRequest,
)

router = APIRouter(tags=["venues"])

Operator = Annotated[KeyRef, Depends(api_key_of(ApiKeyKind.VENUE))]
DoorDevice = Annotated[
    KeyRef, Depends(api_key_of(ApiKeyKind.VENUE, ApiKeyKind.CHECKPOINT))
]
Administrator = Annotated[
    OfficialRef, Depends(official_with(Permission.MANAGE_ACCOUNTS))
]


def _venue_answer(venue: Venue, key: str | None = None) -> VenueAnswer:
    return VenueAnswer(
        venue_id=venue.id,
        name=venue.name,
        address=venue.address,
        region_code=venue.region_code,
        venue_type=venue.venue_type,
        default_stay_minutes=venue.default_stay_minutes,
        created_at=venue.created_at,
        operator_key=key,
    )


def _venue_of(key: KeyRef) -> int:
    """The venue a door device stands at, from its key's scope."""
    scope = key.scope
    if key.kind == ApiKeyKind.CHECKPOINT.value:
        parts = scope.split(":")
        if len(parts) < 2 or parts[0] != "venue":
            raise OutOfScope(
                "This checkpoint key is not bound to a venue; a door device's key"
                " has the scope venue:<id> or venue:<id>:<gate>."
            )
        scope = parts[1]
    if not scope.isdigit() or not 1 <= int(scope) < 2**31:
        raise OutOfScope("The key's scope names no venue id.")
    return int(scope)


def _venue(session: Session, venue_id: int) -> Venue:
    venue = session.get(Venue, venue_id)
    if venue is None:
        raise UnknownVenue(f"No venue has the id {venue_id}.")
    return venue


def _checkin_answer(result: CheckinResult) -> CheckinAnswer:
    return CheckinAnswer(
        accepted=result.accepted,
        duplicates=result.duplicates,
        extended=result.extended,
        refused=[
            CheckinRefusal(
                index=refusal.index,
                idempotency_key=refusal.idempotency_key,
                code=refusal.code,
                message=refusal.message,
            )
            for refusal in sorted(result.refused, key=lambda r: r.index)
        ],
    )


def _record(
    rt: Runtime, session: Session, items: list[CheckinItem], now: datetime
) -> CheckinResult:
    return record_checkins(
        session,
        items,
        now=now,
        venue_keys=local_verifier(rt.codes.store),
        future_skew=rt.settings.future_skew,
        zone=rt.settings.tz,
    )


# First of this router's routes, since routes are matched in order.
@router.post(
    "/v1/checkpoints/checkins", response_model=CheckinAnswer, tags=["checkpoints"]
)
def door_scans(
    body: DoorScansRequest, device: DoorDevice, rt: Rt, session: Db, now: Now
) -> CheckinAnswer:
    """Record scans of residents' codes at a venue's door, queued or live.

    Each code is verified at the time it was scanned; a scan whose code is
    refused is listed with its reason and the others are recorded.
    """
    venue_id = _venue_of(device)
    _venue(session, venue_id)
    verifier = local_verifier(rt.codes.store)
    holder = rt.codes.holders()
    items: list[CheckinItem] = []
    bad: list[Refusal] = []
    positions: list[int] = []
    for index, scan in enumerate(body.scans):
        try:
            verified = verifier.verify(scan.code, scan.checked_in_at)
            resident_id = holder(verified.content)
        except InvalidCode as exc:
            bad.append(Refusal(index, scan.idempotency_key, exc.code, str(exc)))
            continue
        positions.append(index)
        items.append(
            CheckinItem(
                idempotency_key=scan.idempotency_key,
                venue_id=venue_id,
                resident_id=resident_id,
                checked_in_at=scan.checked_in_at,
                checked_out_at=scan.checked_out_at,
                source="checkpoint-scan",
                device_id=device.scope,
            )
        )
    result = _record(rt, session, items, now)
    # The service numbered the scans it was given; put the refusals back at
    # their places in the upload.
    result.refused = [
        Refusal(positions[r.index], r.idempotency_key, r.code, r.message)
        for r in result.refused
    ] + bad
    append(
        session,
        at=now,
        actor=device.actor,
        actor_role=device.kind,
        action="checkins.record",
        subject=f"venue:{venue_id}",
        details={
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "extended": result.extended,
            "refused": len(result.refused),
        },
    )
    return _checkin_answer(result)


@router.post(
    "/v1/officials/venues",
    response_model=VenueAnswer,
    status_code=status.HTTP_201_CREATED,
    tags=["officials"],
)
def add_venue(
    body: VenueRequest, official: Administrator, session: Db, now: Now
) -> VenueAnswer:
    """Register a venue and make its operator's key, which is shown this once."""
    venue = register_venue(
        session,
        name=body.name,
        address=body.address,
        region_code=body.region_code,
        venue_type=body.venue_type,
        now=now,
        default_stay_minutes=body.default_stay_minutes,
    )
    row, key = create_api_key(
        session,
        ApiKeyKind.VENUE.value,
        str(venue.id),
        now,
        label=f"operator of venue {venue.id}",
        created_by=official.id,
    )
    append(
        session,
        at=now,
        actor=official.actor,
        actor_role=official.role,
        action="venue.register",
        subject=f"venue:{venue.id}",
        details={"apiKeyId": row.id, "region": venue.region_code},
    )
    return _venue_answer(venue, key)


@router.get("/v1/venues/me", response_model=VenueAnswer)
def my_venue(operator: Operator, session: Db) -> VenueAnswer:
    """The operator's venue."""
    return _venue_answer(_venue(session, _venue_of(operator)))


@router.get("/v1/venues/me/code", response_model=VenueCodeAnswer)
def venue_code(operator: Operator, rt: Rt, session: Db, now: Now) -> VenueCodeAnswer:
    """The venue's signed poster code, valid for months; print it at the door."""
    venue = _venue(session, _venue_of(operator))
    region = issuing_region_of(venue.region_code, rt.codes.region)
    # The code service owns the policy of when a region's first key is made;
    # it is asked for the key rather than the key store directly.
    signing_key = rt.codes._signing_key(region, now)
    text = venue_code_for(session, venue.id, signing_key, now)
    return VenueCodeAnswer(
        text=text, valid_until=now.replace(microsecond=0) + DEFAULT_VALIDITY
    )


@router.get("/v1/venues/me/counts", response_model=CountsAnswer)
def counts(
    operator: Operator,
    rt: Rt,
    session: Db,
    now: Now,
    day: Annotated[Day | None, Query(description="Local day; today if absent.")] = None,
) -> CountsAnswer:
    """How many checked in in each hour of a day; never who."""
    venue_id = _venue_of(operator)
    chosen = day or now.astimezone(rt.settings.tz).date()
    hours = checkin_counts(session, venue_id, chosen, rt.settings.tz)
    return CountsAnswer(
        venue_id=venue_id,
        day=chosen.isoformat(),
        hours=[HourCount(hour=hour, checkins=count) for hour, count in hours],
    )


@router.post(
    "/v1/residents/me/checkins", response_model=CheckinAnswer, tags=["residents"]
)
def resident_checkin(
    body: ResidentCheckinRequest, caller: AccountCaller, rt: Rt, session: Db, now: Now
) -> CheckinAnswer:
    """Check in by scanning a venue's poster; a repeat scan extends the visit."""
    from healthcode.checkins.venue_codes import read_venue_code

    resident_id = resident_of(session, caller.id)
    at = body.checked_in_at or now
    code = read_venue_code(body.venue_code, local_verifier(rt.codes.store), at)
    item = CheckinItem(
        idempotency_key=body.idempotency_key,
        venue_id=code.venue_id,
        resident_id=resident_id,
        checked_in_at=at,
        checked_out_at=body.checked_out_at,
        source="resident-scan",
        venue_code=body.venue_code,
    )
    return _checkin_answer(_record(rt, session, [item], now))
