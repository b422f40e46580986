"""The health code: its binary layout, its text for QR codes, issue and verify.

A code is ``HCZ1:`` followed by the Base45 text of ``body || signature``.
The body is a fixed header, for paper codes a status list index, and then
the masked name in UTF-8 up to the end; the signature is Ed25519 over the
ASCII prefix followed by the body. ``docs/code-format.md`` gives every field
with its size; the constants below are the same layout in code.

Verification raises and never returns a flag: :func:`verify_code` returns a
:class:`VerifiedCode` or raises an :class:`~healthcode.codes.errors.InvalidCode`.
Whatever it is handed, nothing else escapes it. The text is taken exactly as
given: a verifier that trimmed spaces or undid percent-encoding would accept
texts that the issuer never wrote, and both are legal Base45 characters.
"""

from __future__ import annotations

import enum
import hmac
import os
import re
import struct
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from healthcode.codes import base45
from healthcode.codes.errors import (
    CodeParameterError,
    ExpiredCode,
    InvalidCode,
    InvalidReference,
    NotYetValidCode,
    RetiredKeyCode,
    RevokedKeyCode,
)
from healthcode.codes.keys import (
    KEY_ID_SIZE,
    SUBJECT_SECRET_SIZE,
    KeyRecord,
    KeyRole,
    SigningKey,
    check_instant,
    check_region,
    key_name,
)

PREFIX = "HCZ1:"
_PREFIX_BYTES = PREFIX.encode("ascii")
FORMAT_VERSION = 1
SIGNATURE_SIZE = 64
REFERENCE_SIZE = 16
MAX_NAME_BYTES = 64

# version, purpose and colour, region, key id, issued-at, valid-until,
# subject reference; all big-endian.
_HEADER = struct.Struct(">BB3s4sII16s")
_STATUS_INDEX = struct.Struct(">I")
HEADER_SIZE = _HEADER.size

DEFAULT_SCREEN_TTL = timedelta(minutes=5)
DEFAULT_PAPER_TTL = timedelta(days=14)
DEFAULT_DAILY_EXPIRY = time(0, 0)
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
DEFAULT_LEEWAY = timedelta(minutes=5)
MAX_SCREEN_LIFETIME = timedelta(days=1)
MAX_PAPER_LIFETIME = timedelta(days=31)

_MAX_UINT32 = 2**32 - 1
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_MAX_RESIDENT_ID = 2**48 - 1
# The characters no name may hold: the categories Cc (controls), Cs
# (surrogates), Zl and Zp (line and paragraph separators), which Unicode
# never changes, and the bidirectional controls. One search finds them, so
# a name is checked at the cost of a scan rather than a call per character.
_UNNAMEABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029"
    + re.escape("".join(sorted(_BIDI_CONTROLS)))
    + "]"
)


class Purpose(enum.IntEnum):
    """What the code is for; stored in the high four bits of byte 1."""

    SCREEN = 1
    PAPER = 2


class Colour(enum.StrEnum):
    """A resident's colour, in the order that rules rank them (worst last)."""

    GREEN = "green"
    GREY = "grey"
    YELLOW = "yellow"
    RED = "red"

    @property
    def wire(self) -> int:
        """The four-bit value stored in the low half of byte 1."""
        return _COLOUR_WIRE[self]


_PURPOSES = {purpose.value: purpose for purpose in Purpose}
_COLOUR_WIRE = {Colour.GREEN: 1, Colour.YELLOW: 2, Colour.RED: 3, Colour.GREY: 4}
_WIRE_COLOUR = {value: colour for colour, value in _COLOUR_WIRE.items()}


@dataclass(frozen=True)
class CodeContent:
    """Every field that a code carries, decoded; times are UTC, whole seconds."""

    purpose: Purpose
    colour: Colour | None
    region: str
    key_id: bytes
    issued_at: datetime
    valid_until: datetime
    subject_reference: bytes
    masked_name: str
    status_index: int | None = None
    version: int = FORMAT_VERSION

    @property
    def key_name(self) -> str:
        return key_name(self.region, self.key_id)


