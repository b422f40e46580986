"""Calls from this instance to a peer's: its trust list, a visitor's status.

Every failure of the other side becomes a domain error with a sentence an
official can act on: the peer did not answer in time, could not be reached,
refused the query (its code and message are relayed), or answered with
something that is not a signed answer of that peer. Nothing of the visitor
is logged; the log names the region, the outcome and the time taken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import structlog

from healthcode.codes.keys import SigningKey
from healthcode.errors import HealthcodeError
from healthcode.identity.errors import UnknownResident
from healthcode.regions.errors import InvalidPeerAnswer, PeerRefused, PeerUnreachable
from healthcode.regions.peers import Peer, within
from healthcode.regions.signing import NONCE_HEADER, check_answer, sign_request

__all__ = [
    "STATUS_PATH",
    "TRUST_LIST_PATH",
    "PeerStatus",
    "fetch_trust_list",
    "query_status",
]

log = structlog.get_logger(__name__)

STATUS_PATH = "/v1/peers/status"
TRUST_LIST_PATH = "/v1/trust-list"
_COLOURS = frozenset({"green", "grey", "yellow", "red"})
#: A trust list of a few hundred keys is tens of kilobytes; nothing a peer
#: sends needs more than this.
MAX_ANSWER_BYTES = 1_000_000


@dataclass(frozen=True)
class PeerStatus:
    """What a peer tells about one of its residents, and the query's nonce."""

    region: str
    colour: str
    masked_name: str
    as_of: datetime
    next_change_at: datetime | None
    next_colour: str | None
    query: str


def _named(peer: Peer) -> str:
    return (
        f"region {peer.region} ({peer.name})" if peer.name else f"region {peer.region}"
    )


def _send(
    peer: Peer,
    request: httpx.Request,
    timeout: float,
    transport: httpx.BaseTransport | None,
) -> httpx.Response:
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            answer = client.send(request, stream=True)
            try:
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    # The timeout bounds each read; a peer that drips its
                    # answer a byte at a time is held to it for the whole.
                    if time.perf_counter() - started > timeout:
                        raise httpx.ReadTimeout("answer too slow", request=request)
                    if len(body) > MAX_ANSWER_BYTES:
                        raise InvalidPeerAnswer(
                            f"The instance of {_named(peer)} sent an answer larger"
                            f" than {MAX_ANSWER_BYTES} bytes."
                        )
            finally:
                answer.close()
    except httpx.TimeoutException:
        log.warning("peer_call_failed", region=peer.region, outcome="timeout")
        raise PeerUnreachable(
            f"The instance of {_named(peer)} did not answer within {timeout:g}"
            " seconds; try again later."
        ) from None
    except httpx.HTTPError as exc:
        log.warning("peer_call_failed", region=peer.region, outcome=type(exc).__name__)
        raise PeerUnreachable(
            f"The instance of {_named(peer)} cannot be reached at {peer.url}"
            f" ({type(exc).__name__}); it may be down."
        ) from None
    log.info(
        "peer_call",
        region=peer.region,
        path=request.url.path,
        status=answer.status_code,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    # The body was read, decoded, with a bound; the answer keeps its status
    # and headers but those that described the encoded body.
    headers = [
        (name, value)
        for name, value in answer.headers.items()
        if name.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(answer.status_code, headers=headers, content=bytes(body))


def fetch_trust_list(
    peer: Peer, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
) -> bytes:
    """The trust list the peer publishes now, unchecked: the caller checks it."""
    request = httpx.Request("GET", peer.url + TRUST_LIST_PATH)
    answer = _send(peer, request, timeout, transport)
    if answer.status_code != 200:
        raise PeerRefused(
            f"The instance of {_named(peer)} answered {answer.status_code} for its"
            f" trust list at {peer.url}{TRUST_LIST_PATH}."
        )
    return answer.content


def _refusal(peer: Peer, answer: httpx.Response) -> Exception:
    try:
        body = answer.json()
        code = str(body.get("code"))[:64]
        message = str(body.get("message"))[:300]
    except (ValueError, AttributeError):
        code, message = f"http_{answer.status_code}", "no readable reason"
    if code == "unknown_resident":
        return UnknownResident(
            f"{_named(peer).capitalize()} has no resident with that document."
        )
    return PeerRefused(
        f"The instance of {_named(peer)} refused the query ({code}): {message}"
    )


def query_status(
    *,
    peer: Peer,
    key: SigningKey,
    document: dict[str, str],
    official: str,
    purpose: str,
    now: datetime,
    timeout: float,
    transport: httpx.BaseTransport | None = None,
) -> PeerStatus:
    """Ask the peer for the status of its resident who holds ``document``.

    An error raised once the request is signed carries the request's nonce
    as ``query``, whether the peer refused, did not answer or answered badly.
    """
    body = orjson.dumps(
        {"document": document, "official": official, "purpose": purpose}
    )
    headers = sign_request(key, peer.region, "POST", STATUS_PATH, body, now)
    headers["Content-Type"] = "application/json"
    request = httpx.Request(
        "POST", peer.url + STATUS_PATH, content=body, headers=headers
    )
    nonce = headers[NONCE_HEADER]
    try:
        answer = _send(peer, request, timeout, transport)
        if answer.status_code != 200:
            raise _refusal(peer, answer)
        check_answer(
            answer.headers,
            answer.status_code,
            nonce,
            answer.content,
            here=key.record.region,
            peer_key=peer.peer_key,
            peer_region=peer.region,
            now=now,
        )
        return _status(peer, answer.content, nonce)
    except HealthcodeError as exc:
        # A failed query is audited on both sides under its nonce, so the
        # error carries it to the caller's audit entry.
        exc.query = nonce  # type: ignore[attr-defined]
        raise


def _status(peer: Peer, content: bytes, nonce: str) -> PeerStatus:
    try:
        data: dict[str, Any] = orjson.loads(content)
        region = str(data["region"])
        colour = str(data["colour"])
        changes = data.get("nextChangeAt")
        next_colour = data.get("nextColour")
        if not within(region, peer.region) or colour not in _COLOURS:
            raise ValueError("its region or colour is not one it may give")
        if next_colour is not None and next_colour not in _COLOURS:
            raise ValueError("its next colour is not a colour")
        return PeerStatus(
            region=region,
            colour=colour,
            masked_name=str(data["maskedName"])[:64],
            as_of=datetime.fromisoformat(data["asOf"]),
            next_change_at=datetime.fromisoformat(changes) if changes else None,
            next_colour=next_colour,
            query=nonce,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidPeerAnswer(
            f"The answer of {_named(peer)} is malformed: {exc}."
        ) from None
