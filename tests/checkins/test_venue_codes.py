"""Venue code posters: issued, read back, and refused when forged."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from healthcode.checkins.errors import ExpiredVenueCode, InvalidVenue, InvalidVenueCode
from healthcode.checkins.venue_codes import (
    BODY_SIZE,
    PREFIX,
    issue_venue_code,
    read_venue_code,
    venue_code_for,
)
from healthcode.codes import base45
from healthcode.codes.errors import InvalidCode, RevokedKeyCode, UnknownKeyCode
from healthcode.codes.format import Colour, Issuer
from healthcode.codes.keys import SigningKey
from healthcode.codes.trust import Verifier

from .support import NOW, World, at


def key(name: str = "xian", region: str = "610100") -> SigningKey:
    seed = hashlib.sha256(name.encode()).digest()
    return SigningKey.from_seed(seed, region, NOW - timedelta(days=90))


@pytest.fixture
def signing_key() -> SigningKey:
    return key()


@pytest.fixture
def verifier(signing_key: SigningKey) -> Verifier:
    return Verifier([signing_key.record])


def test_a_poster_reads_back_as_its_venue_region_and_validity(signing_key, verifier):
    text = issue_venue_code(signing_key, 4321, "610113", NOW.replace(microsecond=9))

    code = read_venue_code(text, verifier, NOW + timedelta(days=10))

    assert text.startswith(PREFIX)
    assert (code.venue_id, code.venue_region, code.issuer_region) == (
        4321,
        "610113",
        "610100",
    )
    assert code.key_id == signing_key.record.key_id
    assert code.valid_until - code.valid_from == timedelta(days=180)
    assert len(text) == len(PREFIX) + 134


def _tampered(text: str, offset: int) -> str:
    raw = bytearray(base45.decode(text[len(PREFIX) :]))
    raw[offset] ^= 0x01
    return PREFIX + base45.encode(bytes(raw))


@pytest.mark.parametrize(
    "offset",
    [11, 16, BODY_SIZE - 1, BODY_SIZE + 5, BODY_SIZE + 63],
    ids=["venue-id-high", "venue-id-low", "valid-until", "signature", "last-byte"],
)
def test_a_forged_poster_is_refused_with_one_opaque_reason(
    signing_key, verifier, offset
):
    text = issue_venue_code(signing_key, 4321, "610113", NOW)

    with pytest.raises(InvalidVenueCode) as raised:
        read_venue_code(_tampered(text, offset), verifier, NOW)

    assert type(raised.value) is InvalidVenueCode
    assert str(raised.value) == "The venue code is not a valid venue code."


def test_a_poster_signed_by_a_key_nobody_trusts_is_refused(verifier):
    forged = issue_venue_code(key("forger"), 4321, "610113", NOW)

    with pytest.raises(UnknownKeyCode):
        read_venue_code(forged, verifier, NOW)


@pytest.mark.parametrize(
    "text",
    [None, "", "HCV1:", "HCV1:%%%", "HCZ1:ABCDEF", "hcv1:" + "0" * 30, 1234],
)
def test_text_that_is_no_poster_is_refused(verifier, text):
    with pytest.raises(InvalidVenueCode):
        read_venue_code(text, verifier, NOW)


def test_a_resident_code_does_not_pass_for_a_poster(signing_key, verifier):
    issuer = Issuer(signing_key, bytes(32))
    resident_code = issuer.screen_code(7, "张*", Colour.GREEN, NOW)
    as_poster = PREFIX + resident_code[len("HCZ1:") :]

    with pytest.raises(InvalidCode):
        read_venue_code(as_poster, verifier, NOW)


def test_an_expired_poster_says_a_new_one_is_needed(signing_key, verifier):
    text = issue_venue_code(
        signing_key, 4321, "610113", NOW, validity=timedelta(days=1)
    )

    with pytest.raises(ExpiredVenueCode) as raised:
        read_venue_code(text, verifier, NOW + timedelta(days=1))

    assert "needs a new poster" in str(raised.value)
    assert raised.value.code == "expired_venue_code"


def test_a_poster_of_a_revoked_key_is_refused(signing_key):
    text = issue_venue_code(signing_key, 4321, "610113", NOW)
    revoked = replace(signing_key.record, revoked_at=NOW + timedelta(hours=1))

    with pytest.raises(RevokedKeyCode):
        read_venue_code(text, Verifier([revoked]), NOW + timedelta(hours=2))


def test_a_venue_outside_the_key_s_region_gets_no_code(signing_key):
    with pytest.raises(InvalidVenue) as raised:
        issue_venue_code(signing_key, 4321, "310115", NOW)

    assert str(raised.value) == (
        "The venue region 310115 lies outside region 610100, whose key would sign"
        " its code."
    )


def test_a_forged_poster_is_refused_at_scan_time(world: World, signing_key, verifier):
    [resident] = world.residents(1)
    venue = world.venue("shop")
    other = world.venue("shop", "Next Door")
    with Session(world.engine) as session:
        genuine = venue_code_for(session, venue, signing_key, NOW - timedelta(days=5))
        neighbour = venue_code_for(session, other, signing_key, NOW - timedelta(days=5))
    forged = issue_venue_code(key("forger"), venue, "610113", NOW - timedelta(days=5))

    result = world.upload(
        [
            world.item(resident, venue, at(9, 9, 0), venue_code=genuine),
            world.item(resident, venue, at(9, 12, 0), venue_code=forged),
            world.item(
                resident, venue, at(9, 15, 0), venue_code=_tampered(genuine, 16)
            ),
            world.item(resident, venue, at(9, 18, 0), venue_code=neighbour),
        ],
        venue_keys=verifier,
    )

    assert result.accepted == 1
    assert [(r.index, r.code) for r in result.refused] == [
        (1, "unknown_key"),
        (2, "invalid_venue_code"),
        (3, "invalid_checkin"),
    ]
    assert world.count("checkins") == 1
