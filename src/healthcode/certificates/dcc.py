"""EU Digital COVID Certificates: from ``HC1:`` text to a verified certificate.

A certificate travels as QR text: the context identifier ``HC1:``, then
Base45, which holds a zlib stream, which holds a COSE_Sign1 message, whose
payload is a CBOR Web Token with the certificate itself (a JSON-like map)
under claim -260, key 1. Each stage has its own function here, so that a
test can check each one against the public test corpus, and
:func:`read_certificate` runs them all in order:

1. :func:`strip_prefix`, :func:`decode_base45`, :func:`decompress`;
2. :func:`decode_sign1` (tagged, untagged or wrapped in the CWT tag);
3. :func:`verify_signature` against the configured document signers, found
   by the key id of the protected header or, when it has none, of the
   unprotected one; key ids can collide, so every signer with the id is
   tried;
4. :func:`decode_claims` and :func:`validate_payload` (the JSON schema of the
   payload's version, then the dates inside it);
5. :func:`check_key_usage` and :func:`check_validity`, both at the clock the
   caller gives.

Stages 1 to 4 raise a subclass of
:class:`~healthcode.certificates.errors.InvalidCertificate` that names the
stage; nothing is trusted before the signature has verified.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import io
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import jsonschema
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from PIL import Image

from healthcode.certificates.errors import (
    CertificateCompressionError,
    CertificateEncodingError,
    CertificatePrefixError,
    CertificateSchemaError,
    CertificateStructureError,
    ExpiredCertificate,
    ForgedCertificate,
    InvalidCertificate,
    NotYetValidCertificate,
    SignerNotPermitted,
    SignerNotValid,
    TrustConfigurationError,
    UnknownSigner,
    UnsupportedAlgorithm,
)
from healthcode.certificates.names import CertificateName, DateOfBirth
from healthcode.certificates.schema import family_of, hcert_schema
from healthcode.codes import base45

__all__ = [
    "PREFIX",
    "CertificateKind",
    "Claims",
    "DigitalCovidCertificate",
    "DocumentSigner",
    "SignerList",
    "Sign1",
    "check_key_usage",
    "check_lifetime",
    "check_signer_validity",
    "check_validity",
    "decode_base45",
    "decode_claims",
    "decode_hcert",
    "decode_sign1",
    "decompress",
    "parse_instant",
    "read_certificate",
    "read_qr_image",
    "strip_prefix",
    "validate_payload",
    "verify_signature",
]

PREFIX = "HC1:"

# COSE and CWT labels (RFC 9052, RFC 8392) and the health certificate claim.
HEADER_ALGORITHM = 1
HEADER_KEY_ID = 4
ALGORITHM_ES256 = -7
ALGORITHM_PS256 = -37
CLAIM_ISSUER = 1
CLAIM_EXPIRY = 4
CLAIM_ISSUED_AT = 6
CLAIM_HCERT = -260
HCERT_DCC = 1
TAG_COSE_SIGN1 = 18
TAG_CWT = 61

# A QR code holds at most 4,296 alphanumeric characters, about 2,900 bytes of
# Base45; a certificate that inflates to more than this is a zip bomb, not a
# certificate.
MAX_INFLATED = 64 * 1024

# Extended key usages of document signers. Several member states' first
# test systems used the arc with an extra 0 (…1.4.1.0.1847…); certificates
# signed under them are in circulation, so both arcs are read.
_USAGE_ARCS = ("1.3.6.1.4.1.1847.2021.1", "1.3.6.1.4.1.0.1847.2021.1")


class CertificateKind(enum.StrEnum):
    """What a certificate attests; the value is its payload key."""

    VACCINATION = "v"
    TEST = "t"
    RECOVERY = "r"

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> CertificateKind:
        """The kind of ``payload``: the one of ``v``, ``t`` and ``r`` it holds."""
        present = [kind for kind in cls if kind.value in payload]
        if len(present) != 1:
            raise CertificateSchemaError(
                "A certificate must hold exactly one of a vaccination, a test or "
                "a recovery."
            )
        return present[0]

    @property
    def usage_suffix(self) -> str:
        """The last arc of the extended key usage that permits this kind."""
        return {"t": "1", "v": "2", "r": "3"}[self.value]

    @property
    def label(self) -> str:
        """The kind in words, for messages and screens."""
        return {"t": "test", "v": "vaccination", "r": "recovery"}[self.value]


@dataclass(frozen=True)
class Sign1:
    """A COSE_Sign1 message, its headers decoded and its bytes kept as sent."""

    protected: bytes
    protected_header: Mapping[Any, Any]
    unprotected_header: Mapping[Any, Any]
    payload: bytes
    signature: bytes

    @property
    def algorithm(self) -> Any:
        """The algorithm label, from the protected header or else the unprotected."""
        if HEADER_ALGORITHM in self.protected_header:
            return self.protected_header[HEADER_ALGORITHM]
        return self.unprotected_header.get(HEADER_ALGORITHM)

    @property
    def key_id(self) -> bytes | None:
        """The key id of the protected header, or else of the unprotected one.

        A key id in the protected header is signed and so wins even when the
        unprotected header names another; the unprotected one is only a
        fallback for issuers that put it there alone.
        """
        if HEADER_KEY_ID in self.protected_header:
            kid = self.protected_header[HEADER_KEY_ID]
        else:
            kid = self.unprotected_header.get(HEADER_KEY_ID)
        return kid if isinstance(kid, bytes) else None

    def signed_bytes(self) -> bytes:
        """The Sig_structure that the signature covers (RFC 9052, section 4.4)."""
        return cbor2.dumps(["Signature1", self.protected, b"", self.payload])


@dataclass(frozen=True)
class Claims:
    """The CWT claims of a certificate: issuer country, lifetime and payload."""

    issuer: str | None
    issued_at: datetime
    expires_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, eq=False)
class DocumentSigner:
    """A document signer certificate (DSC) that certificates may be signed by."""

    certificate: x509.Certificate
    key_id: bytes
    not_before: datetime
    not_after: datetime
    usages: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate) -> DocumentSigner:
        """A signer from a certificate; the kid is 8 bytes of its DER's SHA-256."""
        der = certificate.public_bytes(serialization.Encoding.DER)
        return cls(
            certificate=certificate,
            key_id=hashlib.sha256(der).digest()[:8],
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            usages=_usages(certificate, der),
        )

    @classmethod
    def from_der(cls, der: bytes) -> DocumentSigner:
        """A signer from DER bytes."""
        try:
            return cls.from_certificate(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise TrustConfigurationError(
                "A document signer certificate is not valid DER."
            ) from exc

    @classmethod
    def from_base64(cls, text: str) -> DocumentSigner:
        """A signer from base64 DER, the form trust lists and test data use."""
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TrustConfigurationError(
                "A document signer certificate is not valid base64."
            ) from exc
        return cls.from_der(der)

    def permits(self, kind: CertificateKind) -> bool:
        """Whether the extended key usage lets this signer sign ``kind``.

        A signer whose extended key usage names none of the DCC usages may
        sign every kind; one that names some may sign only those.
        """
        granted = {
            oid.rsplit(".", 1)[1]
            for oid in self.usages
            if oid.rsplit(".", 1)[0] in _USAGE_ARCS
        }
        return not granted or kind.usage_suffix in granted

    @property
    def country(self) -> str | None:
        """The country named in the signer's subject, if any."""
        names = self.certificate.subject.get_attributes_for_oid(
            x509.NameOID.COUNTRY_NAME
        )
        return str(names[0].value) if names else None


def _usages(certificate: x509.Certificate, der: bytes) -> frozenset[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage
        )
    except x509.ExtensionNotFound:
        return frozenset()
    except ValueError:
        # The extensions do not parse; one member state's test signer has an
        # empty extended key usage, which RFC 5280 forbids. Rather than
        # grant such a signer every kind, the DCC usages are looked for in
        # its DER: what is found there is what it may sign.
        return frozenset(
            f"{arc}.{suffix}"
            for arc, suffix in _USAGE_ENCODINGS
            if _USAGE_ENCODINGS[(arc, suffix)] in der
        )
    return frozenset(oid.dotted_string for oid in extension.value)


def _oid_bytes(dotted: str) -> bytes:
    """The DER encoding of an object identifier (tag, length, contents)."""
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return bytes([0x06, len(body)]) + bytes(body)


_USAGE_ENCODINGS = {
    (arc, suffix): _oid_bytes(f"{arc}.{suffix}")
    for arc in _USAGE_ARCS
    for suffix in ("1", "2", "3")
}


class SignerList:
    """The document signers trusted here, looked up by key id.

    The list is configuration: it is read once, from a PEM bundle or a JSON
    array of base64 DER certificates, and verification never reaches the
    network.
    """

    def __init__(self, signers: Iterable[DocumentSigner] = ()) -> None:
        self._by_kid: dict[bytes, list[DocumentSigner]] = {}
        for signer in signers:
            self._by_kid.setdefault(signer.key_id, []).append(signer)

    def __len__(self) -> int:
        return sum(len(signers) for signers in self._by_kid.values())

    def candidates(self, key_id: bytes) -> list[DocumentSigner]:
        """Every signer whose key id is ``key_id`` (usually one, maybe more)."""
        return list(self._by_kid.get(key_id, ()))

    @classmethod
    def from_file(cls, path: Path | str) -> SignerList:
        """Read a PEM bundle or a JSON array of base64 DER certificates."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TrustConfigurationError(
                f"The document signer file {path} cannot be read."
            ) from exc
        if b"-----BEGIN CERTIFICATE-----" in data:
            try:
                certificates = x509.load_pem_x509_certificates(data)
            except ValueError as exc:
                raise TrustConfigurationError(
                    f"The document signer file {path} holds a broken PEM certificate."
                ) from exc
            return cls(DocumentSigner.from_certificate(cert) for cert in certificates)
        try:
            items = json.loads(data)
        except ValueError as exc:
            raise TrustConfigurationError(
                f"The document signer file {path} is neither PEM nor JSON."
            ) from exc
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TrustConfigurationError(
                f"The document signer file {path} must be a JSON array of base64 "
                "DER certificates."
            )
        return cls(DocumentSigner.from_base64(item) for item in items)


@dataclass(frozen=True)
class DigitalCovidCertificate:
    """A certificate whose signature, schema, signer and lifetime have been checked."""

    kind: CertificateKind
    claims: Claims
    signer: DocumentSigner
    key_id: bytes

    @property
    def payload(self) -> dict[str, Any]:
        """The certificate map (``ver``, ``nam``, ``dob`` and its entry)."""
        return self.claims.payload

    @property
    def entry(self) -> dict[str, Any]:
        """The one vaccination, test or recovery entry."""
        entry: dict[str, Any] = self.payload[self.kind.value][0]
        return entry

    @property
    def identifier(self) -> str:
        """The unique certificate identifier (UVCI)."""
        return str(self.entry["ci"])

    @property
    def schema_version(self) -> str:
        """The schema version the certificate says it follows."""
        return str(self.payload["ver"])

    @property
    def name(self) -> CertificateName:
        """The holder's name, printed and standardised parts."""
        nam = self.payload.get("nam") or {}
        return CertificateName(
            family=nam.get("fn"),
            given=nam.get("gn"),
            family_standardised=nam.get("fnt"),
            given_standardised=nam.get("gnt"),
        )

    @property
    def date_of_birth(self) -> DateOfBirth:
        """The holder's date of birth, perhaps partial."""
        return DateOfBirth.parse(self.payload["dob"])

    def __repr__(self) -> str:
        return (
            f"DigitalCovidCertificate(kind={self.kind.value!r}, "
            f"issuer={self.claims.issuer!r}, version={self.schema_version!r})"
        )


# --------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------


def read_qr_image(image: Image.Image | bytes | Path | str) -> str:
    """The text of the QR code in ``image``, exactly as the symbol holds it.

    ``image`` is a decoded image, an image file's bytes or its path. An image
    that cannot be opened, holds no QR code or holds more than one is refused.
    """
    try:
        from healthcode.codes.qr import read_texts
    except ImportError:  # pragma: no cover - the codes package ships with us
        read_texts = _read_texts
    try:
        if not isinstance(image, Image.Image):
            source = io.BytesIO(image) if isinstance(image, bytes) else image
            with Image.open(source) as opened:
                image = opened.convert("RGB")
        texts = read_texts(image)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidCertificate("The image cannot be opened as a picture.") from exc
    if not texts:
        raise InvalidCertificate("No QR code could be read from the image.")
    if len(texts) > 1:
        raise InvalidCertificate("The image holds more than one QR code.")
    return texts[0]


def _read_texts(image: Image.Image | Path | str) -> list[str]:
    import zxingcpp

    if not isinstance(image, Image.Image):
        with Image.open(image) as opened:
            image = opened.convert("RGB")
    found = zxingcpp.read_barcodes(
        image,
        formats=zxingcpp.BarcodeFormat.QRCode,
        text_mode=zxingcpp.TextMode.Plain,
    )
    return [barcode.text for barcode in found]


def strip_prefix(text: str) -> str:
    """The Base45 text after ``HC1:``.

    Nothing is trimmed or URL-decoded: a space is a Base45 character, and a
    text that does not begin exactly with the prefix is not a certificate
    (another context such as ``HC2:`` is a format we do not read).
    """
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise CertificatePrefixError(
            "The certificate text does not start with the context identifier HC1:."
        )
    return text[len(PREFIX) :]


def decode_base45(text: str) -> bytes:
    """The bytes of the Base45 text; any fault of the alphabet or length is refused."""
    try:
        return base45.decode(text)
    except ValueError as exc:
        raise CertificateEncodingError(
            "The certificate text is not valid Base45."
        ) from exc


def decompress(data: bytes) -> bytes:
    """Inflate the zlib stream; an uncompressed or truncated one is refused."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        raise CertificateCompressionError(
            "The certificate is not a valid zlib stream."
        ) from exc
    if inflater.unconsumed_tail:
        raise CertificateCompressionError(
            f"The certificate inflates to more than {MAX_INFLATED} bytes."
        )
    if not inflater.eof or inflater.unused_data:
        raise CertificateCompressionError(
            "The certificate's zlib stream is truncated or followed by other bytes."
        )
    return out


def decode_sign1(data: bytes) -> Sign1:
    """Read a COSE_Sign1 message: tag 18, no tag, or tag 18 inside the CWT tag 61."""
    item = _loads(data, "The certificate is not valid CBOR.")
    if isinstance(item, cbor2.CBORTag) and item.tag == TAG_CWT:
        item = item.value
    if isinstance(item, cbor2.CBORTag) and item.tag == TAG_COSE_SIGN1:
        item = item.value
    if isinstance(item, cbor2.CBORTag):
        raise CertificateStructureError(
            f"The certificate carries CBOR tag {item.tag}, not a COSE_Sign1 message."
        )
    if not isinstance(item, Sequence) or isinstance(item, (str, bytes)):
        raise CertificateStructureError("The certificate is not a COSE_Sign1 array.")
    if len(item) != 4:
        raise CertificateStructureError("The COSE_Sign1 array must have four elements.")
    protected, unprotected, payload, signature = item
    if not isinstance(protected, bytes):
        raise CertificateStructureError(
            "The COSE protected header is not a byte string."
        )
    if not isinstance(unprotected, Mapping):
        raise CertificateStructureError("The COSE unprotected header is not a map.")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise CertificateStructureError(
            "The COSE payload and signature must be byte strings."
        )
    header: Any = {}
    if protected:
        header = _loads(protected, "The COSE protected header is not valid CBOR.")
        if not isinstance(header, Mapping):
            raise CertificateStructureError("The COSE protected header is not a map.")
    return Sign1(protected, header, unprotected, payload, signature)


def verify_signature(message: Sign1, signers: SignerList) -> DocumentSigner:
    """The signer whose key verifies ``message``; raise if there is none.

    The algorithm must be ES256 (with the 64-byte r||s signature) or PS256,
    and must fit the signer's key type.
    """
    algorithm = message.algorithm
    if algorithm not in (ALGORITHM_ES256, ALGORITHM_PS256):
        raise UnsupportedAlgorithm(
            "The certificate is signed with an algorithm other than ES256 or PS256."
        )
    kid = message.key_id
    if kid is None:
        raise UnknownSigner("The certificate names no key id.")
    candidates = signers.candidates(kid)
    if not candidates:
        raise UnknownSigner("No trusted document signer has the certificate's key id.")
    signed = message.signed_bytes()
    for signer in candidates:
        if _verifies(signer, algorithm, message.signature, signed):
            return signer
    raise ForgedCertificate("The certificate's signature does not verify.")


def _verifies(
    signer: DocumentSigner, algorithm: int, signature: bytes, signed: bytes
) -> bool:
    key = signer.certificate.public_key()
    try:
        if algorithm == ALGORITHM_ES256:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return False
            if not isinstance(key.curve, ec.SECP256R1) or len(signature) != 64:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"),
                int.from_bytes(signature[32:], "big"),
            )
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            return True
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        # RFC 8230 fixes the salt at the hash length for PS256.
        key.verify(
            signature,
            signed,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
        return True
    except InvalidSignature:
        return False


def decode_claims(payload: bytes) -> Claims:
    """The CWT claims: issuer (1), expiry (4), issued-at (6) and the certificate."""
    claims = _loads(payload, "The certificate's CWT payload is not valid CBOR.")
    if isinstance(claims, cbor2.CBORTag) and claims.tag == TAG_CWT:
        claims = claims.value
    if not isinstance(claims, Mapping):
        raise CertificateStructureError("The certificate's CWT payload is not a map.")
    issuer = claims.get(CLAIM_ISSUER)
    if issuer is not None and not isinstance(issuer, str):
        raise CertificateStructureError("The CWT issuer claim (1) is not text.")
    issued_at = _numeric_date(claims.get(CLAIM_ISSUED_AT), "issued-at claim (6)")
    expires_at = _numeric_date(claims.get(CLAIM_EXPIRY), "expiry claim (4)")
    hcert = claims.get(CLAIM_HCERT)
    if not isinstance(hcert, Mapping) or not isinstance(hcert.get(HCERT_DCC), Mapping):
        raise CertificateStructureError(
            "The CWT has no health certificate map at claim -260, key 1."
        )
    return Claims(issuer, issued_at, expires_at, _plain(hcert[HCERT_DCC]))


def decode_hcert(data: bytes) -> dict[str, Any]:
    """The certificate map from its own CBOR (the payload without the CWT)."""
    item = _loads(data, "The certificate map is not valid CBOR.")
    if not isinstance(item, Mapping):
        raise CertificateStructureError("The certificate is not a CBOR map.")
    plain: dict[str, Any] = _plain(item)
    return plain


def validate_payload(payload: Mapping[str, Any]) -> CertificateKind:
    """Check the payload against the schema of its version; return its kind.

    After the schema, the dates a rule or a record will read are checked for
    being real dates (the schema only constrains their shape).
    """
    version = payload.get("ver")
    if not isinstance(version, str):
        raise CertificateSchemaError("The certificate has no schema version (ver).")
    family = family_of(version)
    if family is None:
        raise CertificateSchemaError(
            f"The certificate's schema version {version!r} is not one we read."
        )
    validator = jsonschema.Draft202012Validator(hcert_schema(family))
    error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    if error is not None:
        where = "/" + "/".join(str(part) for part in error.absolute_path)
        raise CertificateSchemaError(
            f"The certificate breaks schema {family} at {where}: {error.validator} "
            "is not satisfied."
        )
    try:
        DateOfBirth.parse(payload["dob"])
    except ValueError as exc:
        raise CertificateSchemaError(str(exc)) from None
    return CertificateKind.of(payload)


def check_key_usage(signer: DocumentSigner, kind: CertificateKind) -> None:
    """Refuse a certificate of a kind the signer's extended key usage excludes."""
    if not signer.permits(kind):
        raise SignerNotPermitted(
            f"The document signer may not sign {kind.label} certificates."
        )


def check_validity(
    claims: Claims,
    signer: DocumentSigner,
    now: datetime,
    *,
    skew: timedelta = timedelta(0),
) -> None:
    """Check the signer's validity and the certificate's lifetime at ``now``."""
    check_signer_validity(claims, signer)
    check_lifetime(claims, now, skew=skew)


def check_signer_validity(claims: Claims, signer: DocumentSigner) -> None:
    """The signer's validity must cover the certificate's whole lifetime.

    Both ends are inclusive: a certificate issued at the very second its
    signer became valid is fine.
    """
    if claims.issued_at < signer.not_before or claims.expires_at > signer.not_after:
        raise SignerNotValid(
            "The document signer's validity does not cover the certificate's lifetime."
        )


def check_lifetime(
    claims: Claims, now: datetime, *, skew: timedelta = timedelta(0)
) -> None:
    """The certificate must be issued (allowing ``skew``) and not expired at ``now``.

    Both ends are inclusive; ``skew`` forgives an issuer whose clock runs a
    little ahead of ours.
    """
    _require_aware(now)
    if claims.issued_at > now + skew:
        raise NotYetValidCertificate("The certificate is issued after the clock.")
    if now > claims.expires_at:
        raise ExpiredCertificate("The certificate has expired.")


def read_certificate(
    text: str,
    *,
    signers: SignerList,
    now: datetime,
    skew: timedelta = timedelta(0),
) -> DigitalCovidCertificate:
    """Read and verify an ``HC1:`` text at ``now``; raise if it is not acceptable."""
    _require_aware(now)
    message = decode_sign1(decompress(decode_base45(strip_prefix(text))))
    signer = verify_signature(message, signers)
    claims = decode_claims(message.payload)
    kind = validate_payload(claims.payload)
    check_key_usage(signer, kind)
    check_validity(claims, signer, now, skew=skew)
    return DigitalCovidCertificate(kind, claims, signer, signer.key_id)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

_INSTANT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)


