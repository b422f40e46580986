from __future__ import annotations

import struct
from datetime import UTC, datetime, time, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from healthcode.codes import base45, qr
from healthcode.codes.errors import (
    CodeParameterError,
    ExpiredCode,
    InvalidCode,
    InvalidReference,
    KeyConfigurationError,
    NotYetValidCode,
    UnknownKeyCode,
)
from healthcode.codes.format import (
    HEADER_SIZE,
    PREFIX,
    CodeContent,
    Colour,
    Issuer,
    Purpose,
    SubjectSealer,
    next_daily_expiry,
    open_subject,
    parse_code,
    seal_subject,
    sign_code,
)
from healthcode.codes.keys import SigningKey
from healthcode.codes.trust import Verifier

from .support import NOW, code_key, counter_bytes, seed

SHANGHAI = ZoneInfo("Asia/Shanghai")

try:
    from healthcode.identity.names import mask_name
except ImportError:  # The masking is written elsewhere; its shape is known.

    def mask_name(name: str) -> str:
        return name[0] + "*" * (len(name) - 1)


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


# Issuing


def test_screen_code_carries_every_field(issuer: Issuer, verifier: Verifier) -> None:
    text = issuer.screen_code(42, "张**", Colour.YELLOW, NOW)

    code = verifier.verify(text, NOW)

    assert text.startswith("HCZ1:")
    assert code.content.purpose is Purpose.SCREEN
    assert code.colour is Colour.YELLOW
    assert code.masked_name == "张**"
    assert code.content.region == "310000"
    assert code.content.key_id == issuer.signing_key.record.key_id
    assert code.content.issued_at == NOW
    assert code.content.valid_until == NOW + timedelta(minutes=5)
    assert code.content.status_index is None
    assert issuer.resolve(code.content) == 42


def test_screen_code_never_outlives_the_daily_expiry(
    issuer: Issuer, verifier: Verifier
) -> None:
    issued = shanghai(2026, 3, 2, 23, 58, 30)

    code = verifier.verify(issuer.screen_code(42, "张**", Colour.GREEN, issued), issued)

    assert code.content.valid_until == shanghai(2026, 3, 3, 0, 0)


def test_screen_code_issued_at_the_expiry_lives_its_full_time(
    issuer: Issuer, verifier: Verifier
) -> None:
    issued = shanghai(2026, 3, 3, 0, 0)

    code = verifier.verify(issuer.screen_code(42, "张**", Colour.GREEN, issued), issued)

    assert code.content.valid_until == shanghai(2026, 3, 3, 0, 5)


def test_daily_expiry_and_zone_are_parameters(signing_key: SigningKey) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    issuer = Issuer(
        signing_key,
        seed("subject"),
        daily_expiry=time(4, 0),
        zone=berlin,
        screen_ttl=timedelta(minutes=30),
    )
    issued = datetime(2026, 3, 2, 3, 50, tzinfo=berlin)

    text = issuer.screen_code(42, "张**", Colour.GREEN, issued)

    assert parse_code(text)[0].valid_until == datetime(2026, 3, 2, 4, 0, tzinfo=berlin)


def test_next_daily_expiry_crosses_a_daylight_saving_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")

    # The clocks go forward at 02:00 on 29 March 2026; that day is 23 hours.
    expiry = next_daily_expiry(
        datetime(2026, 3, 28, 12, 0, tzinfo=berlin), time(3, 0), berlin
    )

    assert expiry == datetime(2026, 3, 29, 3, 0, tzinfo=berlin)
    assert expiry - datetime(2026, 3, 28, 12, 0, tzinfo=berlin) == timedelta(hours=14)


def test_issuer_cache_of_the_expiry_follows_the_day(
    issuer: Issuer, verifier: Verifier
) -> None:
    first = shanghai(2026, 3, 2, 12, 0)
    second = shanghai(2026, 3, 3, 23, 57)

    issuer.screen_code(42, "张**", Colour.GREEN, first)
    code = verifier.verify(issuer.screen_code(42, "张**", Colour.GREEN, second), second)

    assert code.content.valid_until == shanghai(2026, 3, 4, 0, 0)


