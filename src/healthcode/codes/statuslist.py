"""The daily status list that gives paper codes their colour offline.

A paper code carries no colour, since it lives for days; it carries instead
the resident's status list index, a number the authority assigns once per
resident. Each day the authority signs a list of the indices whose colour
is not green, and checkpoints download it. Whoever is not on the list is
green.

Layout (all integers big-endian)::

    magic "HCZS" (4) | version 1 (1) | region (3) | key id (4)
    | issued-at (4) | valid-until (4) | index space (4)
    | zlib(entries) | Ed25519 signature (64)

``entries`` holds, for yellow, red and grey in that order, the number of
indices of that colour and then each index as its gap from the previous
one (the first from -1) less one, all as unsigned LEB128 varints. A gap
under 128 takes one byte, so the list costs at most about one byte per
resident even if every resident were not green, and far less when few are;
zlib then squeezes out what regularity is left. The signature covers every
byte before it; the magic differs from the start of anything else we sign.

Indices should be drawn at random for each resident rather than counted in
order of registration: the list is public, and an index must not say when,
or near whom, a resident registered.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from cryptography.exceptions import InvalidSignature

from healthcode.codes.errors import (
    CodeParameterError,
    InvalidCode,
    InvalidStatusList,
    StaleStatusList,
    StatusListNotHeld,
)
from healthcode.codes.format import (
    DEFAULT_LEEWAY,
    Colour,
    KeyResolver,
    Purpose,
    VerifiedCode,
)
from healthcode.codes.keys import (
    KeyRecord,
    KeyRole,
    SigningKey,
    check_instant,
    check_region,
    key_name,
)
from healthcode.codes.trust import Verifier

MAGIC = b"HCZS"
STATUS_LIST_VERSION = 1
DEFAULT_STATUS_LIST_TTL = timedelta(hours=36)
LISTED_COLOURS = (Colour.YELLOW, Colour.RED, Colour.GREY)

_HEADER = struct.Struct(">4sB3s4sIII")
_SIGNATURE_SIZE = 64
_MAX_INDEX_SPACE = 2**32 - 1
# The most bytes one entry can take as a varint of a 32-bit gap.
_MAX_VARINT = 5


@dataclass(frozen=True)
class StatusList:
    """A status list whose signature has been checked, ready for look-ups."""

    region: str
    key: KeyRecord
    issued_at: datetime
    valid_until: datetime
    index_space: int
    size: int
    _indices: Mapping[Colour, array[int]] = field(repr=False)

    def colour_of(self, index: int) -> Colour:
        """Return the colour of the resident with status list index ``index``."""
        if not 0 <= index < self.index_space:
            raise StatusListNotHeld(
                f"The status list of region {self.region} covers indices below"
                f" {self.index_space}; index {index} is not among them."
            )
        for colour in LISTED_COLOURS:
            indices = self._indices[colour]
            place = bisect_left(indices, index)
            if place < len(indices) and indices[place] == index:
                return colour
        return Colour.GREEN

    def count(self, colour: Colour) -> int:
        """Return how many indices the list gives ``colour``."""
        if colour is Colour.GREEN:
            listed = sum(len(self._indices[c]) for c in LISTED_COLOURS)
            return self.index_space - listed
        return len(self._indices[colour])

    @property
    def bytes_per_resident(self) -> float:
        return self.size / self.index_space if self.index_space else 0.0

    def age(self, at: datetime) -> timedelta:
        """Return how long before ``at`` the list was issued."""
        return check_instant(at) - self.issued_at


@dataclass(frozen=True)
class PaperCheck:
    """The outcome of checking a paper code offline: its colour, and from when."""

    code: VerifiedCode
    colour: Colour
    list_issued_at: datetime
    list_age: timedelta


def build_status_list(
    colours: Mapping[int, Colour],
    index_space: int,
    signer: SigningKey,
    issued_at: datetime,
    valid_until: datetime | None = None,
) -> bytes:
    """Return the signed status list of ``colours`` (index to colour).

    Green entries are dropped: green is what the list says of anyone absent.
    ``index_space`` is one more than the highest index the authority has
    assigned, so that a checkpoint can tell an unknown index from a green one.
    """
    issued_at = check_instant(issued_at, "status list issue time").replace(
        microsecond=0
    )
    if valid_until is None:
        valid_until = issued_at + DEFAULT_STATUS_LIST_TTL
    valid_until = check_instant(valid_until, "status list expiry").replace(
        microsecond=0
    )
    if valid_until <= issued_at:
        raise CodeParameterError("A status list must be valid until after its issue.")
    if not isinstance(index_space, int) or not 0 <= index_space <= _MAX_INDEX_SPACE:
        raise CodeParameterError(
            f"The index space {index_space!r} is not between 0 and 2**32 - 1."
        )
    signer.check_usable(issued_at, KeyRole.CODE)

    by_colour: dict[Colour, list[int]] = {colour: [] for colour in LISTED_COLOURS}
    for index, colour in colours.items():
        if not isinstance(index, int) or not 0 <= index < index_space:
            raise CodeParameterError(
                f"The status list index {index!r} is outside the index space"
                f" of {index_space}."
            )
        if not isinstance(colour, Colour):
            raise CodeParameterError(f"The colour {colour!r} is not a Colour.")
        if colour is not Colour.GREEN:
            by_colour[colour].append(index)

    entries = bytearray()
    for colour in LISTED_COLOURS:
        indices = sorted(by_colour[colour])
        _put_varint(entries, len(indices))
        previous = -1
        for index in indices:
            _put_varint(entries, index - previous - 1)
            previous = index

    record = signer.record
    header = _HEADER.pack(
        MAGIC,
        STATUS_LIST_VERSION,
        int(record.region).to_bytes(3, "big"),
        record.key_id,
        int(issued_at.timestamp()),
        int(valid_until.timestamp()),
        index_space,
    )
    signed = header + zlib.compress(bytes(entries), 9)
    return signed + signer.sign(signed)


def load_status_list(
    document: bytes,
    keys: KeyResolver,
    at: datetime,
    *,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> StatusList:
    """Check a status list's signature and validity at ``at`` and read it.

    Raises :class:`InvalidStatusList` for anything damaged, forged, signed
    by an unknown or revoked key or dated in the future, and
    :class:`StaleStatusList` when ``at`` is past the list's validity.
    """
    at = check_instant(at)
    if not isinstance(document, bytes) or len(document) < _HEADER.size + 64 + 8:
        raise InvalidStatusList("The status list is too short to be one.")
    signed, signature = document[:-_SIGNATURE_SIZE], document[-_SIGNATURE_SIZE:]
    (magic, version, region_bytes, key_id, issued, valid, index_space) = (
        _HEADER.unpack_from(signed)
    )
    if magic != MAGIC or version != STATUS_LIST_VERSION:
        raise InvalidStatusList("The document is not a status list of version 1.")
    region = str(int.from_bytes(region_bytes, "big"))
    try:
        check_region(region)
    except CodeParameterError:
        raise InvalidStatusList("The status list names no valid region.") from None
    name = key_name(region, key_id)
    try:
        record = keys.resolve(region, key_id)
    except InvalidCode:
        raise InvalidStatusList(
            f"The status list is signed by key {name}, which no trust list held"
            " here lists."
        ) from None
    if record.role is not KeyRole.CODE or record.region != region:
        raise InvalidStatusList(f"Key {name} may not sign status lists.")
    if record.revoked_at is not None and at >= record.revoked_at:
        raise InvalidStatusList(f"The status list is signed by key {name}, revoked.")
    try:
        record.verifying_key().verify(signature, signed)
    except (InvalidSignature, ValueError):
        raise InvalidStatusList(
            f"The status list's signature by key {name} does not verify."
        ) from None

    issued_at = datetime.fromtimestamp(issued, UTC)
    valid_until = datetime.fromtimestamp(valid, UTC)
    if record.sign_until is not None and issued_at > record.sign_until:
        raise InvalidStatusList(
            f"The status list was issued after its key {name} was retired."
        )
    if issued_at > at + leeway:
        raise InvalidStatusList(
            f"The status list is dated {_iso(issued_at)}, later than {_iso(at)}."
        )
    if at >= valid_until:
        raise StaleStatusList(
            f"The status list of region {region} expired at {_iso(valid_until)}."
        )
    indices = _read_entries(signed[_HEADER.size :], index_space, region)
    return StatusList(
        region=region,
        key=record,
        issued_at=issued_at,
        valid_until=valid_until,
        index_space=index_space,
        size=len(document),
        _indices=indices,
    )


def check_paper_code(
    text: object,
    verifier: Verifier,
    status_lists: Mapping[str, StatusList],
    at: datetime,
) -> PaperCheck:
    """Verify a paper code offline and read its colour from its region's list.

    ``status_lists`` maps each region to the newest list held for it. Raises
    :class:`InvalidCode` (or a subclass) for a code that fails verification
    or is not a paper code, :class:`StatusListNotHeld` when no list covers
    it, and :class:`StaleStatusList` when the list held has expired.
    """
    code = verifier.verify(text, at)
    if code.purpose is not Purpose.PAPER or code.content.status_index is None:
        raise InvalidCode("The code is a screen code, not a paper code.")
    region = code.content.region
    status_list = status_lists.get(region)
    if status_list is None or status_list.region != region:
        raise StatusListNotHeld(f"No status list of region {region} is held here.")
    if check_instant(at) >= status_list.valid_until:
        raise StaleStatusList(
            f"The status list of region {region} expired at"
            f" {_iso(status_list.valid_until)}."
        )
    colour = status_list.colour_of(code.content.status_index)
    return PaperCheck(
        code=code,
        colour=colour,
        list_issued_at=status_list.issued_at,
        list_age=status_list.age(at),
    )


def _read_entries(
    compressed: bytes, index_space: int, region: str
) -> dict[Colour, array[int]]:
    # The bound keeps a forged-looking but validly signed list from being a
    # decompression bomb: no honest list needs more than five bytes a
    # resident plus the three counts.
    limit = _MAX_VARINT * (index_space + 3)
    try:
        inflater = zlib.decompressobj()
        entries = inflater.decompress(compressed, limit)
        if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
            raise ValueError("the compressed entries do not end where they should")
    except (zlib.error, ValueError):
        raise InvalidStatusList(
            f"The status list of region {region} has damaged entries."
        ) from None

    position = 0
    result: dict[Colour, array[int]] = {}
    seen = 0
    for colour in LISTED_COLOURS:
        count, position = _get_varint(entries, position, region)
        indices = array("I")
        previous = -1
        for _ in range(count):
            gap, position = _get_varint(entries, position, region)
            previous += gap + 1
            if previous >= index_space:
                _bad(region)
            indices.append(previous)
        result[colour] = indices
        seen += count
    if position != len(entries) or seen > index_space:
        _bad(region)
    merged = sorted(i for indices in result.values() for i in indices)
    if any(a == b for a, b in zip(merged, merged[1:], strict=False)):
        raise InvalidStatusList(
            f"The status list of region {region} gives one index two colours."
        )
    return result


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(data: bytes, position: int, region: str) -> tuple[int, int]:
    value = 0
    for shift in range(0, 7 * _MAX_VARINT, 7):
        if position >= len(data):
            break
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    _bad(region)


def _bad(region: str) -> NoReturn:
    raise InvalidStatusList(f"The status list of region {region} has damaged entries.")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
