"""Making test certificates: document signers, EU DCCs and SMART Health Cards.

Nothing here is product code: we read certificates, we never issue them, but
the tests need certificates for people and dates of their choosing, signed
by keys they hold.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID, ObjectIdentifier

from healthcode.certificates.dcc import DocumentSigner, SignerList
from healthcode.codes import base45

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SHC_DATA = (SHARED / "testdata" / "shc").resolve()
SHC_ABSENT = f"The SMART Health Cards test data is not at {SHC_DATA}."
SPEC_ISSUER = "https://spec.smarthealth.cards/examples/issuer"

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)

USAGE = {
    "t": "1.3.6.1.4.1.1847.2021.1.1",
    "v": "1.3.6.1.4.1.1847.2021.1.2",
    "r": "1.3.6.1.4.1.1847.2021.1.3",
}


@dataclass(frozen=True)
class SignerKey:
    """A document signer's private key and certificate."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def signer(self) -> DocumentSigner:
        return DocumentSigner.from_certificate(self.certificate)

    @property
    def kid(self) -> bytes:
        return self.signer.key_id

    def signers(self) -> SignerList:
        return SignerList([self.signer])

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


_KEYS: dict[str, Any] = {}


def _key(kind: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    # Key generation, RSA above all, is slow; one key per name serves every
    # test. "rsa" is RSA-2048, "p384" a P-384 key, any other name a P-256
    # key of its own.
    if kind not in _KEYS:
        if kind == "rsa":
            _KEYS[kind] = rsa.generate_private_key(65537, 2048)
        elif kind == "p384":
            _KEYS[kind] = ec.generate_private_key(ec.SECP384R1())
        else:
            _KEYS[kind] = ec.generate_private_key(ec.SECP256R1())
    return _KEYS[kind]


def make_signer(
    *,
    kinds: str = "",
    key: str = "ec",
    not_before: datetime = NOW - timedelta(days=365),
    not_after: datetime = NOW + timedelta(days=365),
    country: str = "AT",
    serial: int = 1,
) -> SignerKey:
    """A self-signed document signer; ``kinds`` ("v", "tr", ...) sets its usages."""
    private = _key(key)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.COMMON_NAME, f"DSC test {serial}"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if kinds:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ObjectIdentifier(USAGE[k]) for k in kinds]),
            critical=False,
        )
    certificate = builder.sign(private, hashes.SHA256())
    return SignerKey(private, certificate)


def vaccination_payload(
    *,
    family: str = "Musterfrau-Gößinger",
    given: str = "Gabriele",
    family_std: str | None = "MUSTERFRAU<GOESSINGER",
    given_std: str | None = "GABRIELE",
    dob: str = "1998-02-26",
    dose: int = 2,
    doses: int = 2,
    date: str = "2026-01-20",
    uvci: str = "URN:UVCI:01:AT:10807843F94AEE0EE5093FBC254BD813#B",
    version: str = "1.3.0",
) -> dict[str, Any]:
    nam: dict[str, str] = {"fn": family, "gn": given}
    if family_std is not None:
        nam["fnt"] = family_std
    if given_std is not None:
        nam["gnt"] = given_std
    return {
        "ver": version,
        "nam": nam,
        "dob": dob,
        "v": [
            {
                "tg": "840539006",
                "vp": "1119349007",
                "mp": "EU/1/20/1528",
                "ma": "ORG-100030215",
                "dn": dose,
                "sd": doses,
                "dt": date,
                "co": "AT",
                "is": "Ministry of Health, Austria",
                "ci": uvci,
            }
        ],
    }


def lab_test_payload(
    *,
    result: str = "260415000",
    kind: str = "LP6464-4",
    sampled: str = "2026-03-09T08:30:00+01:00",
    uvci: str = "URN:UVCI:01:AT:71EE2559DE38C6BF7304FB65A1A451ECE#3",
    **name: Any,
) -> dict[str, Any]:
    payload = vaccination_payload(uvci=uvci, **name)
    del payload["v"]
    payload["t"] = [
        {
            "tg": "840539006",
            "tt": kind,
            "nm": "Roche LightCycler qPCR",
            "sc": sampled,
            "tr": result,
            "tc": "Testing center Vienna 1",
            "co": "AT",
            "is": "Ministry of Health, Austria",
            "ci": uvci,
        }
    ]
    return payload


def recovery_payload(
    *,
    first_positive: str = "2026-02-01",
    uvci: str = "URN:UVCI:01:AT:858CC18CFCF5965EF82F60E493349AA5#K",
    **name: Any,
) -> dict[str, Any]:
    payload = vaccination_payload(uvci=uvci, **name)
    del payload["v"]
    payload["r"] = [
        {
            "tg": "840539006",
            "fr": first_positive,
            "co": "AT",
            "is": "Ministry of Health, Austria",
            "df": "2026-02-12",
            "du": "2026-07-31",
            "ci": uvci,
        }
    ]
    return payload


