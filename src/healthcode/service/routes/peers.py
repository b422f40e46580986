"""Other regions: the published trust list, peers' queries, officials' queries.

``GET /v1/trust-list`` is public: it names public keys only. A peer's
instance asks ``POST /v1/peers/status`` with a request signed by its peer
key (see :mod:`healthcode.regions.signing`) and gets a signed answer of the
colour, masked name and times alone. An official of this instance asks a
peer through ``POST /v1/officials/peer-status``; the question is audited
here, whatever its outcome, and at the peer, with the official's reference
and the purpose.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session

from healthcode.accounts.services import Permission
from healthcode.audit.services import append
from healthcode.errors import HealthcodeError
from healthcode.identity.errors import UnknownResident
from healthcode.identity.names import mask_name
from healthcode.identity.services import get_resident
from healthcode.regions.calls import query_status
from healthcode.regions.errors import UnknownPeer
from healthcode.regions.peers import region_name
from healthcode.regions.services import (
    own_peer_key,
    peer_key_lookup,
    published_trust_list,
)
from healthcode.regions.signing import check_request, sign_answer
from healthcode.service.deps import Db, Now, OfficialRef, Rt, official_with
from healthcode.service.errors import UploadTooLarge
from healthcode.service.routes.residents import document_of
from healthcode.service.runtime import Runtime
from healthcode.service.schemas import (
    PeerQueryRequest,
    PeerStatusAnswer,
    PeerStatusRequest,
)

router = APIRouter(tags=["regions"])
officials = APIRouter(prefix="/v1/officials", tags=["officials"])

Searcher = Annotated[OfficialRef, Depends(official_with(Permission.SEARCH_RESIDENTS))]


#: A peer's query is a document, an official's reference and a purpose: a
#: few hundred bytes. The route is open to anyone until the signature is
#: checked, so a body is read no further than this.
MAX_QUERY_BYTES = 65536


async def raw_body(request: Request) -> bytes:
    # The signature covers the body's digest, so the bytes are read as sent.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_QUERY_BYTES:
            raise UploadTooLarge(
                f"A peer query is at most {MAX_QUERY_BYTES} bytes; this one is larger."
            )
    return bytes(body)


RawBody = Annotated[bytes, Depends(raw_body)]


@router.get("/v1/trust-list", response_class=Response)
def trust_list(rt: Rt, now: Now) -> Response:
    """This instance's signed trust list: its keys and its peers' code keys."""
    document = published_trust_list(rt.codes.store, rt.peers, now, rt.settings.region)
    return Response(document, media_type="application/json")


def _audit_apart(rt: Runtime, now: datetime, **entry: Any) -> None:
    # A refused or failed query is still a query: it is audited in its own
    # transaction, since the request's own rolls back with the error.
    with Session(rt.engine) as session, session.begin():
        append(session, at=now, **entry)


@router.post("/v1/peers/status", response_class=Response)
def peer_status(
    request: Request, body: RawBody, rt: Rt, session: Db, now: Now
) -> Response:
    """A peer region's question about a resident of this one, signed by its key.

    The answer is a JSON :class:`PeerStatusAnswer`, signed by this
    instance's peer key in the same way. Refusals: 401 (unsigned, forged,
    stale or replayed), 403 (not a peer), 404 (no such resident).
    """
    here = rt.settings.region
    if here is None:
        raise UnknownPeer(
            "This instance serves no configured region, so it has no peers."
        )
    caller = check_request(
        request.headers,
        request.method,
        request.url.path,
        body,
        here=here,
        keys=peer_key_lookup(rt.peers, now),
        nonces=rt.store,
        now=now,
    )
    own_key = own_peer_key(rt.codes.store, here, now)
    rt.limiter.hit(
        "peer-query",
        caller.region,
        rt.settings.peer_queries_per_minute,
        timedelta(minutes=1),
        now,
    )
    try:
        query = PeerStatusRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    audit = {
        "actor": f"peer:{caller.region}",
        "actor_role": "peer",
        "action": "peer.status_query",
        "purpose": query.purpose,
    }
    details = {"official": query.official, "query": caller.nonce}
    try:
        resident = get_resident(session, document_of(query.document, rt, now))
    except UnknownResident:
        outcome = {"outcome": UnknownResident.code}
        _audit_apart(rt, now, **audit, details={**details, **outcome})
        raise
    view = rt.cache.status(session, resident.id, now)
    append(
        session,
        at=now,
        subject=f"resident:{resident.id}",
        details={**details, "outcome": view.colour},
        **audit,
    )
    answer = PeerStatusAnswer(
        region=own_key.record.region,
        region_name=region_name(own_key.record.region),
        colour=view.colour,  # type: ignore[arg-type]
        masked_name=mask_name(resident.name),
        as_of=view.as_of,
        next_change_at=view.changes_at,
        next_colour=view.changes_to,  # type: ignore[arg-type]
    )
    content = orjson.dumps(answer.model_dump(mode="json", by_alias=True))
    headers = sign_answer(own_key, caller.region, 200, caller.nonce, content, now)
    return Response(content, media_type="application/json", headers=headers)


@officials.post("/peer-status", response_model=PeerStatusAnswer)
def ask_peer(
    body: PeerQueryRequest, official: Searcher, rt: Rt, session: Db, now: Now
) -> PeerStatusAnswer:
    """Ask a peer region for the status of one of its residents.

    The purpose goes to the peer with this official's reference (never
    their name), and both regions audit the query under its nonce. A peer
    that is down or slow is answered 504, one that refuses 502.
    """
    document = document_of(body.document, rt, now)
    subject = f"peer:{body.region}"
    try:
        peer = rt.peers.require(body.region)
        status = query_status(
            peer=peer,
            key=own_peer_key(rt.codes.store, rt.settings.region, now),
            document={
                "kind": document.kind.value,
                "number": document.number,
                "country": document.country,
            },
            official=official.actor,
            purpose=body.purpose,
            now=now,
            timeout=rt.settings.peer_timeout_seconds,
        )
    except HealthcodeError as exc:
        # A query refused before it was signed (no such peer) has no nonce.
        sent = {"query": exc.query} if hasattr(exc, "query") else {}
        _audit_apart(
            rt,
            now,
            actor=official.actor,
            actor_role=official.role,
            action="peer.status_query",
            subject=subject,
            purpose=body.purpose,
            details={**sent, "outcome": exc.code},
        )
        raise
    official.audit(
        session,
        now,
        "peer.status_query",
        subject,
        body.purpose,
        query=status.query,
        outcome=status.colour,
    )
    return PeerStatusAnswer(
        region=status.region,
        region_name=region_name(status.region),
        colour=status.colour,  # type: ignore[arg-type]
        masked_name=status.masked_name,
        as_of=status.as_of,
        next_change_at=status.next_change_at,
        next_colour=status.next_colour,  # type: ignore[arg-type]
        query=status.query,
    )