def test_paper_code_lives_fourteen_days_without_colour(
    issuer: Issuer, verifier: Verifier
) -> None:
    text = issuer.paper_code(42, "张**", 7_654_321, NOW)

    code = verifier.verify(text, NOW)

    assert code.purpose is Purpose.PAPER
    assert code.colour is None
    assert code.content.status_index == 7_654_321
    assert code.content.valid_until == NOW + timedelta(days=14)
    assert issuer.resolve(code.content) == 42


def test_issued_at_is_cut_to_the_second(issuer: Issuer) -> None:
    text = issuer.screen_code(
        42, "张**", Colour.GREEN, NOW + timedelta(microseconds=900)
    )

    assert parse_code(text)[0].issued_at == NOW


def test_masked_name_is_stored_in_nfc(issuer: Issuer) -> None:
    decomposed = "E\u0301**"

    text = issuer.screen_code(42, decomposed, Colour.GREEN, NOW)

    assert parse_code(text)[0].masked_name == "\u00c9**"


@pytest.mark.parametrize(
    "name",
    ["", "张" * 22, "张\n*", "张\u202e**", "\x00"],
    ids=["empty", "65-bytes", "newline", "bidi-override", "nul"],
)
def test_unusable_masked_names_are_refused(issuer: Issuer, name: str) -> None:
    with pytest.raises(CodeParameterError):
        issuer.screen_code(42, name, Colour.GREEN, NOW)


def test_longest_masked_name_is_accepted(issuer: Issuer, verifier: Verifier) -> None:
    name = "张" * 21 + "*"  # 64 bytes of UTF-8

    code = verifier.verify(issuer.paper_code(42, name, 1, NOW), NOW)

    assert code.masked_name == name


@pytest.mark.parametrize("resident_id", [0, -1, 2**48, "42", 4.0, True])
def test_resident_ids_outside_48_bits_are_refused(
    issuer: Issuer, resident_id: object
) -> None:
    with pytest.raises(CodeParameterError):
        issuer.screen_code(resident_id, "张**", Colour.GREEN, NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("index", [-1, 2**32, "7", None, False])
def test_status_indices_outside_32_bits_are_refused(
    issuer: Issuer, index: object
) -> None:
    with pytest.raises(CodeParameterError):
        issuer.paper_code(42, "张**", index, NOW)  # type: ignore[arg-type]


def test_colour_must_be_a_colour(issuer: Issuer) -> None:
    with pytest.raises(CodeParameterError):
        issuer.screen_code(42, "张**", "green", NOW)  # type: ignore[arg-type]


def test_naive_clock_is_refused(issuer: Issuer) -> None:
    with pytest.raises(CodeParameterError, match="timezone-aware"):
        issuer.screen_code(42, "张**", Colour.GREEN, datetime(2026, 3, 2, 9, 15))


def test_a_key_outside_its_signing_period_names_itself(signing_key: SigningKey) -> None:
    issuer = Issuer(signing_key, seed("subject"))
    before_start = signing_key.record.valid_from - timedelta(seconds=1)

    with pytest.raises(KeyConfigurationError, match=signing_key.record.name):
        issuer.screen_code(42, "张**", Colour.GREEN, before_start)


@pytest.mark.parametrize(
    "settings",
    [
        {"screen_ttl": timedelta(0)},
        {"screen_ttl": timedelta(days=2)},
        {"paper_ttl": timedelta(days=32)},
    ],
)
def test_lifetimes_out_of_range_are_refused(
    signing_key: SigningKey, settings: dict[str, timedelta]
) -> None:
    with pytest.raises(CodeParameterError):
        Issuer(signing_key, seed("subject"), **settings)  # type: ignore[arg-type]


def test_subject_secret_must_be_32_bytes(signing_key: SigningKey) -> None:
    with pytest.raises(CodeParameterError, match="32 bytes"):
        Issuer(signing_key, b"short")


# Layout


def test_layout_matches_the_documented_offsets(signing_key: SigningKey) -> None:
    issuer = Issuer(signing_key, seed("subject"), random_bytes=counter_bytes())

    raw = base45.decode(issuer.paper_code(42, "张**", 513, NOW)[len(PREFIX) :])

    body, signature = raw[:-64], raw[-64:]
    fields = struct.unpack(">BB3s4sII16sI", body[: HEADER_SIZE + 4])
    assert HEADER_SIZE == 33
    assert fields[0] == 1
    assert fields[1] == 0x20
    assert fields[2] == (310000).to_bytes(3, "big")
    assert fields[3] == signing_key.record.key_id
    assert fields[4] == int(NOW.timestamp())
    assert fields[5] == int((NOW + timedelta(days=14)).timestamp())
    assert fields[7] == 513
    assert body[HEADER_SIZE + 4 :] == "张**".encode()
    signing_key.record.verifying_key().verify(signature, b"HCZ1:" + body)


def test_screen_byte_holds_purpose_and_colour(signing_key: SigningKey) -> None:
    issuer = Issuer(signing_key, seed("subject"))
    wire = {
        Colour.GREEN: 0x11,
        Colour.YELLOW: 0x12,
        Colour.RED: 0x13,
        Colour.GREY: 0x14,
    }

    found = {
        colour: base45.decode(issuer.screen_code(42, "张**", colour, NOW)[5:])[1]
        for colour in Colour
    }

    assert found == wire


def test_sign_code_refuses_a_content_naming_another_key(
    issuer: Issuer, signing_key: SigningKey
) -> None:
    content = parse_code(issuer.screen_code(42, "张**", Colour.GREEN, NOW))[0]

    with pytest.raises(CodeParameterError, match="names key"):
        sign_code(content, code_key("420100"))


def test_sign_code_reproduces_the_issuers_text(
    issuer: Issuer, signing_key: SigningKey
) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)

    again = sign_code(parse_code(text)[0], signing_key)

    assert again == text


