from __future__ import annotations

import random
import struct
import zlib
from dataclasses import replace
from datetime import timedelta

import pytest

from healthcode.codes.errors import (
    CodeParameterError,
    InvalidCode,
    InvalidStatusList,
    KeyConfigurationError,
    StaleStatusList,
    StatusListNotHeld,
)
from healthcode.codes.format import Colour, Issuer
from healthcode.codes.keys import SigningKey
from healthcode.codes.statuslist import (
    PaperCheck,
    build_status_list,
    check_paper_code,
    load_status_list,
)
from healthcode.codes.trust import Verifier

from .support import NOW, code_key, seed, trust_key

NOT_GREEN = (Colour.YELLOW, Colour.RED, Colour.GREY)


def _resign(document: bytes, key: SigningKey) -> bytes:
    body = document[:-64]
    return body + key.sign(body)


def test_colours_are_read_back(signing_key: SigningKey, verifier: Verifier) -> None:
    colours = {0: Colour.RED, 5: Colour.YELLOW, 6: Colour.GREY, 999: Colour.RED}

    listed = load_status_list(
        build_status_list(colours, 1000, signing_key, NOW), verifier, NOW
    )

    assert {i: listed.colour_of(i) for i in colours} == colours
    assert listed.colour_of(1) is Colour.GREEN
    assert listed.colour_of(998) is Colour.GREEN
    assert listed.count(Colour.RED) == 2
    assert listed.count(Colour.GREEN) == 996
    assert listed.region == "310000"
    assert listed.key == signing_key.record
    assert listed.valid_until == NOW + timedelta(hours=36)


def test_green_entries_are_not_stored(signing_key: SigningKey) -> None:
    with_green = build_status_list(
        {1: Colour.GREEN, 2: Colour.RED}, 10, signing_key, NOW
    )
    without = build_status_list({2: Colour.RED}, 10, signing_key, NOW)

    assert with_green == without


