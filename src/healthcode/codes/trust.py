"""The trust list, and the verifier that holds every region's keys.

Regions recognise each other's codes through one signed document: the trust
list names every region's code keys with their validity and is signed by a
``trust-list`` key, whose public record each checkpoint holds as its trust
anchor. A :class:`Verifier` loaded from it accepts a code from any listed
region, rejects one signed by a retired or revoked key, and accepts the
previous key of a region while its rotation overlap lasts.

The document is JSON so that an operator can read it::

    {"format": "healthcode-trust-list/1",
     "signer": {"region": "100000", "key_id": "0a1b2c3d"},
     "payload": "<base64url of the payload JSON>",
     "signature": "<base64url of the Ed25519 signature>"}

The payload is compact JSON with sorted keys: ``version`` (1),
``issued_at``, ``valid_until`` and ``keys``, a list of key records as
:meth:`KeyRecord.to_json` writes them: code keys, and the peer keys with
which instances sign what they send each other. A verifier of codes takes
the code keys alone. The signature covers the ASCII text
``HCZ-TRUST-LIST-1``, a zero byte, and the payload bytes exactly as carried,
so nothing is ever re-serialised before it is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature

from healthcode.codes.errors import (
    CodeParameterError,
    InvalidTrustList,
    KeyConfigurationError,
    UnknownKeyCode,
)
from healthcode.codes.format import (
    DEFAULT_LEEWAY,
    MAX_PAPER_LIFETIME,
    MAX_SCREEN_LIFETIME,
    CodeContent,
    VerifiedCode,
    parse_code,
    verify_parsed,
)
from healthcode.codes.keys import (
    KeyRecord,
    KeyRole,
    KeyState,
    SigningKey,
    check_instant,
    key_name,
)

TRUST_LIST_FORMAT = "healthcode-trust-list/1"
TRUST_LIST_VERSION = 1
SIGNATURE_CONTEXT = b"HCZ-TRUST-LIST-1\x00"
DEFAULT_TRUST_LIST_TTL = timedelta(days=7)
_LISTED_ROLES = frozenset({KeyRole.CODE, KeyRole.PEER})


@dataclass(frozen=True)
class TrustList:
    """A trust list whose signature and validity have been checked."""

    issued_at: datetime
    valid_until: datetime
    signer: KeyRecord
    keys: tuple[KeyRecord, ...]

    @property
    def code_keys(self) -> tuple[KeyRecord, ...]:
        return tuple(r for r in self.keys if r.role is KeyRole.CODE)

    @property
    def peer_keys(self) -> tuple[KeyRecord, ...]:
        return tuple(r for r in self.keys if r.role is KeyRole.PEER)


def sign_trust_list(
    records: Iterable[KeyRecord],
    signer: SigningKey,
    issued_at: datetime,
    valid_until: datetime | None = None,
) -> bytes:
    """Return the signed trust list document of the code and peer keys given.

    Keys that are retired at ``issued_at`` are left out, since nothing they
    signed is accepted any more; revoked keys stay in, so that checkpoints
    can say why a code is refused.
    """
    issued_at = check_instant(issued_at, "trust list issue time").replace(microsecond=0)
    if valid_until is None:
        valid_until = issued_at + DEFAULT_TRUST_LIST_TTL
    valid_until = check_instant(valid_until, "trust list expiry")
    if valid_until <= issued_at:
        raise CodeParameterError("A trust list must be valid until after its issue.")
    signer.check_usable(issued_at, KeyRole.TRUST_LIST)

    listed: dict[tuple[str, bytes], KeyRecord] = {}
    for record in records:
        if record.role not in _LISTED_ROLES:
            raise KeyConfigurationError(
                f"Key {record.name} is a {record.role.value} key; a trust list"
                " lists code and peer keys only."
            )
        if record.state(issued_at) is KeyState.RETIRED:
            continue
        place = (record.region, record.key_id)
        if place in listed and listed[place] != record:
            raise KeyConfigurationError(
                f"Two different records of key {record.name} were given."
            )
        listed[place] = record

    payload = _canonical_json(
        {
            "version": TRUST_LIST_VERSION,
            "issued_at": _iso(issued_at),
            "valid_until": _iso(valid_until),
            "keys": [listed[place].to_json() for place in sorted(listed)],
        }
    )
    signature = signer.sign(SIGNATURE_CONTEXT + payload)
    document = {
        "format": TRUST_LIST_FORMAT,
        "signer": {
            "region": signer.record.region,
            "key_id": signer.record.key_id.hex(),
        },
        "payload": _b64(payload),
        "signature": _b64(signature),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def load_trust_list(
    document: bytes | str,
    anchors: Iterable[KeyRecord],
    at: datetime,
    *,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> TrustList:
    """Check a trust list against the trust anchors held here, at ``at``.

    Raises :class:`InvalidTrustList` with a sentence saying what is wrong:
    the document is malformed, its signer is not an anchor or was revoked,
    its signature does not verify, or it is not valid at ``at``.
    """
    at = check_instant(at)
    try:
        outer = json.loads(document)
        if not isinstance(outer, dict) or outer.get("format") != TRUST_LIST_FORMAT:
            raise ValueError("it does not declare the trust list format")
        signer_region = outer["signer"]["region"]
        signer_id = bytes.fromhex(outer["signer"]["key_id"])
        payload = _unb64(outer["payload"])
        signature = _unb64(outer["signature"])
    # RecursionError: JSON nested past what the parser follows, which a
    # hostile peer may send as its list.
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
        raise InvalidTrustList(f"The trust list is malformed: {exc}.") from None

    signer_name = key_name(str(signer_region), signer_id)
    anchor = next(
        (
            a
            for a in anchors
            if a.role is KeyRole.TRUST_LIST
            and a.region == signer_region
            and a.key_id == signer_id
        ),
        None,
    )
    if anchor is None:
        raise InvalidTrustList(
            f"The trust list is signed by key {signer_name}, which is not a trust"
            " anchor here."
        )
    if anchor.state(at) is KeyState.REVOKED:
        raise InvalidTrustList(
            f"The trust list is signed by key {signer_name}, which was revoked."
        )
    try:
        anchor.verifying_key().verify(signature, SIGNATURE_CONTEXT + payload)
    except (InvalidSignature, ValueError):
        raise InvalidTrustList(
            f"The trust list's signature by key {signer_name} does not verify."
        ) from None

    try:
        body = json.loads(payload)
        if body["version"] != TRUST_LIST_VERSION:
            raise ValueError(f"its version {body['version']!r} is not known")
        issued_at = _parse_iso(body["issued_at"])
        valid_until = _parse_iso(body["valid_until"])
        keys = tuple(KeyRecord.from_json(item) for item in body["keys"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidTrustList(
            f"The trust list's payload is malformed: {exc}."
        ) from None
    if anchor.sign_until is not None and issued_at > anchor.sign_until:
        raise InvalidTrustList(
            f"The trust list was issued at {_iso(issued_at)}, after its signing"
            f" key {signer_name} was retired."
        )
    if issued_at > at + leeway:
        raise InvalidTrustList(
            f"The trust list is dated {_iso(issued_at)}, later than {_iso(at)}."
        )
    if at >= valid_until:
        raise InvalidTrustList(f"The trust list expired at {_iso(valid_until)}.")
    for record in keys:
        if record.role not in _LISTED_ROLES:
            raise InvalidTrustList(
                f"The trust list lists key {record.name} as a {record.role.value}"
                " key; it may list code and peer keys only."
            )
    return TrustList(issued_at, valid_until, anchor, keys)


class Verifier:
    """Verifies codes against the code keys of every region it was given.

    Give it several keys per region to carry a rotation: the previous key
    stays accepted until its ``accept_until``. The limits on leeway and
    lifetime are the checkpoint's policy and apply to every region alike.
    """

    def __init__(
        self,
        keys: Iterable[KeyRecord],
        *,
        leeway: timedelta = DEFAULT_LEEWAY,
        max_screen_lifetime: timedelta = MAX_SCREEN_LIFETIME,
        max_paper_lifetime: timedelta = MAX_PAPER_LIFETIME,
        signers: Iterable[SigningKey] = (),
    ) -> None:
        self._keys: dict[tuple[str, bytes], KeyRecord] = {}
        for record in keys:
            if record.role is not KeyRole.CODE:
                raise KeyConfigurationError(
                    f"Key {record.name} is a {record.role.value} key; a verifier"
                    " holds code keys only."
                )
            place = (record.region, record.key_id)
            if place in self._keys and self._keys[place] != record:
                raise KeyConfigurationError(
                    f"The verifier was given two different records of key"
                    f" {record.name}."
                )
            self._keys[place] = record
        # The private keys held here, by the same places: a code that names
        # one is checked by signing its body again rather than by verifying
        # (see ``format._check_signature``), so each must be the very key
        # its record names.
        self._signers: dict[tuple[str, bytes], SigningKey] = {}
        for signer in signers:
            record = signer.record
            place = (record.region, record.key_id)
            if self._keys.get(place) != record or not signer.holds_its_record():
                raise KeyConfigurationError(
                    f"The verifier was given the private key of {record.name},"
                    " which is not the key of a record it holds."
                )
            self._signers[place] = signer
        self.leeway = leeway
        self.max_screen_lifetime = max_screen_lifetime
        self.max_paper_lifetime = max_paper_lifetime

    @classmethod
    def from_trust_list(
        cls,
        document: bytes | str,
        anchors: Iterable[KeyRecord],
        at: datetime,
        **policy: timedelta,
    ) -> Verifier:
        """Return a verifier holding every key of a checked trust list."""
        trust_list = load_trust_list(document, anchors, at)
        return cls(trust_list.code_keys, **policy)

    @property
    def keys(self) -> tuple[KeyRecord, ...]:
        return tuple(self._keys[place] for place in sorted(self._keys))

    @property
    def regions(self) -> frozenset[str]:
        return frozenset(region for region, _ in self._keys)

    def resolve(self, region: str, key_id: bytes) -> KeyRecord:
        """Return the record of a code key; raise :class:`UnknownKeyCode`."""
        record = self._keys.get((region, key_id))
        if record is None:
            if region not in self.regions:
                raise UnknownKeyCode(
                    f"The code was issued by region {region} with key"
                    f" {key_name(region, key_id)}; that region is not trusted"
                    " here: no trust list held here lists its keys."
                )
            raise UnknownKeyCode(
                f"The code names key {key_name(region, key_id)}, which no trust"
                " list held here lists."
            )
        return record

    def verify(self, text: object, at: datetime) -> VerifiedCode:
        """Verify ``text`` at ``at``, as :func:`.format.verify_code` describes."""
        # A wrong instant is the caller's mistake and is named as such, before
        # anything is said about the text.
        check_instant(at)
        return self.verify_parsed(parse_code(text), at)

    def verify_parsed(
        self, parsed: tuple[CodeContent, bytes, bytes], at: datetime
    ) -> VerifiedCode:
        """:meth:`verify` for what :func:`.format.parse_code` made of a text."""
        return verify_parsed(
            parsed,
            self,
            at,
            leeway=self.leeway,
            max_screen_lifetime=self.max_screen_lifetime,
            max_paper_lifetime=self.max_paper_lifetime,
            signers=self._signers,
        )


def _canonical_json(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("a base64url field is not a string")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("a time is not a string")
    value = datetime.fromisoformat(text)
    if value.utcoffset() is None:
        raise ValueError(f"the time {text!r} has no offset")
    return value.astimezone(UTC)
