"""Venue codes: the signed poster at a venue's door.

A venue code is ``HCV1:`` followed by the Base45 text of ``body ||
signature``, the same shape as a resident's code (``docs/code-format.md``)
with its own prefix. The body, all integers big-endian:

======  ====  ===================================================
offset  size  field
======  ====  ===================================================
0       1     version, ``0x01``
1       3     issuing region (the key's), GB/T 2260 as an integer
4       4     key id of the region's code key
8       3     the venue's county, GB/T 2260 as an integer
11      6     venue id
17      4     valid from, Unix seconds
21      4     valid until, Unix seconds
======  ====  ===================================================

The signature is Ed25519 by the issuing region's ``code`` key over the
ASCII prefix followed by the body. The prefix is part of what is signed, so
no signature over a resident code, a trust list or a status list can pass
for one over a poster, although the same keys sign them all.

Reading a code raises and never returns a flag. A forged or damaged poster
is refused with one opaque reason; an unknown, revoked or retired key says
so, as it does for resident codes. A poster signed by a key that has since
been retired past its overlap is refused like any code of that key: posters
must be reprinted when a region rotates its key, which is why they live
months rather than years.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from sqlalchemy.orm import Session

from healthcode.checkins.errors import (
    ExpiredVenueCode,
    InvalidVenue,
    InvalidVenueCode,
    UnknownVenue,
)
from healthcode.checkins.models import Venue
from healthcode.codes import base45
from healthcode.codes.errors import CodeParameterError, RetiredKeyCode, RevokedKeyCode
from healthcode.codes.format import KeyResolver
from healthcode.codes.keys import (
    KeyRole,
    SigningKey,
    check_instant,
    check_region,
    whole_second,
)
from healthcode.identity import divisions
from healthcode.identity.errors import UnknownDivision

PREFIX = "HCV1:"
_PREFIX_BYTES = PREFIX.encode("ascii")
FORMAT_VERSION = 1
SIGNATURE_SIZE = 64
_BODY = struct.Struct(">B3s4s3s6sII")
BODY_SIZE = _BODY.size

DEFAULT_VALIDITY = timedelta(days=180)
MAX_VALIDITY = timedelta(days=400)
DEFAULT_LEEWAY = timedelta(minutes=5)
_MAX_VENUE_ID = 2**48 - 1


@dataclass(frozen=True, slots=True)
class VenueCode:
    """What a verified poster says: which venue, where, and for how long."""

    venue_id: int
    venue_region: str
    issuer_region: str
    key_id: bytes
    valid_from: datetime
    valid_until: datetime


def issue_venue_code(
    signing_key: SigningKey,
    venue_id: int,
    venue_region: str,
    at: datetime,
    *,
    validity: timedelta = DEFAULT_VALIDITY,
) -> str:
    """Return the poster text of a venue, valid from ``at`` for ``validity``."""
    if isinstance(venue_id, bool) or not isinstance(venue_id, int):
        raise CodeParameterError("A venue id must be an integer.")
    if not 1 <= venue_id <= _MAX_VENUE_ID:
        raise CodeParameterError("A venue id must be between 1 and 2**48 - 1.")
    if not timedelta(seconds=1) <= validity <= MAX_VALIDITY:
        raise CodeParameterError(
            f"A venue code's validity of {validity} is not between one second and"
            f" {MAX_VALIDITY}."
        )
    issued = whole_second(at, "issue time")
    signing_key.check_usable(issued, KeyRole.CODE)
    record = signing_key.record
    check_region(venue_region)
    if not _inside(venue_region, record.region):
        raise InvalidVenue(
            f"The venue region {venue_region} lies outside region {record.region},"
            " whose key would sign its code."
        )
    body = _BODY.pack(
        FORMAT_VERSION,
        _region_bytes(record.region),
        record.key_id,
        _region_bytes(venue_region),
        venue_id.to_bytes(6, "big"),
        _seconds(issued),
        _seconds(issued + validity),
    )
    signature = signing_key.sign(_PREFIX_BYTES + body)
    return PREFIX + base45.encode(body + signature)


def venue_code_for(
    session: Session,
    venue_id: int,
    signing_key: SigningKey,
    at: datetime,
    *,
    validity: timedelta = DEFAULT_VALIDITY,
) -> str:
    """Return the poster text of a registered venue."""
    venue = session.get(Venue, venue_id)
    if venue is None:
        raise UnknownVenue(f"No venue has the id {venue_id}.")
    return issue_venue_code(
        signing_key, venue.id, venue.region_code, at, validity=validity
    )


def read_venue_code(
    text: object,
    keys: KeyResolver,
    at: datetime,
    *,
    leeway: timedelta = DEFAULT_LEEWAY,
    max_validity: timedelta = MAX_VALIDITY,
) -> VenueCode:
    """Verify a scanned poster at instant ``at``; return what it says.

    The checks run in the order resident codes use: layout, the key is known
    and not revoked, the signature, the key's signing and acceptance
    periods, the validity limit, then the poster's own dates. Nothing about
    dates is said before the signature holds.
    """
    at = check_instant(at)
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise InvalidVenueCode()
    try:
        raw = base45.decode(text[len(PREFIX) :])
    except ValueError:
        raise InvalidVenueCode() from None
    if len(raw) != BODY_SIZE + SIGNATURE_SIZE:
        raise InvalidVenueCode()
    body, signature = raw[:BODY_SIZE], raw[BODY_SIZE:]
    version, issuer, key_id, region, venue, start, until = _BODY.unpack(body)
    if version != FORMAT_VERSION:
        raise InvalidVenueCode()
    issuer_region = str(int.from_bytes(issuer, "big"))
    venue_region = str(int.from_bytes(region, "big"))
    venue_id = int.from_bytes(venue, "big")
    try:
        check_region(issuer_region)
        check_region(venue_region)
    except CodeParameterError:
        raise InvalidVenueCode() from None
    record = keys.resolve(issuer_region, key_id)
    if record.role is not KeyRole.CODE or record.region != issuer_region:
        raise InvalidVenueCode()
    if record.revoked_at is not None and at >= record.revoked_at:
        raise RevokedKeyCode(
            f"The venue code was signed by key {record.name}, now revoked."
        )
    try:
        record.verifying_key().verify(signature, _PREFIX_BYTES + body)
    except (InvalidSignature, ValueError):
        raise InvalidVenueCode() from None

    valid_from = datetime.fromtimestamp(start, UTC)
    valid_until = datetime.fromtimestamp(until, UTC)
    if venue_id == 0 or valid_until <= valid_from:
        raise InvalidVenueCode()
    if valid_from < record.valid_from - leeway:
        raise InvalidVenueCode()
    if record.sign_until is not None and valid_from > record.sign_until:
        raise RetiredKeyCode(
            f"The venue code was signed by key {record.name} after it was retired."
        )
    if record.accept_until is not None and at > record.accept_until:
        raise RetiredKeyCode(
            f"The venue code was signed by key {record.name}, retired and no longer"
            " accepted; the venue needs a new poster."
        )
    if valid_until - valid_from > max_validity:
        raise InvalidVenueCode()
    if at + leeway < valid_from:
        raise InvalidVenueCode(
            f"The venue code is not valid before {_iso(valid_from)}."
        )
    if at >= valid_until:
        raise ExpiredVenueCode(
            f"The venue code expired at {_iso(valid_until)}; the venue needs a new"
            " poster."
        )
    return VenueCode(
        venue_id, venue_region, issuer_region, key_id, valid_from, valid_until
    )


def _inside(code: str, area: str) -> bool:
    try:
        return divisions.within(code, area)
    except UnknownDivision:
        return False


def _region_bytes(region: str) -> bytes:
    return int(check_region(region)).to_bytes(3, "big")


def _seconds(at: datetime) -> int:
    value = int(at.timestamp())
    if not 0 <= value <= 2**32 - 1:
        raise CodeParameterError(
            f"The instant {_iso(at)} is not between 1970 and 2106."
        )
    return value


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
