"""Signed requests and answers between the instances of two regions.

An instance calls a peer with its own peer key, the Ed25519 key of role
``peer`` that its trust list publishes. The request carries::

    Healthcode-Peer-Key: 610100-1a2b3c4d      (the signing key's name)
    Healthcode-Peer-To: 440100                (the region it is meant for)
    Healthcode-Timestamp: 1773115200          (Unix seconds)
    Healthcode-Nonce: <22 characters>         (16 random bytes, base64url)
    Content-Digest: sha-256=:<base64>:        (RFC 9530, of the body)
    Healthcode-Signature: <86 characters>     (base64url Ed25519 signature)

The signature covers the ASCII text ``HCZ-PEER-REQUEST-1``, a zero byte,
and then the method, the path with its query, the key name, the addressee,
the timestamp, the nonce and the digest, each followed by a line feed. The
receiver checks, in this order, that every header is present and well
formed, that it is the addressee, that the key's region is a peer with a
valid trust list naming the key as a live peer key, that the digest is the
body's, that the signature verifies, that the timestamp is within
:data:`MAX_SKEW` of its clock, and that the nonce is new. Nonces are kept
in the store the service keeps its short-lived state in (Redis, shared by
every worker, where one is configured) for twice the skew: a request older
than that is refused for its timestamp anyway.

The answer is signed the same way by the peer's own peer key, over
``HCZ-PEER-ANSWER-1``, a zero byte, the status, the request's nonce (which
binds the answer to its request), the key name, the addressee (the caller's
region), the timestamp and the digest. Refusals are not signed: a forged
refusal can only deny an answer, which cutting the line does as well.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature

from healthcode.accounts.stores import Store
from healthcode.codes.keys import KEY_ID_SIZE, KeyRecord, KeyState, SigningKey
from healthcode.regions.errors import (
    InvalidPeerAnswer,
    PeerUnauthenticated,
    ReplayedRequest,
    StaleRequest,
)

__all__ = [
    "ANSWER_CONTEXT",
    "MAX_SKEW",
    "REQUEST_CONTEXT",
    "PeerRequest",
    "check_answer",
    "check_request",
    "content_digest",
    "sign_answer",
    "sign_request",
]

REQUEST_CONTEXT = b"HCZ-PEER-REQUEST-1\x00"
ANSWER_CONTEXT = b"HCZ-PEER-ANSWER-1\x00"
MAX_SKEW = timedelta(seconds=60)
NONCE_SIZE = 16

KEY_HEADER = "Healthcode-Peer-Key"
TO_HEADER = "Healthcode-Peer-To"
TIME_HEADER = "Healthcode-Timestamp"
NONCE_HEADER = "Healthcode-Nonce"
DIGEST_HEADER = "Content-Digest"
SIGNATURE_HEADER = "Healthcode-Signature"

#: Finds the peer key that signed: (region, key id) to its record.
KeyLookup = Callable[[str, bytes], KeyRecord]


@dataclass(frozen=True)
class PeerRequest:
    """A peer request whose signature, age and nonce have been checked."""

    region: str
    key: KeyRecord
    nonce: str


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value of ``body``, in SHA-256."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    return f"sha-256=:{digest}:"


def _lines(*fields: str) -> bytes:
    return "".join(f"{field}\n" for field in fields).encode("utf-8")


def sign_request(
    key: SigningKey,
    to_region: str,
    method: str,
    path: str,
    body: bytes,
    at: datetime,
    *,
    nonce: str | None = None,
) -> dict[str, str]:
    """Return the headers that sign a request to ``to_region``'s instance."""
    stamp = str(int(at.timestamp()))
    nonce = nonce if nonce is not None else _b64(os.urandom(NONCE_SIZE))
    digest = content_digest(body)
    name = key.record.name
    message = _lines(method.upper(), path, name, to_region, stamp, nonce, digest)
    return {
        KEY_HEADER: name,
        TO_HEADER: to_region,
        TIME_HEADER: stamp,
        NONCE_HEADER: nonce,
        DIGEST_HEADER: digest,
        SIGNATURE_HEADER: _b64(key.sign(REQUEST_CONTEXT + message)),
    }


def check_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    *,
    here: str,
    keys: KeyLookup,
    nonces: Store,
    now: datetime,
    skew: timedelta = MAX_SKEW,
) -> PeerRequest:
    """Check a peer request sent to this instance (region ``here``) at ``now``.

    ``keys`` finds the signing key among the peers' trust lists and raises
    when its region is no peer or the key is not a live peer key there.
    Raises :class:`PeerUnauthenticated` or one of its kinds; records the
    nonce only once everything else holds, so that nobody can spend the
    nonces of requests they did not sign.
    """
    name, to_region, stamp, nonce, digest, signature = (
        _header(headers, header)
        for header in (
            KEY_HEADER,
            TO_HEADER,
            TIME_HEADER,
            NONCE_HEADER,
            DIGEST_HEADER,
            SIGNATURE_HEADER,
        )
    )
    if not _nonce_ok(nonce):
        raise PeerUnauthenticated(
            f"The {NONCE_HEADER} header is not {NONCE_SIZE} bytes in base64url."
        )
    if to_region != here:
        raise PeerUnauthenticated(
            f"The request is addressed to region {to_region}, not to this"
            f" instance's region {here}."
        )
    region, key_id = _key_name(name)
    record = keys(region, key_id)
    _check_live(record, now, "request")
    if digest != content_digest(body):
        raise PeerUnauthenticated("The request's Content-Digest is not its body's.")
    message = _lines(method.upper(), path, name, to_region, stamp, nonce, digest)
    _verify(record, signature, REQUEST_CONTEXT + message, PeerUnauthenticated)
    sent = _instant(stamp, PeerUnauthenticated)
    if abs(sent - now) > skew:
        raise StaleRequest(
            f"The request is dated {_iso(sent)}, more than {int(skew.total_seconds())}"
            f" seconds from this instance's clock ({_iso(now)}); check the clocks."
        )
    if not nonces.add(
        f"peer-nonce:{region}:{nonce}", b"1", 2 * skew.total_seconds() + 1
    ):
        raise ReplayedRequest(
            "The request's nonce was seen before; each request needs a new one."
        )
    return PeerRequest(region, record, nonce)


