"""SMART Health Cards: numeric ``shc:/`` QR codes, compact JWS, FHIR bundles.

A card is a compact JWS (header, payload, signature, each base64url). The
header must say ``alg`` ES256, ``zip`` DEF and the ``kid`` of the issuer's
key; the payload is minified JSON compressed with raw DEFLATE; the signature
is the 64-byte r||s form. In a QR code the JWS sits in a numeric segment
after a byte segment ``shc:/``, each character written as two digits (its
code point minus 45); old cards split a long JWS into chunks
``shc:/C/N/...``, which are read here in any order.

Issuers publish their keys at ``<iss>/.well-known/jwks.json``; here they are
configured locally (:class:`IssuerDirectory`), so verification never
reaches the network. The payload names its issuer (``iss``, an https URL
without a trailing slash), when the card became valid (``nbf``, seconds) and
perhaps when it expires (``exp``). Its FHIR bundle holds one patient and the
immunizations and laboratory results that become records here.

Every fault the specification names raises its own subclass of
:class:`~healthcode.certificates.errors.InvalidCertificate`, in the order a
reader meets them: QR text, JWS form, header, signature form, compression,
payload, issuer and signature, times and types, bundle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from PIL import Image

from healthcode.certificates.dcc import parse_instant
from healthcode.certificates.errors import (
    ExpiredCertificate,
    ForgedCertificate,
    HealthCardBundleError,
    HealthCardCompressionError,
    HealthCardFormatError,
    HealthCardHeaderError,
    HealthCardPayloadError,
    HealthCardQrError,
    HealthCardSignatureFormatError,
    NotYetValidCertificate,
    TrustConfigurationError,
    UnknownIssuer,
)
from healthcode.certificates.names import CertificateName, DateOfBirth

__all__ = [
    "HEALTH_CARD_TYPE",
    "MAX_CHUNK_JWS",
    "MAX_QR_VERSION",
    "MAX_SINGLE_JWS",
    "HealthCard",
    "Immunization",
    "IssuerDirectory",
    "IssuerKey",
    "LabResult",
    "decode_numeric",
    "read_card",
    "read_card_file",
    "read_qr_images",
    "verify_card",
]

QR_PREFIX = "shc:/"
#: The longest JWS that fits one version 22 QR code at error correction L.
MAX_SINGLE_JWS = 1195
#: The longest JWS chunk of a legacy multi-chunk card.
MAX_CHUNK_JWS = 1191
#: The largest QR version a card may use.
MAX_QR_VERSION = 22
HEALTH_CARD_TYPE = "https://smarthealth.cards#health-card"
FILE_SUFFIX = ".smart-health-card"

# A payload inflating beyond this is not a card but a zip bomb.
MAX_INFLATED = 256 * 1024
# A time above this many seconds (the year 5138) was written in milliseconds.
_MILLISECONDS_FROM = 100_000_000_000

_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SINGLE = re.compile(r"shc:/([0-9]*)")
_CHUNK = re.compile(r"shc:/([1-9][0-9]*)/([1-9][0-9]*)/([0-9]*)")

# Vaccine code systems a product can be named in: CVX (United States), SNOMED
# CT, ICD-11 MMS (WHO), GS1 GTIN and the WHO ATC classification.
VACCINE_SYSTEMS = {
    "http://hl7.org/fhir/sid/cvx": "cvx",
    "http://snomed.info/sct": "snomed",
    "http://id.who.int/icd11/mms": "icd11",
    "https://www.gs1.org/gtin": "gtin",
    "http://www.whocc.no/atc": "atc",
}
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
# LOINC codes of SARS-CoV-2 tests: nucleic acid amplification ("pcr") and
# antigen detection ("antigen"). An unlisted code is read but has no method,
# so it cannot become a test record.
_NUCLEIC_ACID = frozenset(
    {
        "94309-2",
        "94306-8",
        "94500-6",
        "94531-1",
        "94533-7",
        "94534-5",
        "94559-2",
        "94565-9",
        "94745-7",
        "94746-5",
        "94756-4",
        "94757-2",
        "94759-8",
        "94760-6",
        "94845-5",
        "95406-5",
        "95409-9",
        "95425-5",
        "96094-8",
        "96123-5",
        "96448-6",
        "96986-5",
    }
)
_ANTIGEN = frozenset(["94558-4", "95209-3", "96119-3", "97097-0"])
# SNOMED CT codes of a qualitative result.
_RESULTS = {
    "260385009": "negative",
    "260415000": "negative",
    "10828004": "positive",
    "260373001": "positive",
}
# Identity assurance levels, the only thing ``meta`` may carry.
_ASSURANCE = frozenset({"IAL1", "IAL1.2", "IAL1.4", "IAL2", "IAL3"})


# --------------------------------------------------------------------------
# Issuer keys
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerKey:
    """One issuer signing key: an EC P-256 public key and its thumbprint kid."""

    issuer: str
    kid: str
    public_key: ec.EllipticCurvePublicKey


class IssuerDirectory:
    """The issuers trusted here and their keys, configured locally.

    Each key is checked when it is loaded, so that a bad key set fails at
    start-up, not at a door: it must be an EC P-256 key for ES256 signing
    (``use`` and ``alg``, where given, must say so), hold no private part,
    and have as ``kid`` its RFC 7638 thumbprint. A key with an ``x5c``
    chain must be the chain's first certificate's key, and each certificate
    must be issued by the next; the chain's dates are not checked, since
    cards outlive the certificates their keys were once published with.
    """

    def __init__(self, keys: Iterable[IssuerKey] = ()) -> None:
        self._keys: dict[tuple[str, str], IssuerKey] = {}
        for key in keys:
            self._keys[(key.issuer, key.kid)] = key

    def __len__(self) -> int:
        return len(self._keys)

    def issuers(self) -> set[str]:
        """The issuer URLs that have at least one key here."""
        return {issuer for issuer, _ in self._keys}

    def key(self, issuer: str, kid: str) -> IssuerKey | None:
        """The key ``kid`` of ``issuer``, or None when it is not trusted here."""
        return self._keys.get((issuer, kid))

    @classmethod
    def from_jwks(cls, issuer: str, jwks: Any) -> IssuerDirectory:
        """The keys of one issuer from its JWK set (``{"keys": [...]}``)."""
        return cls(_issuer_keys(issuer, jwks))

    @classmethod
    def from_file(cls, path: Path | str) -> IssuerDirectory:
        """Read ``{"<iss>": {"keys": [...]}, ...}``: each issuer's JWK set."""
        path = Path(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrustConfigurationError(
                f"The issuer key file {path} cannot be read as JSON."
            ) from exc
        if not isinstance(document, dict):
            raise TrustConfigurationError(
                f"The issuer key file {path} must map issuer URLs to JWK sets."
            )
        keys: list[IssuerKey] = []
        for issuer, jwks in document.items():
            keys.extend(_issuer_keys(issuer, jwks))
        return cls(keys)

    @classmethod
    def from_jwks_file(cls, issuer: str, path: Path | str) -> IssuerDirectory:
        """The keys of one issuer from a copy of its ``.well-known/jwks.json``."""
        path = Path(path)
        try:
            jwks = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrustConfigurationError(
                f"The key set file {path} of issuer {issuer} cannot be read as JSON."
            ) from exc
        return cls.from_jwks(issuer, jwks)

    def merged(self, other: IssuerDirectory) -> IssuerDirectory:
        """A directory with the keys of both."""
        return IssuerDirectory([*self._keys.values(), *other._keys.values()])


def _issuer_keys(issuer: str, jwks: Any) -> list[IssuerKey]:
    if _issuer_url_problem(issuer) is not None:
        raise TrustConfigurationError(
            f"The issuer {issuer!r} is not an https URL without a trailing slash."
        )
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise TrustConfigurationError(
            f"The key set of issuer {issuer} is not a JWK set with a keys array."
        )
    return [_issuer_key(issuer, jwk) for jwk in jwks["keys"]]


def _issuer_key(issuer: str, jwk: Any) -> IssuerKey:
    if not isinstance(jwk, dict):
        raise TrustConfigurationError(f"A key of issuer {issuer} is not a JWK object.")
    kid = jwk.get("kid")
    where = f"key {kid!r} of issuer {issuer}"
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise TrustConfigurationError(f"The {where} is not an EC P-256 key.")
    if jwk.get("use", "sig") != "sig":
        raise TrustConfigurationError(f"The {where} is not for signing (use sig).")
    if jwk.get("alg", "ES256") != "ES256":
        raise TrustConfigurationError(f"The {where} is not for ES256.")
    if "d" in jwk:
        raise TrustConfigurationError(f"The {where} holds its private part.")
    try:
        x = _b64url(jwk["x"])
        y = _b64url(jwk["y"])
        if len(x) != 32 or len(y) != 32:
            raise ValueError("coordinates of the wrong length")
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
    except (KeyError, TypeError, ValueError) as exc:
        raise TrustConfigurationError(
            f"The {where} has no valid point on the curve."
        ) from exc
    if kid != _thumbprint(jwk):
        raise TrustConfigurationError(
            f"The {where} does not have its RFC 7638 thumbprint as kid."
        )
    if "x5c" in jwk:
        _check_chain(jwk["x5c"], public, where)
    return IssuerKey(issuer, kid, public)


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_chain(chain: Any, public: ec.EllipticCurvePublicKey, where: str) -> None:
    try:
        certificates = [
            x509.load_der_x509_certificate(base64.b64decode(item, validate=True))
            for item in chain
        ]
    except (TypeError, ValueError, binascii.Error) as exc:
        raise TrustConfigurationError(
            f"The {where} has an x5c chain that does not parse."
        ) from exc
    if not certificates or certificates[0].public_key() != public:
        raise TrustConfigurationError(
            f"The {where} is not the key of the first certificate of its x5c chain."
        )
    for child, parent in zip(certificates, certificates[1:], strict=False):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise TrustConfigurationError(
                f"The {where} has an x5c chain whose certificates do not chain."
            ) from exc


# --------------------------------------------------------------------------
# What a card says
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Immunization:
    """A completed immunization: the product's code and when it was given."""

    entry: str
    system: str
    code: str
    occurred_at: datetime
    dose_number: int
    performer: str | None = None
    lot: str | None = None


@dataclass(frozen=True)
class LabResult:
    """A laboratory observation: the test's LOINC code, its method and result."""

    entry: str
    code: str
    method: str | None
    result: str | None
    effective_at: datetime
    performer: str | None = None


@dataclass(frozen=True)
class HealthCard:
    """A card whose signature, times, types and bundle have been checked."""

    issuer: str
    key_id: str
    valid_from: datetime
    expires_at: datetime | None
    types: tuple[str, ...]
    name: CertificateName
    birth_date: DateOfBirth | None
    immunizations: tuple[Immunization, ...]
    lab_results: tuple[LabResult, ...]
    identifier: str

    def __repr__(self) -> str:
        return (
            f"HealthCard(issuer={self.issuer!r}, immunizations="
            f"{len(self.immunizations)}, lab_results={len(self.lab_results)})"
        )


# --------------------------------------------------------------------------
# QR codes and files
# --------------------------------------------------------------------------


def decode_numeric(texts: Sequence[str]) -> str:
    """The JWS in one ``shc:/`` QR text, or in all chunks of a legacy card.

    The texts are taken exactly as the QR codes hold them: leading or
    trailing characters are a fault. Chunks may come in any order; each
    must say ``shc:/C/N/`` with the same N, every index from 1 to N must be
    there once, and a card short enough for one QR code must not be split.
    """
    if not texts:
        raise HealthCardQrError("No QR text was given.")
    for text in texts:
        if not isinstance(text, str):
            raise HealthCardQrError("A QR text must be given as text.")
        if text != text.strip():
            raise HealthCardQrError(
                "The QR text has characters before or after the card."
            )
    if len(texts) == 1 and _CHUNK.fullmatch(texts[0]) is None:
        match = _SINGLE.fullmatch(texts[0])
        if match is None:
            raise HealthCardQrError("The QR text is not shc:/ followed by digits.")
        jws = _digits_to_jws(match.group(1))
        if len(jws) > MAX_SINGLE_JWS:
            raise HealthCardQrError(
                f"The QR code holds a card longer than {MAX_SINGLE_JWS} characters."
            )
        return jws

    chunks: dict[int, str] = {}
    count = 0
    for text in texts:
        match = _CHUNK.fullmatch(text)
        if match is None:
            raise HealthCardQrError(
                "A chunk of a multi-part card is not shc:/C/N/ followed by digits."
            )
        index, total = int(match.group(1)), int(match.group(2))
        if total == 1:
            raise HealthCardQrError(
                "A card in one QR code must not carry a chunk header (shc:/1/1/)."
            )
        if count and total != count:
            raise HealthCardQrError("The chunks disagree on how many there are.")
        count = total
        if not 1 <= index <= total:
            raise HealthCardQrError(f"Chunk index {index} lies outside 1 to {total}.")
        if index in chunks:
            raise HealthCardQrError(f"Chunk {index} was given twice.")
        jws_chunk = _digits_to_jws(match.group(3))
        if len(jws_chunk) > MAX_CHUNK_JWS:
            raise HealthCardQrError(
                f"Chunk {index} holds more than {MAX_CHUNK_JWS} characters."
            )
        chunks[index] = jws_chunk
    missing = sorted(set(range(1, count + 1)) - chunks.keys())
    if missing:
        raise HealthCardQrError(
            f"The card is missing {len(missing)} of its {count} chunks."
        )
    jws = "".join(chunks[index] for index in range(1, count + 1))
    if len(jws) <= MAX_SINGLE_JWS:
        raise HealthCardQrError(
            "The card is split into more QR codes than its length needs."
        )
    return jws


def _digits_to_jws(digits: str) -> str:
    if not digits:
        raise HealthCardQrError("The QR text holds no digits after its header.")
    if len(digits) % 2:
        raise HealthCardQrError("The QR text holds an odd number of digits.")
    values = [int(digits[i : i + 2]) for i in range(0, len(digits), 2)]
    # Base64url characters run from "-" (45) to "z" (122): 0 to 77.
    if max(values) > 77:
        raise HealthCardQrError(
            "The QR text holds a digit pair above 77, which stands for no "
            "base64url character."
        )
    return "".join(chr(value + 45) for value in values)


def read_qr_images(images: Iterable[Image.Image | Path | str]) -> list[str]:
    """The ``shc:/`` text of each image's QR code, refusing codes above version 22."""
    import zxingcpp

    texts = []
    for image in images:
        try:
            if not isinstance(image, Image.Image):
                with Image.open(image) as opened:
                    image = opened.convert("RGB")
            found = zxingcpp.read_barcodes(
                image,
                formats=zxingcpp.BarcodeFormat.QRCode,
                text_mode=zxingcpp.TextMode.Plain,
            )
        except (OSError, ValueError) as exc:
            raise HealthCardQrError("The image cannot be opened as a picture.") from exc
        if len(found) != 1:
            raise HealthCardQrError(
                "No QR code could be read from the image."
                if not found
                else "The image holds more than one QR code."
            )
        version = int(found[0].extra.get("Version", 0) or 0)
        if version > MAX_QR_VERSION:
            raise HealthCardQrError(
                f"The QR code is version {version}; a card may use at most version "
                f"{MAX_QR_VERSION}."
            )
        texts.append(found[0].text)
    return texts


def read_card_file(path: Path | str) -> list[str]:
    """The JWS texts of a ``.smart-health-card`` file.

    The file is JSON ``{"verifiableCredential": [jws, ...]}``, nothing
    before it and nothing after but one line break.
    """
    path = Path(path)
    if path.suffix != FILE_SUFFIX:
        raise HealthCardFormatError(
            f"A card file must have the extension {FILE_SUFFIX}."
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HealthCardFormatError("The card file cannot be read as UTF-8.") from exc
    return cards_in_file_text(text)


def cards_in_file_text(text: str) -> list[str]:
    """The JWS texts of a card file's content."""
    body = text[:-1] if text.endswith("\n") else text
    if body != body.strip():
        raise HealthCardFormatError(
            "The card file has characters before or after its JSON."
        )
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise HealthCardFormatError("The card file is not JSON.") from exc
    cards = document.get("verifiableCredential") if isinstance(document, dict) else None
    if not isinstance(cards, list) or not cards:
        raise HealthCardFormatError(
            "The card file has no verifiableCredential array of cards."
        )
    if not all(isinstance(card, str) for card in cards):
        raise HealthCardFormatError("A verifiableCredential entry is not text.")
    return cards


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------


def read_card(
    text: str | Sequence[str],
    *,
    issuers: IssuerDirectory,
    now: datetime,
    skew: timedelta = timedelta(0),
) -> HealthCard:
    """Read a card from QR text (one ``shc:/`` text or all chunks) or a JWS."""
    texts = [text] if isinstance(text, str) else list(text)
    if texts and texts[0].lstrip().startswith("shc:"):
        jws = decode_numeric(texts)
        chunked = len(texts) > 1
        return verify_card(
            jws, issuers=issuers, now=now, skew=skew, long_allowed=chunked
        )
    if len(texts) != 1:
        raise HealthCardFormatError("Only QR chunks come in several parts.")
    return verify_card(texts[0], issuers=issuers, now=now, skew=skew)


def verify_card(
    jws: str,
    *,
    issuers: IssuerDirectory,
    now: datetime,
    skew: timedelta = timedelta(0),
    long_allowed: bool = False,
) -> HealthCard:
    """Verify a compact JWS card at ``now``; raise the fault if it is not valid.

    ``long_allowed`` admits a JWS longer than one QR code holds, which only a
    legacy multi-chunk card may be.
    """
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise TypeError("The clock must be an aware datetime.")
    if not isinstance(jws, str):
        raise HealthCardFormatError("A card must be given as text.")
    if jws != jws.strip():
        raise HealthCardFormatError("The card has characters before or after it.")
    if _JWS.fullmatch(jws) is None:
        raise HealthCardFormatError(
            "The card is not a compact JWS of three base64url parts."
        )
    header_text, payload_text, signature_text = jws.split(".")

    header = _json_object(_b64url(header_text), HealthCardHeaderError, "header")
    if header.get("alg") != "ES256":
        raise HealthCardHeaderError("The JWS header does not say alg ES256.")
    if header.get("zip") != "DEF":
        raise HealthCardHeaderError("The JWS header does not say zip DEF.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise HealthCardHeaderError("The JWS header names no kid.")

    signature = _b64url(signature_text)
    if len(signature) != 64:
        if len(signature) > 64 and signature[0] == 0x30 and signature[2] == 0x02:
            raise HealthCardSignatureFormatError(
                "The signature is DER-encoded; a card's is the 64-byte r||s form."
            )
        raise HealthCardSignatureFormatError(
            f"The signature is {len(signature)} bytes; a card's is 64."
        )

    inflated = _inflate(_b64url(payload_text))
    # The length is judged once the header and the compression are known to
    # be right, since an uncompressed payload is long for that reason.
    if len(jws) > MAX_SINGLE_JWS and not long_allowed:
        raise HealthCardFormatError(
            f"The card is longer than the {MAX_SINGLE_JWS} characters one QR code "
            "holds."
        )
    payload = _json_object(inflated, HealthCardPayloadError, "payload")
    issuer = payload.get("iss")
    problem = _issuer_url_problem(issuer)
    if problem:
        raise HealthCardPayloadError(f"The card's issuer {problem}.")
    key = issuers.key(issuer, kid)
    if key is None:
        raise UnknownIssuer(
            "The card's issuer and key are not among the issuers trusted here."
        )
    digest = hashlib.sha256(f"{header_text}.{payload_text}".encode("ascii")).digest()
    try:
        key.public_key.verify(
            encode_dss_signature(
                int.from_bytes(signature[:32], "big"),
                int.from_bytes(signature[32:], "big"),
            ),
            f"{header_text}.{payload_text}".encode("ascii"),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        raise ForgedCertificate("The card's signature does not verify.") from None

    valid_from = _seconds(payload.get("nbf"), "nbf")
    expires_at = None if payload.get("exp") is None else _seconds(payload["exp"], "exp")
    if expires_at is not None and expires_at < valid_from:
        raise HealthCardPayloadError("The card expires before it becomes valid.")
    if valid_from > now + skew:
        raise NotYetValidCertificate("The card is not valid yet.")
    if expires_at is not None and now > expires_at:
        raise ExpiredCertificate("The card has expired.")

    vc = payload.get("vc")
    types = vc.get("type") if isinstance(vc, dict) else None
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise HealthCardPayloadError("The card's vc.type is not a list of types.")
    if HEALTH_CARD_TYPE not in types:
        raise HealthCardPayloadError(f"The card's vc.type lacks {HEALTH_CARD_TYPE}.")
    subject = vc.get("credentialSubject")
    bundle = subject.get("fhirBundle") if isinstance(subject, dict) else None
    name, birth, immunizations, labs = _read_bundle(bundle)
    return HealthCard(
        issuer=issuer,
        key_id=kid,
        valid_from=valid_from,
        expires_at=expires_at,
        types=tuple(types),
        name=name,
        birth_date=birth,
        immunizations=immunizations,
        lab_results=labs,
        identifier="shc-" + digest.hex()[:32],
    )


def _b64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise HealthCardFormatError("A part of the card is not base64url.") from exc


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error:
        pass
    else:
        if inflater.unconsumed_tail:
            raise HealthCardCompressionError(
                f"The card's payload inflates to more than {MAX_INFLATED} bytes."
            )
        if inflater.eof and not inflater.unused_data:
            return out
    try:
        zlib.decompress(data)
    except zlib.error:
        raise HealthCardCompressionError(
            "The card's payload is not DEFLATE-compressed."
        ) from None
    raise HealthCardCompressionError(
        "The card's payload is zlib-wrapped; a card uses raw DEFLATE."
    )


def _json_object(
    data: bytes,
    error: type[HealthCardHeaderError] | type[HealthCardPayloadError],
    what: str,
) -> dict[str, Any]:
    if data.startswith(b"\xef\xbb\xbf"):
        raise error(f"The card's {what} starts with a byte-order mark.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"The card's {what} is not UTF-8.") from None
    if text != text.strip():
        raise error(f"The card's {what} has white space before or after its JSON.")
    try:
        value = json.loads(text)
    except ValueError:
        raise error(f"The card's {what} is not JSON.") from None
    if not isinstance(value, dict):
        raise error(f"The card's {what} is not a JSON object.")
    return value


def _issuer_url_problem(issuer: Any) -> str | None:
    if not isinstance(issuer, str) or not issuer:
        return "is missing"
    if not issuer.startswith("https://") or len(issuer) <= len("https://"):
        return "is not an https URL"
    if issuer.endswith("/"):
        return "URL ends in a slash"
    return None


def _seconds(value: Any, name: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HealthCardPayloadError(f"The card's {name} is missing or not a number.")
    if not math.isfinite(value) or value < 0:
        raise HealthCardPayloadError(f"The card's {name} is not a time.")
    if value >= _MILLISECONDS_FROM:
        raise HealthCardPayloadError(
            f"The card's {name} is written in milliseconds; it must be seconds."
        )
    return datetime.fromtimestamp(value, UTC)


# --------------------------------------------------------------------------
# The FHIR bundle
# --------------------------------------------------------------------------


def _read_bundle(
    bundle: Any,
) -> tuple[
    CertificateName, DateOfBirth | None, tuple[Immunization, ...], tuple[LabResult, ...]
]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise HealthCardBundleError("The card holds no FHIR Bundle.")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise HealthCardBundleError("The card's bundle has no entries.")
    _refuse_empty(bundle, "")
    patients = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(entry.get("fullUrl"), str):
            raise HealthCardBundleError(
                f"Bundle entry {index} lacks its resource or its fullUrl."
            )
        _check_meta(resource, index)
        if resource.get("resourceType") == "Patient":
            patients.append((entry["fullUrl"], resource))
    if len(patients) != 1:
        raise HealthCardBundleError(
            f"The card's bundle holds {len(patients)} patients; a card is for one."
        )
    patient_url, patient = patients[0]
    name, birth = _patient(patient)

    immunizations: list[tuple[int, Immunization]] = []
    labs: list[LabResult] = []
    for index, entry in enumerate(entries):
        resource = entry["resource"]
        kind = resource.get("resourceType")
        if kind == "Immunization":
            _check_reference(resource.get("patient"), patient_url, index)
            immunizations.append(_immunization(entry["fullUrl"], resource, index))
        elif kind == "Observation":
            _check_reference(resource.get("subject"), patient_url, index)
            labs.append(_observation(entry["fullUrl"], resource, index))
    # Doses without a stated number are numbered in the order given.
    ordered = sorted(immunizations, key=lambda pair: pair[1].occurred_at)
    numbered = []
    for position, (stated, item) in enumerate(ordered, start=1):
        dose = stated or position
        numbered.append(
            Immunization(
                item.entry,
                item.system,
                item.code,
                item.occurred_at,
                dose,
                item.performer,
                item.lot,
            )
        )
    return name, birth, tuple(numbered), tuple(labs)


def _refuse_empty(value: Any, path: str) -> None:
    # FHIR forbids empty strings, arrays and objects anywhere; a card that
    # holds one was not made by a conforming issuer.
    if value in ("", [], {}):
        raise HealthCardBundleError(
            f"The card's bundle holds an empty value at {path}."
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_empty(item, f"{path}/{key}")
    elif isinstance(value, list):
        for number, item in enumerate(value):
            _refuse_empty(item, f"{path}/{number}")


def _check_meta(resource: dict[str, Any], index: int) -> None:
    if "meta" not in resource:
        return
    meta = resource["meta"]
    security = meta.get("security") if isinstance(meta, dict) else None
    if (
        not isinstance(meta, dict)
        or set(meta) != {"security"}
        or not isinstance(security, list)
        or not all(
            isinstance(label, dict)
            and set(label) <= {"system", "code"}
            and label.get("code") in _ASSURANCE
            for label in security
        )
    ):
        raise HealthCardBundleError(
            f"Bundle entry {index} has a meta other than identity assurance labels."
        )


def _check_reference(reference: Any, patient_url: str, index: int) -> None:
    target = reference.get("reference") if isinstance(reference, dict) else None
    if target != patient_url:
        raise HealthCardBundleError(
            f"Bundle entry {index} does not refer to the bundle's patient."
        )


def _patient(patient: dict[str, Any]) -> tuple[CertificateName, DateOfBirth | None]:
    names = patient.get("name")
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        raise HealthCardBundleError("The card's patient has no name.")
    first = names[0]
    family = first.get("family")
    given = first.get("given") or []
    if not isinstance(family, (str, type(None))) or not isinstance(given, list):
        raise HealthCardBundleError("The card's patient name is malformed.")
    given_text = " ".join(str(part) for part in given) or None
    birth = None
    if "birthDate" in patient:
        try:
            birth = DateOfBirth.parse(str(patient["birthDate"]))
        except ValueError:
            raise HealthCardBundleError(
                "The card's patient has a birth date that is not a date."
            ) from None
    return CertificateName(family=family, given=given_text), birth


def _immunization(
    url: str, resource: dict[str, Any], index: int
) -> tuple[int, Immunization]:
    if resource.get("status") != "completed":
        raise HealthCardBundleError(
            f"Immunization entry {index} does not have the status completed."
        )
    codings = (resource.get("vaccineCode") or {}).get("coding")
    if not isinstance(codings, list) or not codings:
        raise HealthCardBundleError(f"Immunization entry {index} has no vaccine code.")
    known = [
        coding
        for coding in codings
        if isinstance(coding, dict)
        and coding.get("system") in VACCINE_SYSTEMS
        and isinstance(coding.get("code"), str)
    ]
    if not known:
        raise HealthCardBundleError(
            f"Immunization entry {index} names its vaccine in no code system we know."
        )
    if "occurrenceString" in resource or "occurrenceDateTime" not in resource:
        raise HealthCardBundleError(
            f"Immunization entry {index} must give occurrenceDateTime and only it."
        )
    occurred = _fhir_instant(resource["occurrenceDateTime"], "Immunization", index)
    stated = 0
    for applied in resource.get("protocolApplied") or []:
        number = (
            applied.get("doseNumberPositiveInt") if isinstance(applied, dict) else None
        )
        if isinstance(number, int) and not isinstance(number, bool) and number > 0:
            stated = number
    return stated, Immunization(
        entry=url,
        system=VACCINE_SYSTEMS[known[0]["system"]],
        code=known[0]["code"],
        occurred_at=occurred,
        dose_number=stated,
        performer=_performer(resource),
        lot=resource.get("lotNumber")
        if isinstance(resource.get("lotNumber"), str)
        else None,
    )


def _observation(url: str, resource: dict[str, Any], index: int) -> LabResult:
    if resource.get("status") not in ("final", "amended", "corrected"):
        raise HealthCardBundleError(f"Observation entry {index} is not final.")
    codings = (resource.get("code") or {}).get("coding")
    loinc = [
        coding
        for coding in codings or []
        if isinstance(coding, dict) and coding.get("system") == LOINC
    ]
    if not loinc or not isinstance(loinc[0].get("code"), str):
        raise HealthCardBundleError(f"Observation entry {index} has no LOINC code.")
    code = loinc[0]["code"]
    if "effectiveDateTime" not in resource:
        raise HealthCardBundleError(
            f"Observation entry {index} has no effectiveDateTime."
        )
    effective = _fhir_instant(resource["effectiveDateTime"], "Observation", index)
    values = (resource.get("valueCodeableConcept") or {}).get("coding") or []
    result = None
    for coding in values:
        if isinstance(coding, dict) and coding.get("system") == SNOMED:
            result = _RESULTS.get(str(coding.get("code")))
    method = "pcr" if code in _NUCLEIC_ACID else "antigen" if code in _ANTIGEN else None
    performers = resource.get("performer") or []
    performer = None
    if performers and isinstance(performers[0], dict):
        performer = performers[0].get("display")
    return LabResult(url, code, method, result, effective, performer)


def _performer(resource: dict[str, Any]) -> str | None:
    performers = resource.get("performer") or []
    if performers and isinstance(performers[0], dict):
        actor = performers[0].get("actor")
        if isinstance(actor, dict) and isinstance(actor.get("display"), str):
            return str(actor["display"])
    return None


def _fhir_instant(value: Any, kind: str, index: int) -> datetime:
    # A partial date (2021 or 2021-01) says too little to date a record.
    if not isinstance(value, str) or not re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T.*)?", value
    ):
        raise HealthCardBundleError(
            f"{kind} entry {index} has a date that is not YYYY-MM-DD or a date-time."
        )
    try:
        return parse_instant(value)
    except ValueError:
        raise HealthCardBundleError(
            f"{kind} entry {index} has a date that does not exist."
        ) from None
