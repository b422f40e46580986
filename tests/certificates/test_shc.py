"""SMART Health Cards: the validator's broken cards, and valid cards we sign.

The test data (../shared/testdata/shc) is mostly cards with one fault each,
named in the file name; every one must be refused with that fault. Its
payload and bundle files are unsigned JSON: they are signed here with the
specification issuer's private test key, so that the reader meets exactly
the fault the file was made for.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from healthcode.certificates import shc
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

from .support import (
    NOW,
    SHC_ABSENT,
    SHC_DATA,
    SPEC_ISSUER,
    card_payload,
    immunization_bundle,
    lab_bundle,
    numeric,
    sign_card,
)

pytestmark = pytest.mark.skipif(not SHC_DATA.is_dir(), reason=SHC_ABSENT)

SPEC_KID = "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s"


@pytest.fixture(scope="module")
def issuers() -> shc.IssuerDirectory:
    return shc.IssuerDirectory.from_jwks_file(
        SPEC_ISSUER, SHC_DATA / "spec-issuer" / "jwks.json"
    )


def data(name: str) -> Path:
    return SHC_DATA / name


def read_jws_file(name: str, issuers: shc.IssuerDirectory) -> shc.HealthCard:
    return shc.verify_card(
        data(name).read_bytes().decode("utf-8"), issuers=issuers, now=NOW
    )


def read_numeric_files(names: list[str], issuers: shc.IssuerDirectory):
    texts = [data(name).read_text(encoding="utf-8") for name in names]
    return shc.read_card(texts, issuers=issuers, now=NOW)


def read_card_file(name: str, issuers: shc.IssuerDirectory):
    return [
        shc.verify_card(jws, issuers=issuers, now=NOW)
        for jws in shc.read_card_file(data(name))
    ]


def read_images(names: list[str], issuers: shc.IssuerDirectory):
    texts = shc.read_qr_images([data(name) for name in names])
    return shc.read_card(texts, issuers=issuers, now=NOW)


# --------------------------------------------------------------------------
# The validator's broken cards
# --------------------------------------------------------------------------

JWS_FAULTS = [
    ("bad-fhir-metadata", HealthCardBundleError),
    ("der-signature", HealthCardSignatureFormatError),
    ("der-signature-r-neg", HealthCardSignatureFormatError),
    ("der-signature-rs-neg", HealthCardSignatureFormatError),
    ("der-signature-s-neg", HealthCardSignatureFormatError),
    ("invalid-signature", ForgedCertificate),
    ("issuer-kid-mismatch", UnknownIssuer),
    ("issuer-not-valid-with-smart-key", UnknownIssuer),
    ("jws_too_long", HealthCardFormatError),
    ("no_deflate", HealthCardHeaderError),
    ("no_jws_header_alg", HealthCardHeaderError),
    ("no_jws_header_kid", HealthCardHeaderError),
    ("no_jws_header_zip", HealthCardHeaderError),
    ("trailing_chars", HealthCardFormatError),
    ("utf8_bom_prefix", HealthCardPayloadError),
    ("wrong_jws_header_kid", UnknownIssuer),
]


@pytest.mark.parametrize(("fault", "error"), JWS_FAULTS)
def test_broken_jws(issuers, fault: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_jws_file(f"test-example-00-d-jws-{fault}.txt", issuers)


def test_the_named_signature_fault_is_der(issuers) -> None:
    with pytest.raises(HealthCardSignatureFormatError, match="DER"):
        read_jws_file("test-example-00-d-jws-der-signature.txt", issuers)


def test_the_byte_order_mark_is_named(issuers) -> None:
    with pytest.raises(HealthCardPayloadError, match="byte-order mark"):
        read_jws_file("test-example-00-d-jws-utf8_bom_prefix.txt", issuers)


NUMERIC_FAULTS = [
    ("0-index-out-of-range", "outside 1 to 2"),
    ("0-number-too-big", "above 77"),
    ("0-odd-count", "odd number of digits"),
    ("0-qr_chunk_too_small", "missing 16 of its 17 chunks"),
    ("0-trailing_chars", "before or after"),
    ("0-wrong-multi-chunk", "must not carry a chunk header"),
    ("0-wrong_qr_header", "not shc:/ followed by digits"),
]


@pytest.mark.parametrize(("fault", "message"), NUMERIC_FAULTS)
def test_broken_numeric_qr(issuers, fault: str, message: str) -> None:
    with pytest.raises(HealthCardQrError, match=message):
        read_numeric_files(
            [f"test-example-00-f-qr-code-numeric-value-{fault}.txt"], issuers
        )


def test_seventeen_chunks_for_a_short_card_are_too_small(issuers) -> None:
    names = [
        f"test-example-00-f-qr-code-numeric-value-{n}-qr_chunk_too_small.txt"
        for n in range(17)
    ]
    random.Random(4).shuffle(names)

    with pytest.raises(HealthCardQrError, match="more QR codes than its length needs"):
        read_numeric_files(names, issuers)


def test_chunks_that_are_too_big(issuers) -> None:
    names = [
        f"test-example-02-f-qr-code-numeric-value-{n}-qr_chunk_too_big.txt"
        for n in range(2)
    ]

    with pytest.raises(HealthCardQrError, match="more than 1191 characters"):
        read_numeric_files(names, issuers)


FILE_FAULTS = [
    # The issuer's published key set is broken, so it cannot be configured
    # (see test_a_key_set_file_that_is_not_json) and the issuer stays unknown.
    ("-bad_jwks.smart-health-card", UnknownIssuer),
    ("-invalid_deflate.smart-health-card", HealthCardCompressionError),
    ("-invalid_issuer_url.smart-health-card", UnknownIssuer),
    ("-invalid_issuer_url_http.smart-health-card", HealthCardPayloadError),
    ("-issuer_url_with_trailing_slash.smart-health-card", HealthCardPayloadError),
    ("-jws_too_long.smart-health-card", HealthCardFormatError),
    ("-multi-jws-issues.smart-health-card", HealthCardFormatError),
    ("-no_deflate.smart-health-card", HealthCardHeaderError),
    ("-trailing_chars.smart-health-card", HealthCardFormatError),
    (".wrong-extension", HealthCardFormatError),
]


@pytest.mark.parametrize(("fault", "error"), FILE_FAULTS)
def test_broken_card_files(issuers, fault: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_card_file(f"test-example-00-e-file{fault}", issuers)


def test_zlib_instead_of_raw_deflate_is_named(issuers) -> None:
    with pytest.raises(HealthCardCompressionError, match="zlib-wrapped"):
        read_card_file(
            "test-example-00-e-file-invalid_deflate.smart-health-card", issuers
        )


def test_a_multi_card_file_with_one_broken_card(issuers) -> None:
    text = data("test-example-00-e-file-multi-jws-issues.smart-health-card").read_text()
    first, second = shc.cards_in_file_text(text.rstrip() + "\n")

    with pytest.raises(HealthCardHeaderError, match="alg"):
        shc.verify_card(first, issuers=issuers, now=NOW)
    assert len(shc.verify_card(second, issuers=issuers, now=NOW).immunizations) == 2


IMAGE_FAULTS = [
    (["test-example-00-g-qr-code-0-bad_qr_version.png"], "version 24"),
    (["test-example-00-g-qr-code-0-corrupted.png"], "No QR code"),
    (["test-example-00-g-qr-code-0-single_qr_segment.png"], "version 29"),
    (["test-example-00-g-qr-code-0-too_many_qr_segment.png"], "not shc:/"),
    (["test-example-00-g-qr-code-0-qr_chunk_too_small.png"], "missing 1 of its 2"),
    (
        [
            "test-example-00-g-qr-code-0-qr_chunk_too_small.png",
            "test-example-00-g-qr-code-1-qr_chunk_too_small.png",
        ],
        "more QR codes than its length needs",
    ),
]


@pytest.mark.parametrize(("names", "message"), IMAGE_FAULTS)
def test_broken_qr_images(issuers, names: list[str], message: str) -> None:
    with pytest.raises(HealthCardQrError, match=message):
        read_images(names, issuers)


def test_an_image_whose_payload_is_not_json(issuers) -> None:
    with pytest.raises(HealthCardPayloadError, match="not a JSON object"):
        read_images(["test-invalid-jws-payload.png"], issuers)


KEY_FAULTS = [
    ("wrong_alg_key.json", "not for ES256"),
    ("wrong_curve_key.json", "not an EC P-256 key"),
    ("wrong_kid_key.json", "thumbprint"),
    ("wrong_kty_key.json", "not an EC P-256 key"),
    ("wrong_use_key.json", "not for signing"),
    ("cert_mismatch.public.json", "first certificate of its x5c chain"),
    ("invalid_chain.public.json", "do not chain"),
    ("spec-issuer/issuer.jwks.private.json", "holds its private part"),
]


def jwks_of(name: str) -> Any:
    document = json.loads(data(name).read_text())
    return document if "keys" in document else {"keys": [document]}


@pytest.mark.parametrize(("name", "message"), KEY_FAULTS)
def test_issuer_keys_that_cannot_be_trusted(name: str, message: str) -> None:
    with pytest.raises(TrustConfigurationError, match=message):
        shc.IssuerDirectory.from_jwks("https://example.org/issuer", jwks_of(name))


def test_a_key_set_file_that_is_not_json() -> None:
    with pytest.raises(TrustConfigurationError, match="cannot be read as JSON"):
        shc.IssuerDirectory.from_jwks_file(
            "https://example.org/issuer", data("badjwks/.well-known/jwks.json")
        )


@pytest.mark.parametrize(
    "name",
    [
        "valid_key.json",
        "valid_keys.json",
        "valid_key_with_x5c.json",
        "valid_2_chain.public.json",
        "issuer.jwks.public.not.smart.json",
    ],
)
def test_good_issuer_keys_load(name: str) -> None:
    directory = shc.IssuerDirectory.from_jwks(
        "https://example.org/issuer", jwks_of(name)
    )

    assert len(directory) == len(jwks_of(name)["keys"])


# --------------------------------------------------------------------------
# Payload and bundle files, signed here
# --------------------------------------------------------------------------


def signed_payload_file(name: str) -> str:
    return sign_card(json.loads(data(name).read_text(encoding="utf-8")))


PAYLOAD_FAULTS = [
    ("exp_milliseconds", HealthCardPayloadError, "milliseconds"),
    ("expired", ExpiredCertificate, "expired"),
    ("missing-coding", HealthCardBundleError, "vaccineCode"),
    ("missing-shc-vc-type", HealthCardPayloadError, "health-card"),
    ("nbf_milliseconds", HealthCardPayloadError, "milliseconds"),
    ("nbf_not_yet_valid", NotYetValidCertificate, "not valid yet"),
    ("pre-expired", HealthCardPayloadError, "expires before"),
]


@pytest.mark.parametrize(("fault", "error", "message"), PAYLOAD_FAULTS)
def test_broken_payloads(issuers, fault: str, error, message: str) -> None:
    jws = signed_payload_file(f"test-example-00-b-jws-payload-expanded-{fault}.json")

    with pytest.raises(error, match=message):
        shc.verify_card(jws, issuers=issuers, now=NOW)


def test_trailing_characters_after_a_payload(issuers) -> None:
    text = data(
        "test-example-00-b-jws-payload-expanded-trailing_chars.json"
    ).read_text()
    minified = json.dumps(json.loads(text), separators=(",", ":")).encode()
    jws = sign_card(minified + text[len(text.rstrip()) :].encode())

    with pytest.raises(HealthCardPayloadError, match="white space"):
        shc.verify_card(jws, issuers=issuers, now=NOW)


@pytest.mark.parametrize(
    "name",
    [
        "test-example-00-b-jws-payload-expanded-missing-covid-vc-type.json",
        "test-example-00-b-jws-payload-expanded-missing-imm-vc-type.json",
        "test-example-00-b-jws-payload-expanded-optional-vc-type.json",
        "test-example-00-b-jws-payload-expanded-unknown-vc-types.json",
        "test-example-covid-lab-jwspayload-missing-lab-vc-type.json",
    ],
)
def test_types_the_specification_only_recommends(issuers, name: str) -> None:
    # A card SHOULD also list #immunization, #laboratory and #covid19, and
    # MAY list others; only #health-card is required.
    card = shc.verify_card(signed_payload_file(name), issuers=issuers, now=NOW)

    assert shc.HEALTH_CARD_TYPE in card.types
    assert card.immunizations or card.lab_results


BUNDLE_FAULTS = [
    ("fhirBundle-bad_meta_extra_key", "meta"),
    ("fhirBundle-bad_meta_non_security", "meta"),
    ("fhirBundle-bad_meta_wrong_security", "meta"),
    ("fhirBundle-empty-values", "empty value"),
    ("fhirBundle-occurrence-issues", "occurrenceDateTime and only it"),
    ("fhirBundle-profile-usa", "2 patients"),
    ("fhirBundle-status-not-completed", "status completed"),
    ("non-dm-properties", "meta"),
    ("short-refs", "does not refer to the bundle's patient"),
]


@pytest.mark.parametrize(("fault", "message"), BUNDLE_FAULTS)
def test_broken_bundles(issuers, fault: str, message: str) -> None:
    bundle = json.loads(data(f"test-example-00-a-{fault}.json").read_text())
    jws = sign_card(card_payload(bundle))

    with pytest.raises(HealthCardBundleError, match=message):
        shc.verify_card(jws, issuers=issuers, now=NOW)


def test_the_bundle_with_trailing_characters_reads_once_inside_a_card(issuers) -> None:
    # White space after a bundle file cannot survive being put into a
    # payload; the payload case above is where that fault can occur.
    bundle = json.loads(
        data("test-example-00-a-fhirBundle-trailing_chars.json").read_text()
    )

    card = shc.verify_card(sign_card(card_payload(bundle)), issuers=issuers, now=NOW)

    assert [i.code for i in card.immunizations] == ["207", "207"]


# --------------------------------------------------------------------------
# Valid cards
# --------------------------------------------------------------------------


def test_a_card_we_sign_reads_whole(issuers) -> None:
    jws = sign_card(card_payload(immunization_bundle()))

    card = shc.verify_card(jws, issuers=issuers, now=NOW)

    assert card.issuer == SPEC_ISSUER
    assert card.name.family == "Anyperson"
    assert card.name.given == "John B."
    assert card.birth_date is not None and card.birth_date.text == "1951-01-20"
    assert [(i.code, i.dose_number) for i in card.immunizations] == [
        ("207", 1),
        ("207", 2),
    ]
    assert card.immunizations[1].occurred_at == datetime(2021, 1, 29, tzinfo=UTC)
    assert card.immunizations[0].performer == "ABC General Hospital"
    assert card.identifier.startswith("shc-") and len(card.identifier) == 36
    assert "Anyperson" not in repr(card)


def test_doses_are_numbered_by_date_when_given_out_of_order(issuers) -> None:
    bundle = immunization_bundle(doses=(("208", "2021-03-01"), ("208", "2021-02-01")))

    card = shc.verify_card(sign_card(card_payload(bundle)), issuers=issuers, now=NOW)

    assert [(i.occurred_at.month, i.dose_number) for i in card.immunizations] == [
        (2, 1),
        (3, 2),
    ]


def test_a_laboratory_result(issuers) -> None:
    jws = sign_card(
        card_payload(
            lab_bundle(),
            types=[
                "https://smarthealth.cards#health-card",
                "https://smarthealth.cards#laboratory",
            ],
        )
    )

    card = shc.verify_card(jws, issuers=issuers, now=NOW)

    (lab,) = card.lab_results
    assert (lab.code, lab.method, lab.result) == ("94558-4", "antigen", "negative")
    assert lab.effective_at == datetime(2026, 3, 9, 0, 30, tzinfo=UTC)


def test_a_single_numeric_qr_text(issuers) -> None:
    jws = sign_card(card_payload(immunization_bundle()))

    card = shc.read_card("shc:/" + numeric(jws), issuers=issuers, now=NOW)

    assert len(card.immunizations) == 2


def test_a_legacy_multi_chunk_card_in_any_order(issuers) -> None:
    doses = tuple(("207", f"2021-{month:02d}-01") for month in range(1, 13))
    bundle = immunization_bundle(doses=doses)
    noise = random.Random(7)
    for entry in bundle["entry"][1:]:
        # Random lot numbers, so that DEFLATE cannot shrink the card below
        # the length of one QR code.
        entry["resource"]["lotNumber"] = f"{noise.getrandbits(160):040x}"
    jws = sign_card(card_payload(bundle))
    assert len(jws) > shc.MAX_SINGLE_JWS
    half = (len(jws) + 1) // 2
    chunks = [f"shc:/1/2/{numeric(jws[:half])}", f"shc:/2/2/{numeric(jws[half:])}"]

    card = shc.read_card(list(reversed(chunks)), issuers=issuers, now=NOW)

    assert len(card.immunizations) == 12
    with pytest.raises(HealthCardQrError, match="twice"):
        shc.read_card([chunks[0], chunks[0]], issuers=issuers, now=NOW)
    with pytest.raises(HealthCardQrError, match="disagree"):
        shc.read_card(
            [chunks[0], "shc:/2/3/" + numeric(jws[half:])], issuers=issuers, now=NOW
        )
    with pytest.raises(HealthCardFormatError, match="longer than"):
        shc.verify_card(jws, issuers=issuers, now=NOW)


def test_the_corpus_cards_that_are_valid(issuers) -> None:
    at_limit = read_numeric_files(["test-example-1195-byte-qrnumeric.txt"], issuers)
    padded = read_images(["test-example-00-g-qr-code-inflated-to-v22.png"], issuers)
    scaled = read_images(["test-example-00-g-qr-code-0-scaled-23.jpg"], issuers)
    pair = read_card_file("test-example-00-e-file-multi-jws.smart-health-card", issuers)

    assert len(at_limit.immunizations) == 5
    assert padded.name == scaled.name
    assert [card.key_id for card in pair] == [
        "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s",
        "EBKOr72QQDcTBUuVzAzkfBTGew0ZA16GuWty64nS-sw",
    ]


def test_a_card_signed_by_another_key_is_forged(issuers) -> None:
    jws = sign_card(
        card_payload(immunization_bundle()),
        key=ec.generate_private_key(ec.SECP256R1()),
        kid=SPEC_KID,
    )

    with pytest.raises(ForgedCertificate):
        shc.verify_card(jws, issuers=issuers, now=NOW)


def test_times(issuers) -> None:
    later = card_payload(
        immunization_bundle(), nbf=(NOW + timedelta(hours=1)).timestamp()
    )
    ending = card_payload(
        immunization_bundle(), exp=(NOW - timedelta(seconds=1)).timestamp()
    )

    with pytest.raises(NotYetValidCertificate):
        shc.verify_card(sign_card(later), issuers=issuers, now=NOW)
    assert shc.verify_card(
        sign_card(later), issuers=issuers, now=NOW, skew=timedelta(hours=1)
    ).valid_from == NOW + timedelta(hours=1)
    with pytest.raises(ExpiredCertificate):
        shc.verify_card(sign_card(ending), issuers=issuers, now=NOW)


def test_an_issuer_key_file_for_several_issuers(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    jwks = json.loads(data("spec-issuer/jwks.json").read_text())
    path.write_text(
        json.dumps(
            {SPEC_ISSUER: jwks, "https://example.org/other": jwks_of("valid_key.json")}
        )
    )

    directory = shc.IssuerDirectory.from_file(path)

    assert directory.issuers() == {SPEC_ISSUER, "https://example.org/other"}
    assert len(directory) == 3


@pytest.mark.parametrize("issuer", ["http://example.org", "https://example.org/", ""])
def test_an_issuer_url_that_cannot_be_configured(issuer: str) -> None:
    with pytest.raises(TrustConfigurationError, match="https URL"):
        shc.IssuerDirectory.from_jwks(issuer, jwks_of("valid_key.json"))