@dataclass(frozen=True)
class VerifiedCode:
    """A code whose signature, key and times have all been checked."""

    content: CodeContent
    key: KeyRecord

    @property
    def colour(self) -> Colour | None:
        return self.content.colour

    @property
    def masked_name(self) -> str:
        return self.content.masked_name

    @property
    def purpose(self) -> Purpose:
        return self.content.purpose


class KeyResolver(Protocol):
    """Finds the code key that a region's codes name; a trust list, usually."""

    def resolve(self, region: str, key_id: bytes) -> KeyRecord:
        """Return the record, or raise :class:`UnknownKeyCode`."""
        ...


# Encoding


def encode_body(content: CodeContent) -> bytes:
    """Return the body bytes of ``content``, checking every field first."""
    _check_content(content)
    return _pack_body(
        content.purpose,
        content.colour,
        _region_bytes(content.region),
        content.key_id,
        _seconds(content.issued_at),
        _seconds(content.valid_until),
        content.subject_reference,
        content.status_index,
        content.masked_name.encode("utf-8"),
    )


def signature_input(body: bytes) -> bytes:
    """Return the bytes that are signed: the ASCII prefix, then the body."""
    return _PREFIX_BYTES + body


def _pack_body(
    purpose: Purpose,
    colour: Colour | None,
    region: bytes,
    key_id: bytes,
    issued: int,
    until: int,
    reference: bytes,
    status_index: int | None,
    name: bytes,
) -> bytes:
    # The one place that lays the fields out; its callers have checked them.
    purpose_colour = purpose << 4 | (0 if colour is None else _COLOUR_WIRE[colour])
    body = _HEADER.pack(
        FORMAT_VERSION, purpose_colour, region, key_id, issued, until, reference
    )
    if status_index is not None:
        body += _STATUS_INDEX.pack(status_index)
    return body + name


def _region_bytes(region: str) -> bytes:
    return int(check_region(region)).to_bytes(3, "big")


def sign_code(content: CodeContent, signing_key: SigningKey) -> str:
    """Return the text of ``content`` signed with ``signing_key``."""
    if signing_key.record.key_id != content.key_id or (
        signing_key.record.region != content.region
    ):
        raise CodeParameterError(
            f"The code names key {content.key_name} but would be signed with"
            f" {signing_key.record.name}."
        )
    body = encode_body(content)
    signature = signing_key.code_signature(signature_input(body))
    return PREFIX + base45.encode(body + signature)


# Decoding


def parse_code(text: object) -> tuple[CodeContent, bytes, bytes]:
    """Decode ``text`` without checking its signature: content, body, signature.

    The content is untrusted until :func:`verify_code` has accepted it; this
    exists for that function and for tools that show what a code claims.
    Raises :class:`InvalidCode`, with nothing more said, for any text that is
    not well formed.
    """
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise InvalidCode()
    try:
        raw = base45.decode(text[len(PREFIX) :])
    except ValueError:
        raise InvalidCode() from None
    if len(raw) < HEADER_SIZE + SIGNATURE_SIZE + 1:
        raise InvalidCode()
    body, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    (version, purpose_colour, region, key_id, issued, valid, reference) = (
        _HEADER.unpack_from(body)
    )
    if version != FORMAT_VERSION:
        raise InvalidCode()
    purpose = _PURPOSES.get(purpose_colour >> 4)
    if purpose is None:
        raise InvalidCode()
    colour_wire = purpose_colour & 0x0F
    offset = HEADER_SIZE
    status_index = None
    if purpose is Purpose.PAPER:
        if colour_wire != 0 or len(body) < offset + _STATUS_INDEX.size + 1:
            raise InvalidCode()
        (status_index,) = _STATUS_INDEX.unpack_from(body, offset)
        offset += _STATUS_INDEX.size
        colour = None
    else:
        colour = _WIRE_COLOUR.get(colour_wire)
        if colour is None:
            raise InvalidCode()
    try:
        masked_name = body[offset:].decode("utf-8")
        # The layout fixes the sizes of the key id and the reference and the
        # range of the index, and the purpose and colour were matched above;
        # what it leaves open is checked here, as _check_content would.
        _check_name(masked_name)
    except (UnicodeDecodeError, CodeParameterError):
        raise InvalidCode() from None
    region_number = int.from_bytes(region, "big")
    if not 100_000 <= region_number <= 999_999 or valid <= issued:
        raise InvalidCode()
    return (
        CodeContent(
            purpose=purpose,
            colour=colour,
            region=str(region_number),
            key_id=key_id,
            issued_at=datetime.fromtimestamp(issued, UTC),
            valid_until=datetime.fromtimestamp(valid, UTC),
            subject_reference=reference,
            masked_name=masked_name,
            status_index=status_index,
            version=version,
        ),
        body,
        signature,
    )