def test_index_outside_the_space_is_not_held(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    listed = load_status_list(
        build_status_list({}, 100, signing_key, NOW), verifier, NOW
    )

    with pytest.raises(StatusListNotHeld, match="index 100"):
        listed.colour_of(100)


@pytest.mark.parametrize(
    ("colours", "space"),
    [({10: Colour.RED}, 10), ({-1: Colour.RED}, 10), ({1: "red"}, 10), ({}, 2**32)],
)
def test_bad_inputs_are_refused(
    signing_key: SigningKey, colours: dict[int, Colour], space: int
) -> None:
    with pytest.raises(CodeParameterError):
        build_status_list(colours, space, signing_key, NOW)


def test_trust_list_key_cannot_sign_a_status_list() -> None:
    with pytest.raises(KeyConfigurationError, match="trust-list key"):
        build_status_list({}, 10, trust_key(), NOW)


def test_twenty_million_residents_take_far_under_a_byte_each(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    rng = random.Random(2260)
    residents = 20_000_000
    listed = rng.sample(range(residents), 200_000)  # one in a hundred

    document = build_status_list(
        {index: rng.choice(NOT_GREEN) for index in listed},
        residents,
        signing_key,
        NOW,
    )
    status_list = load_status_list(document, verifier, NOW)

    assert status_list.bytes_per_resident < 0.02
    assert status_list.colour_of(listed[0]) is not Colour.GREEN


def test_every_resident_not_green_stays_under_a_byte_each(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    rng = random.Random(38963)
    residents = 1_000_000

    document = build_status_list(
        {index: rng.choice(NOT_GREEN) for index in range(residents)},
        residents,
        signing_key,
        NOW,
    )

    assert len(document) / residents < 1.0
    assert load_status_list(document, verifier, NOW).count(Colour.GREEN) == 0


def test_changed_byte_breaks_the_signature(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    document = build_status_list({3: Colour.RED}, 100, signing_key, NOW)

    for position in range(len(document)):
        altered = bytearray(document)
        altered[position] ^= 0x01
        with pytest.raises(InvalidStatusList):
            load_status_list(bytes(altered), verifier, NOW)


@pytest.mark.parametrize("document", [b"", b"HCZS", b"\x00" * 200, "text"])
def test_malformed_documents_are_refused(verifier: Verifier, document: bytes) -> None:
    with pytest.raises(InvalidStatusList):
        load_status_list(document, verifier, NOW)


def test_list_of_an_unknown_region_is_refused(signing_key: SigningKey) -> None:
    document = build_status_list({}, 10, signing_key, NOW)

    with pytest.raises(InvalidStatusList, match="no trust list"):
        load_status_list(document, Verifier([code_key("420100").record]), NOW)


def test_list_signed_by_a_revoked_key_is_refused(signing_key: SigningKey) -> None:
    document = build_status_list({}, 10, signing_key, NOW)
    revoked = replace(signing_key.record, revoked_at=NOW)

    with pytest.raises(InvalidStatusList, match="revoked"):
        load_status_list(document, Verifier([revoked]), NOW)


def test_stale_list_is_refused(signing_key: SigningKey, verifier: Verifier) -> None:
    document = build_status_list({}, 10, signing_key, NOW)

    with pytest.raises(StaleStatusList, match="310000"):
        load_status_list(document, verifier, NOW + timedelta(hours=36))


def test_list_from_the_future_is_refused(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    document = build_status_list({}, 10, signing_key, NOW + timedelta(hours=1))

    with pytest.raises(InvalidStatusList, match="later than"):
        load_status_list(document, verifier, NOW)


def _entries_document(key: SigningKey, entries: bytes, space: int = 100) -> bytes:
    # A list with hand-made entries, validly signed: the reader must check
    # the entries themselves, not trust them because the signature holds.
    header = build_status_list({}, space, key, NOW)[:24]
    body = header + zlib.compress(entries)
    return body + key.sign(body)


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        (bytes([1, 0, 0, 0, 0]), "damaged"),  # bytes left after the three lists
        (bytes([2, 5, 0]), "damaged"),  # the yellow list ends early
        (bytes([1, 200]), "damaged"),  # a varint cut short
        (bytes([1, 100, 0, 0]), "damaged"),  # index 100 in a space of 100
        (bytes([1, 5, 1, 5, 0]), "two colours"),  # index 5 yellow and red
        (bytes([0x80] * 6), "damaged"),  # a varint longer than five bytes
    ],
)
def test_damaged_entries_are_refused(
    signing_key: SigningKey, verifier: Verifier, entries: bytes, complaint: str
) -> None:
    document = _entries_document(signing_key, entries)

    with pytest.raises(InvalidStatusList, match=complaint):
        load_status_list(document, verifier, NOW)


def test_hand_made_entries_are_read() -> None:
    key = code_key()
    document = _entries_document(key, bytes([1, 5, 2, 0, 3, 0]))

    listed = load_status_list(document, Verifier([key.record]), NOW)

    assert listed.colour_of(5) is Colour.YELLOW
    assert listed.colour_of(0) is Colour.RED
    assert listed.colour_of(4) is Colour.RED
    assert listed.colour_of(1) is Colour.GREEN


def test_entries_that_inflate_without_bound_are_refused(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    document = _entries_document(signing_key, bytes(10_000_000), space=10)

    with pytest.raises(InvalidStatusList, match="damaged"):
        load_status_list(document, verifier, NOW)


def test_header_layout(signing_key: SigningKey) -> None:
    document = build_status_list({}, 12345, signing_key, NOW)

    magic, version, region, key_id, issued, until, space = struct.unpack_from(
        ">4sB3s4sIII", document
    )

    assert (magic, version) == (b"HCZS", 1)
    assert int.from_bytes(region, "big") == 310000
    assert key_id == signing_key.record.key_id
    assert issued == int(NOW.timestamp())
    assert until == int((NOW + timedelta(hours=36)).timestamp())
    assert space == 12345
    signing_key.record.verifying_key().verify(document[-64:], document[:-64])


# Offline paper codes


def test_paper_code_takes_its_colour_from_the_list(
    issuer: Issuer, signing_key: SigningKey, verifier: Verifier
) -> None:
    text = issuer.paper_code(42, "张**", 77, NOW)
    published = NOW + timedelta(days=3)
    document = build_status_list({77: Colour.YELLOW}, 100, signing_key, published)
    status_list = load_status_list(document, verifier, published)
    checked_at = published + timedelta(hours=5)

    result = check_paper_code(text, verifier, {"310000": status_list}, checked_at)

    assert result == PaperCheck(
        code=verifier.verify(text, checked_at),
        colour=Colour.YELLOW,
        list_issued_at=published,
        list_age=timedelta(hours=5),
    )


def test_paper_code_missing_from_the_list_is_green(
    issuer: Issuer, signing_key: SigningKey, verifier: Verifier
) -> None:
    text = issuer.paper_code(42, "张**", 78, NOW)
    document = build_status_list({77: Colour.RED}, 100, signing_key, NOW)
    lists = {"310000": load_status_list(document, verifier, NOW)}

    assert check_paper_code(text, verifier, lists, NOW).colour is Colour.GREEN


def test_paper_code_without_its_regions_list_is_not_held(
    issuer: Issuer, verifier: Verifier
) -> None:
    text = issuer.paper_code(42, "张**", 78, NOW)

    with pytest.raises(StatusListNotHeld, match="310000"):
        check_paper_code(text, verifier, {}, NOW)


def test_paper_code_with_a_stale_list_says_so(
    issuer: Issuer, signing_key: SigningKey, verifier: Verifier
) -> None:
    text = issuer.paper_code(42, "张**", 78, NOW)
    document = build_status_list({}, 100, signing_key, NOW)
    lists = {"310000": load_status_list(document, verifier, NOW)}

    with pytest.raises(StaleStatusList):
        check_paper_code(text, verifier, lists, NOW + timedelta(hours=36))


def test_screen_code_is_not_a_paper_code(
    issuer: Issuer, signing_key: SigningKey, verifier: Verifier
) -> None:
    text = issuer.screen_code(42, "张**", Colour.GREEN, NOW)
    document = build_status_list({}, 100, signing_key, NOW)
    lists = {"310000": load_status_list(document, verifier, NOW)}

    with pytest.raises(InvalidCode, match="screen code"):
        check_paper_code(text, verifier, lists, NOW)


def test_list_under_another_regions_name_is_not_used(
    issuer: Issuer, verifier: Verifier
) -> None:
    wuhan = code_key("420100")
    both = Verifier([*verifier.keys, wuhan.record])
    text = issuer.paper_code(42, "张**", 78, NOW)
    document = build_status_list({78: Colour.RED}, 100, wuhan, NOW)
    lists = {"310000": load_status_list(document, both, NOW)}

    with pytest.raises(StatusListNotHeld):
        check_paper_code(text, both, lists, NOW)


def test_paper_code_index_beyond_the_list_is_not_held(
    signing_key: SigningKey, verifier: Verifier
) -> None:
    text = Issuer(signing_key, seed("s")).paper_code(42, "张**", 5000, NOW)
    document = build_status_list({}, 100, signing_key, NOW)
    lists = {"310000": load_status_list(document, verifier, NOW)}

    with pytest.raises(StatusListNotHeld, match="index 5000"):
        check_paper_code(text, verifier, lists, NOW)