def sign_answer(
    key: SigningKey, to_region: str, status: int, nonce: str, body: bytes, at: datetime
) -> dict[str, str]:
    """Return the headers that sign an answer to the request with ``nonce``."""
    stamp = str(int(at.timestamp()))
    digest = content_digest(body)
    name = key.record.name
    message = _lines(str(status), nonce, name, to_region, stamp, digest)
    return {
        KEY_HEADER: name,
        TO_HEADER: to_region,
        TIME_HEADER: stamp,
        DIGEST_HEADER: digest,
        SIGNATURE_HEADER: _b64(key.sign(ANSWER_CONTEXT + message)),
    }


def check_answer(
    headers: Mapping[str, str],
    status: int,
    nonce: str,
    body: bytes,
    *,
    here: str,
    peer_key: Callable[[bytes], KeyRecord | None],
    peer_region: str,
    now: datetime,
    skew: timedelta = MAX_SKEW,
) -> None:
    """Check that an answer was signed by the peer for the request with ``nonce``."""
    try:
        name, to_region, stamp, digest, signature = (
            _header(headers, header)
            for header in (
                KEY_HEADER,
                TO_HEADER,
                TIME_HEADER,
                DIGEST_HEADER,
                SIGNATURE_HEADER,
            )
        )
        region, key_id = _key_name(name)
    except PeerUnauthenticated as exc:
        raise InvalidPeerAnswer(
            f"Region {peer_region}'s answer is not signed as a peer answer: {exc}"
        ) from None
    record = peer_key(key_id)
    if record is None or region != record.region or to_region != here:
        raise InvalidPeerAnswer(
            f"Region {peer_region}'s answer is signed by key {name}, which its"
            " trust list held here does not name as a peer key."
        )
    _check_live(record, now, "answer", InvalidPeerAnswer)
    if digest != content_digest(body):
        raise InvalidPeerAnswer(
            f"Region {peer_region}'s answer does not match its Content-Digest."
        )
    message = _lines(str(status), nonce, name, to_region, stamp, digest)
    _verify(record, signature, ANSWER_CONTEXT + message, InvalidPeerAnswer)
    sent = _instant(stamp, InvalidPeerAnswer)
    if abs(sent - now) > skew:
        raise InvalidPeerAnswer(
            f"Region {peer_region}'s answer is dated {_iso(sent)}, too far from"
            f" this instance's clock ({_iso(now)})."
        )


# Inside


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value or len(value) > 200 or not value.isascii():
        raise PeerUnauthenticated(
            f"The request has no usable {name} header; peer requests are signed"
            " as docs/regions.md describes."
        )
    return value


def _key_name(name: str) -> tuple[str, bytes]:
    region, _, key_hex = name.partition("-")
    try:
        key_id = bytes.fromhex(key_hex)
    except ValueError:
        key_id = b""
    if not (region.isdigit() and len(region) == 6) or len(key_id) != KEY_ID_SIZE:
        raise PeerUnauthenticated(
            f"The {KEY_HEADER} header does not name a key as <region>-<key id>."
        )
    return region, key_id


def _check_live(
    record: KeyRecord,
    now: datetime,
    what: str,
    error: type[PeerUnauthenticated] | type[InvalidPeerAnswer] = PeerUnauthenticated,
) -> None:
    state = record.state(now)
    if state not in (KeyState.ACTIVE, KeyState.OVERLAP):
        raise error(f"The {what} is signed by key {record.name}, which is {state}.")


def _verify(
    record: KeyRecord,
    signature: str,
    message: bytes,
    error: type[PeerUnauthenticated] | type[InvalidPeerAnswer],
) -> None:
    try:
        record.verifying_key().verify(_unb64(signature), message)
    except (InvalidSignature, ValueError, binascii.Error):
        raise error("The signature does not verify.") from None


def _instant(stamp: str, error: type[Exception]) -> datetime:
    if not stamp.isdigit() or len(stamp) > 12:
        raise error(f"The {TIME_HEADER} header is not a number of Unix seconds.")
    return datetime.fromtimestamp(int(stamp), UTC)


def _nonce_ok(nonce: str) -> bool:
    try:
        return len(_unb64(nonce)) == NONCE_SIZE
    except (ValueError, binascii.Error):
        return False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