def verify_code(
    text: object,
    keys: KeyResolver,
    at: datetime,
    *,
    leeway: timedelta = DEFAULT_LEEWAY,
    max_screen_lifetime: timedelta = MAX_SCREEN_LIFETIME,
    max_paper_lifetime: timedelta = MAX_PAPER_LIFETIME,
    signers: Mapping[tuple[str, bytes], SigningKey] | None = None,
) -> VerifiedCode:
    """Check ``text`` at instant ``at`` against the keys that ``keys`` holds.

    ``signers`` are the private keys held here, by region and key id, each
    the key its record names (:class:`~.trust.Verifier` checks that). A
    code that names one of them is checked by signing its body again; see
    :func:`_check_signature`.

    The checks run in this order, and the first that fails raises: the
    prefix and layout; the key is known (:class:`UnknownKeyCode`) and not
    revoked at ``at`` (:class:`RevokedKeyCode`); the signature; the code was
    issued while the key could sign and is shown while the key is still
    accepted (:class:`RetiredKeyCode`); its lifetime is not longer than its
    purpose allows; it is not issued more than ``leeway`` after ``at``
    (:class:`NotYetValidCode`); ``at`` is before its valid-until
    (:class:`ExpiredCode`). Everything about broken bytes or a bad signature
    is the bare :class:`InvalidCode`.
    """
    at = check_instant(at)
    return verify_parsed(
        parse_code(text),
        keys,
        at,
        leeway=leeway,
        max_screen_lifetime=max_screen_lifetime,
        max_paper_lifetime=max_paper_lifetime,
        signers=signers,
    )


def verify_parsed(
    parsed: tuple[CodeContent, bytes, bytes],
    keys: KeyResolver,
    at: datetime,
    *,
    leeway: timedelta = DEFAULT_LEEWAY,
    max_screen_lifetime: timedelta = MAX_SCREEN_LIFETIME,
    max_paper_lifetime: timedelta = MAX_PAPER_LIFETIME,
    signers: Mapping[tuple[str, bytes], SigningKey] | None = None,
) -> VerifiedCode:
    """:func:`verify_code` for what :func:`parse_code` made of a code's text.

    For a caller that has read the code already (to find whose it claims to
    be) and would otherwise decode it twice.
    """
    at = check_instant(at)
    content, body, signature = parsed
    record = keys.resolve(content.region, content.key_id)
    if record.role is not KeyRole.CODE or record.region != content.region:
        raise InvalidCode()
    if record.revoked_at is not None and at >= record.revoked_at:
        raise RevokedKeyCode(f"The code was signed by key {record.name}, now revoked.")
    signer = None if signers is None else signers.get((record.region, record.key_id))
    _check_signature(record, signer, signature, signature_input(body))

    if content.issued_at < record.valid_from - leeway:
        raise InvalidCode()
    if record.sign_until is not None and content.issued_at > record.sign_until:
        raise RetiredKeyCode(
            f"The code was signed by key {record.name} after the key was retired."
        )
    if record.accept_until is not None and at > record.accept_until:
        raise RetiredKeyCode(
            f"The code was signed by key {record.name}, retired and no longer accepted."
        )
    lifetime = content.valid_until - content.issued_at
    limit = (
        max_screen_lifetime if content.purpose is Purpose.SCREEN else max_paper_lifetime
    )
    if lifetime > limit:
        raise InvalidCode()
    if at + leeway < content.issued_at:
        raise NotYetValidCode(
            f"The code is not valid before {_iso(content.issued_at)}."
        )
    if at >= content.valid_until:
        raise ExpiredCode(f"The code expired at {_iso(content.valid_until)}.")
    return VerifiedCode(content, record)


