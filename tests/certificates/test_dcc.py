"""Reading EU DCCs we sign ourselves: each stage, each refusal, C13 and C14."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from PIL import Image

from healthcode.certificates import dcc
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
from healthcode.codes import base45, qr

from .support import (
    NOW,
    issue_dcc,
    lab_test_payload,
    make_signer,
    recovery_payload,
    vaccination_payload,
)


def read(text: str, signer, now: datetime = NOW) -> dcc.DigitalCovidCertificate:
    return dcc.read_certificate(text, signers=signer.signers(), now=now)


def test_a_vaccination_reads_whole() -> None:
    signer = make_signer()
    text = issue_dcc(vaccination_payload(), signer)

    certificate = read(text, signer)

    assert certificate.kind is dcc.CertificateKind.VACCINATION
    assert certificate.identifier == "URN:UVCI:01:AT:10807843F94AEE0EE5093FBC254BD813#B"
    assert certificate.claims.issuer == "AT"
    assert certificate.claims.issued_at == NOW - timedelta(days=1)
    assert certificate.entry["dn"] == 2
    assert certificate.name.family_standardised == "MUSTERFRAU<GOESSINGER"
    assert certificate.key_id == signer.kid
    assert "Gabriele" not in repr(certificate)


def test_ps256_with_an_rsa_signer() -> None:
    signer = make_signer(key="rsa")
    text = issue_dcc(lab_test_payload(), signer)

    certificate = read(text, signer)

    assert certificate.kind is dcc.CertificateKind.TEST


def test_c13_partial_dates_of_birth_are_accepted_and_shown_as_partial() -> None:
    signer = make_signer()
    year = issue_dcc(vaccination_payload(dob="1978"), signer)
    month = issue_dcc(vaccination_payload(dob="1978-06"), signer)

    by_year = read(year, signer).date_of_birth
    by_month = read(month, signer).date_of_birth

    assert (by_year.partial, by_year.shown(), by_year.latest()) == (
        True,
        "1978 (partial)",
        date(1978, 12, 31),
    )
    assert (by_month.partial, by_month.shown(), by_month.latest()) == (
        True,
        "1978-06 (partial)",
        date(1978, 6, 30),
    )


def test_c13_partial_dates_in_every_schema_family() -> None:
    signer = make_signer()

    kinds = [
        read(issue_dcc(vaccination_payload(dob="1978-06", version=v), signer), signer)
        for v in ("1.0.0", "1.2.1", "1.3.0", "1.3.2")
    ]

    assert [k.date_of_birth.text for k in kinds] == ["1978-06"] * 4


def test_c14_key_id_only_in_the_unprotected_header() -> None:
    signer = make_signer()
    text = issue_dcc(vaccination_payload(), signer, kid_in="unprotected")

    certificate = read(text, signer)

    assert certificate.signer.key_id == signer.kid


def test_the_protected_key_id_wins_over_the_unprotected_one() -> None:
    signer = make_signer()
    message = dcc.Sign1(
        cbor2.dumps({1: -7, 4: b"protect!"}),
        {1: -7, 4: b"protect!"},
        {4: signer.kid},
        b"",
        b"",
    )

    assert message.key_id == b"protect!"


def test_a_wrong_protected_key_id_is_not_rescued_by_the_unprotected_one() -> None:
    signer = make_signer()
    text = issue_dcc(vaccination_payload(), signer, kid=b"wrongkid", kid_in="protected")

    with pytest.raises(UnknownSigner):
        read(text, signer)


def test_untagged_and_double_tagged_messages() -> None:
    signer = make_signer()

    untagged = read(issue_dcc(vaccination_payload(), signer, tags=()), signer)
    doubled = read(issue_dcc(vaccination_payload(), signer, tags=(61, 18)), signer)

    assert untagged.kind is doubled.kind is dcc.CertificateKind.VACCINATION


def test_colliding_key_ids_try_every_signer() -> None:
    real = make_signer(serial=7)
    other = make_signer(key="rsa", serial=8)
    impostor = dcc.DocumentSigner(
        other.certificate, real.kid, other.signer.not_before, other.signer.not_after
    )
    text = issue_dcc(vaccination_payload(), real)

    found = dcc.read_certificate(
        text, signers=dcc.SignerList([impostor, real.signer]), now=NOW
    )

    assert found.signer.certificate == real.certificate


def test_a_changed_payload_is_forged() -> None:
    signer = make_signer()
    text = issue_dcc(vaccination_payload(), signer)
    message = dcc.decode_sign1(dcc.decompress(dcc.decode_base45(text[4:])))
    altered = cbor2.dumps(
        cbor2.CBORTag(
            18,
            [
                message.protected,
                {},
                message.payload.replace(b"Gabriele", b"Gabriela"),
                message.signature,
            ],
        )
    )
    forged = "HC1:" + base45.encode(zlib.compress(altered))

    with pytest.raises(ForgedCertificate):
        read(forged, signer)


def test_an_unknown_signer_is_refused() -> None:
    text = issue_dcc(vaccination_payload(), make_signer(serial=1))

    with pytest.raises(UnknownSigner):
        read(text, make_signer(key="rsa", serial=2))


def test_es384_is_not_accepted() -> None:
    signer = make_signer(key="p384")
    text = issue_dcc(vaccination_payload(), signer, algorithm=-35)

    with pytest.raises(UnsupportedAlgorithm):
        read(text, signer)


def test_es256_claimed_with_an_rsa_key_does_not_verify() -> None:
    signer = make_signer(key="rsa")
    text = issue_dcc(vaccination_payload(), signer, algorithm=-7)

    with pytest.raises(ForgedCertificate):
        read(text, signer)


@pytest.mark.parametrize(
    ("kinds", "payload", "allowed"),
    [
        ("", vaccination_payload(), True),
        ("v", vaccination_payload(), True),
        ("t", vaccination_payload(), False),
        ("tr", lab_test_payload(), True),
        ("r", lab_test_payload(), False),
        ("r", recovery_payload(), True),
        ("v", recovery_payload(), False),
    ],
)
def test_extended_key_usage_limits_the_kinds(kinds, payload, allowed) -> None:
    signer = make_signer(kinds=kinds)
    text = issue_dcc(payload, signer)

    if allowed:
        assert read(text, signer).kind.value in payload
    else:
        with pytest.raises(SignerNotPermitted):
            read(text, signer)


def test_lifetime_ends_are_inclusive() -> None:
    signer = make_signer()
    issued, expires = NOW - timedelta(days=1), NOW + timedelta(days=1)
    text = issue_dcc(
        vaccination_payload(), signer, issued_at=issued, expires_at=expires
    )

    at_issue = read(text, signer, now=issued)
    at_expiry = read(text, signer, now=expires)

    assert at_issue.claims.expires_at == at_expiry.claims.expires_at == expires
    with pytest.raises(ExpiredCertificate):
        read(text, signer, now=expires + timedelta(seconds=1))
    with pytest.raises(NotYetValidCertificate):
        read(text, signer, now=issued - timedelta(seconds=1))


def test_a_certificate_outliving_its_signer_is_refused() -> None:
    signer = make_signer(not_after=NOW + timedelta(days=10))
    text = issue_dcc(vaccination_payload(), signer, expires_at=NOW + timedelta(days=11))

    with pytest.raises(SignerNotValid):
        read(text, signer)


def test_a_naive_clock_is_a_caller_mistake() -> None:
    signer = make_signer()
    text = issue_dcc(vaccination_payload(), signer)

    with pytest.raises(TypeError):
        read(text, signer, now=datetime(2026, 3, 10, 4, 0))


@pytest.mark.parametrize("text", ["HC2:NCF", "hc1:NCF", " HC1:NCF", "NCFOXN%TS3DH", ""])
def test_only_the_hc1_context_is_read(text: str) -> None:
    with pytest.raises(CertificatePrefixError):
        dcc.strip_prefix(text)


def test_spaces_after_the_prefix_are_base45_not_padding() -> None:
    assert dcc.strip_prefix("HC1: A ") == " A "


def test_base45_faults() -> None:
    with pytest.raises(CertificateEncodingError):
        dcc.decode_base45("A")
    with pytest.raises(CertificateEncodingError):
        dcc.decode_base45("aa")


def test_an_uncompressed_message_is_refused() -> None:
    signer = make_signer()
    text = issue_dcc(vaccination_payload(), signer)
    message = dcc.decompress(dcc.decode_base45(text[4:]))

    with pytest.raises(CertificateCompressionError):
        dcc.decompress(message)


def test_a_zip_bomb_is_refused() -> None:
    bomb = zlib.compress(b"\0" * (dcc.MAX_INFLATED + 1))

    with pytest.raises(CertificateCompressionError, match="more than"):
        dcc.decompress(bomb)


def test_trailing_bytes_after_the_stream_are_refused() -> None:
    with pytest.raises(CertificateCompressionError, match="truncated or followed"):
        dcc.decompress(zlib.compress(b"abc") + b"x")


@pytest.mark.parametrize(
    "item",
    [
        0,
        [b"", {}, b""],
        cbor2.CBORTag(98, [b"", {}, b"", b""]),
        ["text", {}, b"", b""],
        [b"", [], b"", b""],
        [cbor2.dumps([1]), {}, b"", b""],
    ],
)
def test_malformed_cose(item) -> None:
    with pytest.raises(CertificateStructureError):
        dcc.decode_sign1(cbor2.dumps(item))


@pytest.mark.parametrize(
    "claims",
    [
        {4: 1, 6: 1},
        {4: 1, 6: "1", -260: {1: {}}},
        {4: True, 6: 1, -260: {1: {}}},
        {4: float("inf"), 6: 1, -260: {1: {}}},
        {1: 5, 4: 1, 6: 1, -260: {1: {}}},
        {4: 1, 6: 1, -260: {1: {"dob": b"bytes"}}},
        {4: 1, 6: 1, -260: {1: {1: "key"}}},
    ],
)
def test_malformed_claims(claims) -> None:
    with pytest.raises(CertificateStructureError):
        dcc.decode_claims(cbor2.dumps(claims))


def test_float_times_are_numeric_dates() -> None:
    claims = dcc.decode_claims(cbor2.dumps({4: 1621262460.5, 6: 1.0, -260: {1: {}}}))

    assert claims.expires_at == datetime(2021, 5, 17, 14, 41, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda p: p.pop("dob"), "required"),
        (lambda p: p["v"][0].update(dn=0), "/v/0/dn"),
        (lambda p: p["nam"].update(fnt="Musterfrau"), "/nam/fnt"),
        (lambda p: p.update(t=lab_test_payload()["t"]), "oneOf"),
        (lambda p: p["v"].append(dict(p["v"][0])), "/v"),
        (lambda p: p.update(dob="1978-13"), "/dob"),
        (lambda p: p.update(dob="1978-02-30"), "does not exist"),
        (lambda p: p.update(ver="2.0.0"), "not one we read"),
    ],
)
def test_schema_faults(change, where: str) -> None:
    payload = vaccination_payload()
    change(payload)

    with pytest.raises(CertificateSchemaError, match=where):
        dcc.validate_payload(payload)


def test_one_standardised_name_part_suffices_from_1_3_2() -> None:
    single = vaccination_payload(version="1.3.2", family_std=None, given_std="RAVI")
    older = vaccination_payload(version="1.3.0", family_std=None, given_std="RAVI")

    assert dcc.validate_payload(single) is dcc.CertificateKind.VACCINATION
    with pytest.raises(CertificateSchemaError, match="/nam"):
        dcc.validate_payload(older)


def test_an_empty_date_of_birth_only_from_1_3() -> None:
    assert (
        dcc.validate_payload(vaccination_payload(dob=""))
        is dcc.CertificateKind.VACCINATION
    )
    with pytest.raises(CertificateSchemaError):
        dcc.validate_payload(vaccination_payload(dob="", version="1.2.1"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-05-03T18:00:00Z", datetime(2021, 5, 3, 18, tzinfo=UTC)),
        ("2021-05-24T00:00:00+0200", datetime(2021, 5, 23, 22, tzinfo=UTC)),
        ("2021-05-24T00:00:00+02:00", datetime(2021, 5, 23, 22, tzinfo=UTC)),
        (
            "2021-06-08T20:17:27.990629312Z",
            datetime(2021, 6, 8, 20, 17, 27, 990629, tzinfo=UTC),
        ),
        (
            "2021-05-30T13:38:49.999500",
            datetime(2021, 5, 30, 13, 38, 49, 999500, tzinfo=UTC),
        ),
        ("2021-05-17", datetime(2021, 5, 17, tzinfo=UTC)),
        ("2021-05-17 12:58:05-01:00", datetime(2021, 5, 17, 13, 58, 5, tzinfo=UTC)),
    ],
)
def test_parse_instant(text: str, expected: datetime) -> None:
    assert dcc.parse_instant(text) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "2021-05-03T25:00:00Z", "2021-05-03T10:00:00+25:00"]
)
def test_parse_instant_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        dcc.parse_instant(text)


def test_qr_image_round_trip(tmp_path: Path) -> None:
    signer = make_signer()
    text = issue_dcc(vaccination_payload(), signer)
    path = tmp_path / "certificate.png"
    qr.write_png(text, path)

    assert dcc.read_qr_image(path) == text
    assert dcc.read_qr_image(path.read_bytes()) == text


def test_an_image_without_a_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "white").save(path)

    with pytest.raises(InvalidCertificate, match="No QR code"):
        dcc.read_qr_image(path)
    with pytest.raises(InvalidCertificate, match="cannot be opened"):
        dcc.read_qr_image(b"not an image")


def test_signer_files_pem_and_json(tmp_path: Path) -> None:
    first, second = make_signer(serial=11), make_signer(key="rsa", serial=12)
    pem = tmp_path / "signers.pem"
    pem.write_bytes(first.pem() + second.pem())
    listed = tmp_path / "signers.json"
    der = [
        base64.b64encode(
            s.certificate.public_bytes(serialization.Encoding.DER)
        ).decode()
        for s in (first, second)
    ]
    listed.write_text(json.dumps(der))

    from_pem = dcc.SignerList.from_file(pem)
    from_json = dcc.SignerList.from_file(listed)

    assert len(from_pem) == len(from_json) == 2
    assert from_pem.candidates(second.kid)[0].certificate == second.certificate


@pytest.mark.parametrize("content", [b"{}", b"[1]", b"garbage"])
def test_signer_files_that_cannot_work(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "signers"
    path.write_bytes(content)

    with pytest.raises(TrustConfigurationError, match="signers"):
        dcc.SignerList.from_file(path)


def test_a_signer_that_is_not_base64(tmp_path: Path) -> None:
    path = tmp_path / "signers.json"
    path.write_text('["!!"]')

    with pytest.raises(TrustConfigurationError, match="base64"):
        dcc.SignerList.from_file(path)


def test_a_missing_signer_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(TrustConfigurationError, match="absent.pem"):
        dcc.SignerList.from_file(tmp_path / "absent.pem")