# Subject references


def test_subject_reference_differs_in_every_code(issuer: Issuer) -> None:
    texts = [issuer.screen_code(42, "张**", Colour.GREEN, NOW) for _ in range(50)]

    references = {parse_code(text)[0].subject_reference for text in texts}
    resolved = {issuer.resolve(parse_code(text)[0]) for text in texts}

    assert len(references) == 50
    assert resolved == {42}


def test_subject_reference_opens_only_under_its_secret() -> None:
    reference = seal_subject(42, seed("a"), b"\x00" * 8)

    opened = open_subject(reference, seed("a"))

    assert opened == 42
    with pytest.raises(InvalidReference):
        open_subject(reference, seed("b"))


@pytest.mark.parametrize("reference", [b"", b"\x00" * 15, b"\x00" * 16, b"\xff" * 16])
def test_foreign_references_are_refused(reference: bytes) -> None:
    sealer = SubjectSealer(seed("a"))

    with pytest.raises(InvalidReference):
        sealer.open(reference)


def test_reference_is_one_aes_block_of_nonce_zeros_and_id() -> None:
    secret = seed("a")
    sealer = SubjectSealer(secret)

    reference = sealer.seal(0x0102030405, bytes.fromhex("a1a2a3a4a5a6a7a8"))

    decryptor = Cipher(algorithms.AES(secret), modes.ECB()).decryptor()
    block = decryptor.update(reference) + decryptor.finalize()
    assert block.hex() == "a1a2a3a4a5a6a7a8" + "0000" + "000102030405"


def test_resolve_refuses_another_regions_code(issuer: Issuer) -> None:
    other = Issuer(code_key("420100"), seed("subject 420100"))
    content = parse_code(other.screen_code(42, "张**", Colour.GREEN, NOW))[0]

    with pytest.raises(InvalidReference, match="420100"):
        issuer.resolve(content)


# Verification outcomes


def test_expired_code_raises_expired(issuer: Issuer, verifier: Verifier) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)

    with pytest.raises(ExpiredCode) as caught:
        verifier.verify(text, NOW + timedelta(minutes=5))

    assert caught.value.code == "expired_code"
    assert isinstance(caught.value, InvalidCode)