def _check_signature(
    record: KeyRecord, signer: SigningKey | None, signature: bytes, message: bytes
) -> None:
    """Raise the bare :class:`InvalidCode` unless ``signature`` is the key's.

    For a key whose private half is held here the signature is made again
    and compared instead of verified, at about a third of the cost. Ed25519 is
    deterministic (RFC 8032): the nonce is derived from the private key and
    the message, so one key signs one message with exactly one signature,
    and every code this issuer made carries exactly the bytes signing its
    body now gives. Equal bytes therefore prove what verification proves,
    that the key's holder signed this body; different bytes were not made
    by this issuer. Verification would accept one more kind of signature,
    a valid one made with some other nonce, which only a signer that is
    not ours could make with our key; refusing it is the safer answer. The
    comparison takes constant time, so it tells nothing about how much of
    a forged signature was right, and both failures raise the same opaque
    error as a signature that does not verify.
    """
    if signer is not None and signer.record.public_key == record.public_key:
        if not hmac.compare_digest(signer.code_signature(message), signature):
            raise InvalidCode()
        return
    try:
        record.check_code_signature(signature, message)
    except (InvalidSignature, ValueError):
        raise InvalidCode() from None


# Subject references


class SubjectSealer:
    """Seals resident ids into subject references and opens them again.

    A reference is one AES-256 block: eight random bytes, two zero bytes and
    the resident id in six bytes, enciphered under the region's secret. A
    block cipher is a pseudo-random permutation, so with fresh random bytes
    every reference looks unrelated to every other, even two of one
    resident; the zero bytes let the authority tell a reference it issued
    from noise (a forged one passes with odds of one in 65,536, and then
    names a random id). Exactly one block is enciphered per reference, which
    is why the ECB mode is sound here: ECB betrays equal blocks within one
    message, and each message here is a single block.
    """

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != SUBJECT_SECRET_SIZE:
            raise CodeParameterError(
                f"A subject secret must be {SUBJECT_SECRET_SIZE} bytes long."
            )
        self._cipher = Cipher(algorithms.AES(secret), modes.ECB())
        # In ECB mode every block is enciphered on its own, so one encryptor
        # and one decryptor serve every reference without being finalised;
        # the lock keeps two threads from feeding either at once.
        self._encryptor = self._cipher.encryptor()
        self._decryptor = self._cipher.decryptor()
        self._lock = threading.Lock()

    def seal(self, resident_id: int, nonce: bytes) -> bytes:
        """Return the 16-byte subject reference of ``resident_id``."""
        if not _is_whole(resident_id, 1, _MAX_RESIDENT_ID):
            raise CodeParameterError(
                "The resident id must be a positive integer below 2**48."
            )
        if not isinstance(nonce, bytes) or len(nonce) != 8:
            raise CodeParameterError("A subject reference needs eight random bytes.")
        block = nonce + b"\x00\x00" + resident_id.to_bytes(6, "big")
        with self._lock:
            return self._encryptor.update(block)

    def open(self, reference: bytes) -> int:
        """Return the resident id sealed in ``reference``; raise if not ours."""
        if not isinstance(reference, bytes) or len(reference) != REFERENCE_SIZE:
            raise InvalidReference()
        with self._lock:
            block = self._decryptor.update(reference)
        resident_id = int.from_bytes(block[10:], "big")
        if block[8:10] != b"\x00\x00" or resident_id == 0:
            raise InvalidReference()
        return resident_id


def seal_subject(resident_id: int, secret: bytes, nonce: bytes) -> bytes:
    """Return the subject reference of ``resident_id``; see :class:`SubjectSealer`."""
    return SubjectSealer(secret).seal(resident_id, nonce)


def open_subject(reference: bytes, secret: bytes) -> int:
    """Return the resident id sealed in ``reference``; raise if it is not ours."""
    return SubjectSealer(secret).open(reference)


# Issuing