def issue_dcc(
    payload: dict[str, Any],
    signer: SignerKey,
    *,
    issued_at: datetime = NOW - timedelta(days=1),
    expires_at: datetime = NOW + timedelta(days=180),
    issuer: str | None = "AT",
    kid_in: str = "protected",
    kid: bytes | None = None,
    tags: tuple[int, ...] = (18,),
    algorithm: int | None = None,
) -> str:
    """The ``HC1:`` text of ``payload`` signed by ``signer``."""
    claims: dict[int, Any] = {
        4: int(expires_at.timestamp()),
        6: int(issued_at.timestamp()),
        -260: {1: payload},
    }
    if issuer is not None:
        claims[1] = issuer
    body = cbor2.dumps(claims)
    key_id = signer.kid if kid is None else kid
    if algorithm is None:
        algorithm = -37 if isinstance(signer.key, rsa.RSAPrivateKey) else -7
    protected_map: dict[int, Any] = {1: algorithm}
    unprotected: dict[int, Any] = {}
    if kid_in in ("protected", "both"):
        protected_map[4] = key_id
    if kid_in in ("unprotected", "both"):
        unprotected[4] = key_id
    protected = cbor2.dumps(protected_map)
    to_sign = cbor2.dumps(["Signature1", protected, b"", body])
    signature = _sign(signer.key, to_sign)
    message: Any = [protected, unprotected, body, signature]
    for tag in reversed(tags):
        message = cbor2.CBORTag(tag, message)
    return "HC1:" + base45.encode(zlib.compress(cbor2.dumps(message), 9))


def _sign(key: Any, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(
            data,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


# --------------------------------------------------------------------------
# SMART Health Cards
# --------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def spec_issuer_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The specification example issuer's signing key and its kid."""
    keys = json.loads(
        (SHC_DATA / "spec-issuer" / "issuer.jwks.private.json").read_text()
    )["keys"]
    jwk = next(k for k in keys if k.get("use") == "sig" and "x5c" not in k)

    def number(name: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(jwk[name] + "=="), "big")

    public = ec.EllipticCurvePublicNumbers(number("x"), number("y"), ec.SECP256R1())
    private = ec.EllipticCurvePrivateNumbers(number("d"), public).private_key()
    return private, jwk["kid"]


def sign_card(
    payload: dict[str, Any] | bytes,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    kid: str | None = None,
    header: dict[str, Any] | None = None,
    deflate: str = "raw",
) -> str:
    """A compact JWS of ``payload`` (a dict is minified first)."""
    if key is None:
        key, spec_kid = spec_issuer_key()
        kid = spec_kid if kid is None else kid
    if header is None:
        header = {"zip": "DEF", "alg": "ES256", "kid": kid}
    if isinstance(payload, dict):
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    else:
        raw = payload
    if deflate == "raw":
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = compressor.compress(raw) + compressor.flush()
    elif deflate == "zlib":
        body = zlib.compress(raw)
    else:
        body = raw
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(body)}"
    r, s = decode_dss_signature(
        key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    )
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{b64url(signature)}"


def card_payload(
    bundle: dict[str, Any],
    *,
    issuer: str = SPEC_ISSUER,
    nbf: float = (NOW - timedelta(days=30)).timestamp(),
    exp: float | None = None,
    types: list[str] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": issuer,
        "nbf": nbf,
        "vc": {
            "type": types
            or [
                "https://smarthealth.cards#health-card",
                "https://smarthealth.cards#immunization",
                "https://smarthealth.cards#covid19",
            ],
            "credentialSubject": {"fhirVersion": "4.0.1", "fhirBundle": bundle},
        },
    }
    if exp is not None:
        payload["exp"] = exp
    return payload


def immunization_bundle(
    *,
    family: str = "Anyperson",
    given: tuple[str, ...] = ("John", "B."),
    birth_date: str = "1951-01-20",
    doses: tuple[tuple[str, str], ...] = (("207", "2021-01-01"), ("207", "2021-01-29")),
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": "resource:0",
            "resource": {
                "resourceType": "Patient",
                "name": [{"family": family, "given": list(given)}],
                "birthDate": birth_date,
            },
        }
    ]
    for index, (code, when) in enumerate(doses, start=1):
        entries.append(
            {
                "fullUrl": f"resource:{index}",
                "resource": {
                    "resourceType": "Immunization",
                    "status": "completed",
                    "vaccineCode": {
                        "coding": [
                            {"system": "http://hl7.org/fhir/sid/cvx", "code": code}
                        ]
                    },
                    "patient": {"reference": "resource:0"},
                    "occurrenceDateTime": when,
                    "performer": [{"actor": {"display": "ABC General Hospital"}}],
                    "lotNumber": f"000000{index}",
                },
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def lab_bundle(
    *,
    code: str = "94558-4",
    result: str = "260385009",
    effective: str = "2026-03-09T08:30:00+08:00",
    **patient: Any,
) -> dict[str, Any]:
    bundle = immunization_bundle(doses=(), **patient)
    bundle["entry"].append(
        {
            "fullUrl": "resource:1",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": "resource:0"},
                "effectiveDateTime": effective,
                "performer": [{"display": "ABC Laboratory"}],
                "valueCodeableConcept": {
                    "coding": [{"system": "http://snomed.info/sct", "code": result}]
                },
            },
        }
    )
    return bundle


def numeric(jws: str) -> str:
    """The numeric form of a JWS, as the QR's numeric segment holds it."""
    return "".join(f"{ord(char) - 45:02d}" for char in jws)


def sha_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
