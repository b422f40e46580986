"""Checkpoints: verify a code online, look a person up by identity document.

A checkpoint verifies codes offline with the trust list; online, the
service also opens the code's subject reference and answers with the
holder's colour at this moment, which may be newer than the one a screen
code shows. A screen code of a peer region is verified against that
region's keys from its trust list and answered with the colour it shows,
since only its own region can open its subject reference. A person
without a phone is looked up by their document: the answer holds only the
colour and the masked name, each device may ask a few times a minute, and
every look-up is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from healthcode.accounts.services import ApiKeyKind
from healthcode.audit.services import append
from healthcode.codes.errors import StatusListNotHeld
from healthcode.codes.format import Purpose
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.identity.services import get_resident
from healthcode.regions.peers import region_name
from healthcode.regions.services import instance_verifier
from healthcode.service.deps import (
    KEY_SECURITY,
    Db,
    KeyRef,
    Now,
    Rt,
    api_key_of,
    hot_call,
)
from healthcode.service.routes.residents import document_of
from healthcode.service.runtime import Runtime
from healthcode.service.schemas import (
    LookupAnswer,
    LookupRequest,
    VerifyAnswer,
    VerifyRequest,
)
from healthcode.service.shapes import json_answer

router = APIRouter(prefix="/v1/checkpoints", tags=["checkpoints"])

Device = Annotated[KeyRef, Depends(api_key_of(ApiKeyKind.CHECKPOINT, ApiKeyKind.VENUE))]
Checkpoint = Annotated[KeyRef, Depends(api_key_of(ApiKeyKind.CHECKPOINT))]


@router.post("/verify", response_model=VerifyAnswer, openapi_extra=KEY_SECURITY)
async def verify(body: VerifyRequest, request: Request) -> VerifyAnswer | Response:
    """Verify a screen or paper code and give the holder's colour now.

    A refused code is answered 422 with the verifier's stable code
    (invalid_code, expired_code, unknown_key, revoked_key, ...).
    """
    # A hot path: the caller is read from the request (healthcode.service.deps).
    rt, now = hot_call(request)
    checked = await rt.hot.checkpoint_verify(
        request.headers.get("x-api-key") or "",
        body.code,
        now,
        ApiKeyKind.CHECKPOINT,
        ApiKeyKind.VENUE,
    )
    if checked is None:
        return await run_in_threadpool(_peer_code, body.code, rt, now)
    verified, view = checked
    content = verified.content
    answer = VerifyAnswer(
        valid=True,
        purpose="paper" if content.purpose is Purpose.PAPER else "screen",
        colour=view.colour,  # type: ignore[arg-type]
        code_colour=content.colour.value if content.colour else None,  # type: ignore[arg-type]
        masked_name=content.masked_name,
        region=content.region,
        region_name=region_name(content.region),
        valid_until=content.valid_until,
        as_of=view.as_of,
    )
    return json_answer(answer)


def _peer_code(text: str, rt: Runtime, now: datetime) -> VerifyAnswer:
    content = instance_verifier(rt.codes.store, rt.peers, now).verify(text, now).content
    if content.colour is None:
        raise StatusListNotHeld(
            f"A paper code of region {content.region} takes its colour from that"
            " region's status list, which this service does not hold; ask for"
            " the holder's screen code."
        )
    return VerifyAnswer(
        valid=True,
        purpose="screen",
        colour=content.colour.value,  # type: ignore[arg-type]
        code_colour=content.colour.value,  # type: ignore[arg-type]
        masked_name=content.masked_name,
        region=content.region,
        region_name=region_name(content.region),
        valid_until=content.valid_until,
        as_of=content.issued_at,
    )


@router.post("/lookup", response_model=LookupAnswer)
def lookup(
    body: LookupRequest, device: Checkpoint, rt: Rt, session: Db, now: Now
) -> LookupAnswer:
    """The colour and masked name of the person who carries the document."""
    rt.limiter.hit(
        "lookup",
        str(device.id),
        rt.settings.lookups_per_minute,
        timedelta(minutes=1),
        now,
    )
    resident: Resident = get_resident(session, document_of(body.document, rt, now))
    view = rt.cache.status(session, resident.id, now)
    append(
        session,
        at=now,
        actor=device.actor,
        actor_role="checkpoint",
        action="resident.lookup",
        subject=f"resident:{resident.id}",
        details={"checkpoint": device.scope, "colour": view.colour},
    )
    return LookupAnswer(
        colour=view.colour,  # type: ignore[arg-type]
        masked_name=mask_name(resident.name),
        as_of=view.as_of,
    )