def next_daily_expiry(
    at: datetime,
    daily_expiry: time = DEFAULT_DAILY_EXPIRY,
    zone: ZoneInfo = DEFAULT_ZONE,
) -> datetime:
    """Return the first daily expiry strictly after ``at``, in UTC."""
    local = check_instant(at).astimezone(zone)
    candidate = datetime.combine(local.date(), daily_expiry, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(
            local.date() + timedelta(days=1), daily_expiry, tzinfo=zone
        )
    return candidate.astimezone(UTC)


class Issuer:
    """Issues the codes of one region with its current key.

    The issuer knows nothing of the clock: each call takes the instant it
    issues at. Screen codes live ``screen_ttl`` and never past the next daily
    expiry (``daily_expiry`` in ``zone``); paper codes live ``paper_ttl``
    and carry no colour. ``random_bytes`` supplies the subject reference's
    randomness and is replaced only by tests that need fixed output.
    """

    def __init__(
        self,
        signing_key: SigningKey,
        subject_secret: bytes,
        *,
        screen_ttl: timedelta = DEFAULT_SCREEN_TTL,
        paper_ttl: timedelta = DEFAULT_PAPER_TTL,
        daily_expiry: time = DEFAULT_DAILY_EXPIRY,
        zone: ZoneInfo = DEFAULT_ZONE,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not timedelta(seconds=1) <= screen_ttl <= MAX_SCREEN_LIFETIME:
            raise CodeParameterError(
                f"The screen code lifetime {screen_ttl} is not between one second"
                f" and {MAX_SCREEN_LIFETIME}."
            )
        if not timedelta(seconds=1) <= paper_ttl <= MAX_PAPER_LIFETIME:
            raise CodeParameterError(
                f"The paper code lifetime {paper_ttl} is not between one second"
                f" and {MAX_PAPER_LIFETIME}."
            )
        self.signing_key = signing_key
        self._region = _region_bytes(signing_key.record.region)
        self._sealer = SubjectSealer(subject_secret)
        self.screen_ttl = screen_ttl
        self.paper_ttl = paper_ttl
        self.daily_expiry = daily_expiry
        self.zone = zone
        self._random_bytes = random_bytes
        # The next daily expiry changes once a day. No expiry falls between
        # an instant and its next expiry, so every instant in that stretch
        # shares it; keeping the stretch spares a zone conversion per code.
        self._expiry_window: tuple[datetime, datetime] | None = None

    @property
    def region(self) -> str:
        return self.signing_key.record.region

    def screen_code(
        self, resident_id: int, masked_name: str, colour: Colour, at: datetime
    ) -> str:
        """Return a screen code showing ``colour`` for the resident."""
        return self.screen_code_and_times(resident_id, masked_name, colour, at)[0]

    def screen_code_and_times(
        self, resident_id: int, masked_name: str, colour: Colour, at: datetime
    ) -> tuple[str, datetime, datetime]:
        """:meth:`screen_code`, with when it was issued and until when it holds."""
        if not isinstance(colour, Colour):
            raise CodeParameterError(f"The colour {colour!r} is not a Colour.")
        issued = self._issue_instant(at)
        until = min(issued + self.screen_ttl, self._next_expiry(issued))
        text = self._sign(
            Purpose.SCREEN, colour, resident_id, masked_name, issued, until, None
        )
        return text, issued, until

    def paper_code(
        self, resident_id: int, masked_name: str, status_index: int, at: datetime
    ) -> str:
        """Return a paper code; its colour is read from the status list."""
        issued = self._issue_instant(at)
        return self._sign(
            Purpose.PAPER,
            None,
            resident_id,
            masked_name,
            issued,
            issued + self.paper_ttl,
            status_index,
        )

    def resolve(self, content: CodeContent) -> int:
        """Return the resident id behind a verified code of this region."""
        if content.region != self.region:
            raise InvalidReference(
                f"The code was issued by region {content.region}, not {self.region}."
            )
        return self._sealer.open(content.subject_reference)

    def _next_expiry(self, issued: datetime) -> datetime:
        window = self._expiry_window
        if window is not None and window[0] <= issued < window[1]:
            return window[1]
        expiry = next_daily_expiry(issued, self.daily_expiry, self.zone)
        self._expiry_window = (issued, expiry)
        return expiry

    def _issue_instant(self, at: datetime) -> datetime:
        issued = check_instant(at, "issue time").replace(microsecond=0)
        self.signing_key.check_usable(issued, KeyRole.CODE)
        return issued

    def _sign(
        self,
        purpose: Purpose,
        colour: Colour | None,
        resident_id: int,
        masked_name: str,
        issued: datetime,
        until: datetime,
        status_index: int | None,
    ) -> str:
        if not isinstance(masked_name, str):
            raise CodeParameterError("The masked name must be a string.")
        wants_index = purpose is Purpose.PAPER
        if wants_index != (status_index is not None) or (
            wants_index and not _is_whole(status_index, 0, _MAX_UINT32)
        ):
            raise CodeParameterError(
                "A paper code needs a status list index between 0 and 2**32 - 1."
            )
        masked_name = unicodedata.normalize("NFC", masked_name)
        _check_name(masked_name)
        record = self.signing_key.record
        # The body is packed here directly rather than through a CodeContent:
        # every field is already checked, and issuing is a hot path whose
        # cost should stay close to that of the signature alone.
        body = _pack_body(
            purpose,
            colour,
            self._region,
            record.key_id,
            _seconds(issued),
            _seconds(until),
            self._sealer.seal(resident_id, self._random_bytes(8)),
            status_index,
            masked_name.encode("utf-8"),
        )
        signature = self.signing_key.code_signature(_PREFIX_BYTES + body)
        return PREFIX + base45.encode(body + signature)


# Checks shared by both directions


def _check_content(content: CodeContent) -> None:
    if content.version != FORMAT_VERSION:
        raise CodeParameterError(f"Only format version {FORMAT_VERSION} is known.")
    check_region(content.region)
    if len(content.key_id) != KEY_ID_SIZE:
        raise CodeParameterError(f"A key id is {KEY_ID_SIZE} bytes long.")
    if len(content.subject_reference) != REFERENCE_SIZE:
        raise CodeParameterError(f"A subject reference is {REFERENCE_SIZE} bytes.")
    if content.purpose is Purpose.SCREEN:
        if not isinstance(content.colour, Colour) or content.status_index is not None:
            raise CodeParameterError(
                "A screen code carries a colour and no status list index."
            )
    elif content.purpose is Purpose.PAPER:
        if content.colour is not None:
            raise CodeParameterError("A paper code carries no colour.")
        index = content.status_index
        if not _is_whole(index, 0, _MAX_UINT32):
            raise CodeParameterError(
                "A paper code needs a status list index between 0 and 2**32 - 1."
            )
    else:
        raise CodeParameterError(f"The purpose {content.purpose!r} is not known.")
    if content.valid_until <= content.issued_at:
        raise CodeParameterError("A code must be valid until after it is issued.")
    _check_name(content.masked_name)


def _check_name(name: str) -> None:
    size = len(name.encode("utf-8", "surrogatepass"))
    if not name or size > MAX_NAME_BYTES:
        raise CodeParameterError(
            f"A masked name must be 1 to {MAX_NAME_BYTES} bytes of UTF-8, not {size}."
        )
    # Controls and line breaks have no place in a name shown at a door, and
    # the bidirectional controls could reorder what a checkpoint displays.
    # Private-use and (to this Python) unassigned characters stay allowed:
    # rare name characters live there in some registries.
    found = _UNNAMEABLE.search(name)
    if found is not None:
        raise CodeParameterError(
            f"A masked name holds the character U+{ord(found.group()):04X}, which"
            " a name cannot hold."
        )


def _is_whole(value: object, low: int, high: int) -> bool:
    # A bool is an int to Python, but True is no resident and no index.
    return (
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    )


def _seconds(at: datetime) -> int:
    if not isinstance(at, datetime) or at.utcoffset() is None or at.microsecond:
        raise CodeParameterError(f"The instant {at!r} is not an aware whole second.")
    value = int(at.timestamp())
    if not 0 <= value <= _MAX_UINT32:
        raise CodeParameterError(f"The instant {at!r} is not between 1970 and 2106.")
    return value


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