def parse_instant(text: str) -> datetime:
    """Read an ISO 8601 date-time as an aware UTC instant.

    Certificates and test systems write instants in many forms: with ``Z``
    or an offset with or without its colon (``+0200``), with up to nine
    fractional digits (cut to microseconds), or without any offset (then
    UTC). A date alone is midnight UTC. Raises :class:`ValueError`.
    """
    if not isinstance(text, str):
        raise ValueError("An instant must be given as text.")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    match = _INSTANT.fullmatch(text.strip())
    if match is None:
        raise ValueError("The instant is not an ISO 8601 date-time.")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "").ljust(6, "0")[:6])
    moment = datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second or 0),
        micro,
        tzinfo=UTC,
    )
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            raise ValueError("The instant has an offset that does not exist.")
        moment -= sign * timedelta(hours=hours, minutes=minutes)
    return moment


def _require_aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise TypeError("The clock must be an aware datetime.")


def _loads(data: bytes, message: str) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise CertificateStructureError(message) from exc


def _numeric_date(value: Any, name: str) -> datetime:
    # RFC 8392 allows a NumericDate to be an integer or a float, and several
    # issuers write floats; a bool is neither.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CertificateStructureError(f"The CWT {name} is missing or not a number.")
    if not math.isfinite(value) or not 0 <= value < 253_402_300_800:
        raise CertificateStructureError(f"The CWT {name} lies outside the calendar.")
    return datetime.fromtimestamp(value, UTC)


def _plain(value: Any, depth: int = 0) -> Any:
    """The certificate map as plain JSON types: dicts, lists, text, numbers."""
    if depth > 16:
        raise CertificateStructureError("The certificate nests too deeply.")
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CertificateStructureError(
                    "The certificate holds a map key that is not text."
                )
            out[key] = _plain(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise CertificateStructureError(
        "The certificate holds a value that JSON cannot (a tag, bytes or a date)."
    )