def test_code_from_the_future_raises_not_yet_valid(
    issuer: Issuer, verifier: Verifier
) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)

    accepted = verifier.verify(text, NOW - timedelta(minutes=5))

    assert accepted.colour is Colour.GREEN
    with pytest.raises(NotYetValidCode):
        verifier.verify(text, NOW - timedelta(minutes=5, seconds=1))


def test_unknown_key_raises_unknown_key(issuer: Issuer) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)
    verifier = Verifier([code_key("420100").record])

    with pytest.raises(UnknownKeyCode, match=issuer.signing_key.record.name):
        verifier.verify(text, NOW)


def test_forged_signature_is_plainly_invalid(signing_key: SigningKey) -> None:
    # A forger who knows the key id signs with a key of their own.
    forger = SigningKey(signing_key.record, code_key(label="forger").private_key)
    forged = Issuer(forger, seed("subject")).screen_code(42, "张**", Colour.GREEN, NOW)

    with pytest.raises(InvalidCode) as caught:
        Verifier([signing_key.record]).verify(forged, NOW)

    assert type(caught.value) is InvalidCode
    assert str(caught.value) == "The code is not a valid health code."


def test_every_single_character_change_is_rejected(
    issuer: Issuer, verifier: Verifier
) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)
    accepted = 0

    for position in range(len(text)):
        for char in base45.ALPHABET + "a~\u00e9":
            if char == text[position]:
                continue
            altered = text[:position] + char + text[position + 1 :]
            try:
                verifier.verify(altered, NOW)
            except InvalidCode:
                continue
            accepted += 1

    assert accepted == 0


def test_every_single_byte_change_is_rejected(
    issuer: Issuer, verifier: Verifier
) -> None:
    raw = base45.decode(issuer.screen_code(42, "张**", Colour.GREEN, NOW)[5:])
    accepted = 0

    for position in range(len(raw)):
        for flip in (0x01, 0x80, 0xFF):
            altered = bytearray(raw)
            altered[position] ^= flip
            try:
                verifier.verify(PREFIX + base45.encode(bytes(altered)), NOW)
            except InvalidCode:
                continue
            accepted += 1

    assert accepted == 0


@pytest.mark.parametrize("cut", [1, 2, 3, 64, 100])
def test_truncated_and_extended_codes_are_rejected(
    issuer: Issuer, verifier: Verifier, cut: int
) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)

    for altered in (text[:-cut], text + "0" * cut, text + "00"):
        with pytest.raises(InvalidCode):
            verifier.verify(altered, NOW)


@pytest.mark.parametrize(
    "value",
    [None, 42, b"HCZ1:00", "", "HCZ1:", "hcz1:00", "HC1:NCFOXN", "HCZ2:00", "HCZ1"],
)
def test_inputs_that_are_not_codes_are_invalid(
    verifier: Verifier, value: object
) -> None:
    with pytest.raises(InvalidCode):
        verifier.verify(value, NOW)


def test_verifier_checks_lifetime_against_its_purpose(signing_key: SigningKey) -> None:
    # An issuer that is misconfigured (or abused) to make screen codes that
    # live a day is refused by a checkpoint whose limit is an hour.
    issuer = Issuer(signing_key, seed("subject"), screen_ttl=timedelta(hours=2))
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)
    strict = Verifier([signing_key.record], max_screen_lifetime=timedelta(hours=1))

    with pytest.raises(InvalidCode):
        strict.verify(text, NOW)


def test_verification_needs_an_aware_clock(issuer: Issuer, verifier: Verifier) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)

    with pytest.raises(CodeParameterError):
        verifier.verify(text, datetime(2026, 3, 2, 9, 15))


def test_unknown_format_version_is_invalid(signing_key: SigningKey) -> None:
    issuer = Issuer(signing_key, seed("subject"))
    raw = bytearray(
        base45.decode(issuer.screen_code(42, "张**", Colour.GREEN, NOW)[5:])
    )
    raw[0] = 2
    body = bytes(raw[:-64])
    signed = body + signing_key.sign(b"HCZ1:" + body)

    with pytest.raises(InvalidCode):
        Verifier([signing_key.record]).verify(PREFIX + base45.encode(signed), NOW)


# Row C12: spaces and percent signs


def _code_with(issuer_key: SigningKey, wanted: str) -> str:
    issuer = Issuer(issuer_key, seed("subject"), random_bytes=counter_bytes())
    for _ in range(2000):
        text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)
        if all(part in text for part in wanted):
            return text
    raise AssertionError(f"no code among 2000 held all of {wanted!r}")


def test_c12_code_with_spaces_verifies_exactly_as_written(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    text = _code_with(signing_key, " %")

    code = verifier.verify(text, NOW)

    assert code.colour is Colour.GREEN
    for altered in (
        text.replace(" ", ""),
        text.replace(" ", "+"),
        " " + text,
        text + " ",
        text + "\n",
        text.strip() + " ",
    ):
        with pytest.raises(InvalidCode):
            verifier.verify(altered, NOW)


def test_c12_percent_encoded_code_fails_cleanly(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    text = _code_with(signing_key, " %")

    for altered in (
        text.replace("%", "%25").replace(" ", "%20"),
        quote(text),
        quote(text, safe=":"),
        text.replace(" ", "%20"),
    ):
        with pytest.raises(InvalidCode) as caught:
            verifier.verify(altered, NOW)
        assert type(caught.value) is InvalidCode


# Size and images


@pytest.mark.parametrize("name", ["张三丰", "欧阳华", "\U00020164明华", "𠀀𠀁𠀂"])
def test_screen_code_for_three_characters_fits_version_7_at_m(
    issuer: Issuer, name: str
) -> None:
    for shown in (name, mask_name(name)):
        text = issuer.screen_code(42, shown, Colour.RED, NOW)

        version, modules = qr.symbol_size(text)

        assert version <= 7, (shown, version)
        assert modules <= 45


def test_paper_code_fits_version_7_at_m(issuer: Issuer) -> None:
    text = issuer.paper_code(42, mask_name("欧阳华"), 2**32 - 1, NOW)

    assert qr.symbol_size(text)[0] <= 7


def test_symbol_is_alphanumeric_mode(issuer: Issuer) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)

    assert qr.make_symbol(text).mode == "alphanumeric"


@pytest.mark.parametrize("colour", list(Colour))
def test_rendered_png_decodes_back_to_a_valid_code(
    issuer: Issuer, verifier: Verifier, tmp_path, colour: Colour
) -> None:
    text = issuer.screen_code(42, "\U00020164**", colour, NOW)
    path = tmp_path / "code.png"

    qr.write_png(text, path, colour, scale=4)
    decoded = qr.read_texts(path)

    assert decoded == [text]
    code = verifier.verify(decoded[0], NOW)
    assert code.colour is colour
    assert code.masked_name == "\U00020164**"


def test_rendered_code_with_spaces_decodes_with_its_spaces(
    signing_key: SigningKey, verifier: Verifier, tmp_path
) -> None:
    text = _code_with(signing_key, " %")
    path = tmp_path / "code.png"

    qr.write_png(text, path, Colour.GREEN, scale=3)

    assert qr.read_texts(path) == [text]
    assert verifier.verify(qr.read_texts(path)[0], NOW).colour is Colour.GREEN


def test_svg_is_written(issuer: Issuer, tmp_path) -> None:
    path = tmp_path / "code.svg"

    qr.write_svg(issuer.screen_code(42, "张**", Colour.RED, NOW), path, Colour.RED)

    svg = path.read_text()
    assert svg.startswith("<?xml") and "#b3111b" in svg


def test_content_is_a_plain_record() -> None:
    content = CodeContent(
        purpose=Purpose.SCREEN,
        colour=Colour.GREEN,
        region="310000",
        key_id=b"\x01\x02\x03\x04",
        issued_at=NOW,
        valid_until=NOW + timedelta(minutes=5),
        subject_reference=bytes(16),
        masked_name="张**",
    )

    assert content.key_name == "310000-01020304"
    assert content.valid_until.tzinfo is UTC
