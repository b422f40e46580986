"""Known-answer vectors: fixed keys and clock in, committed bytes and text out.

The vector files are written by ``vectors/generate.py``; these tests check
today's code against them, and read each body a second time with
:mod:`struct` alone, from the layout that ``docs/code-format.md`` gives.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from healthcode.codes import base45, qr
from healthcode.codes.errors import InvalidCode
from healthcode.codes.format import Colour, Issuer, SubjectSealer
from healthcode.codes.keys import SigningKey
from healthcode.codes.statuslist import load_status_list
from healthcode.codes.trust import Verifier

VECTORS = Path(__file__).resolve().parent / "vectors"
CODE_VECTORS = sorted(VECTORS.glob("code-*.json"))
WIRE_COLOURS = {1: "green", 2: "yellow", 3: "red", 4: "grey"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def signing_key(inputs: dict[str, Any]) -> SigningKey:
    return SigningKey.from_seed(
        bytes.fromhex(inputs["signing_key_seed"]),
        inputs["region"],
        when(inputs["key_valid_from"]),
    )


def test_there_are_vectors_for_both_purposes() -> None:
    purposes = {load(path)["inputs"]["purpose"] for path in CODE_VECTORS}

    assert len(CODE_VECTORS) >= 5
    assert purposes == {"screen", "paper"}


@pytest.mark.parametrize("path", CODE_VECTORS, ids=lambda p: p.stem)
def test_issuing_the_inputs_gives_the_committed_text(path: Path) -> None:
    vector = load(path)
    inputs, expected = vector["inputs"], vector["expected"]
    nonce = bytes.fromhex(inputs["nonce"])
    issuer = Issuer(
        signing_key(inputs),
        bytes.fromhex(inputs["subject_secret"]),
        screen_ttl=timedelta(seconds=inputs["screen_ttl_seconds"]),
        paper_ttl=timedelta(seconds=inputs["paper_ttl_seconds"]),
        daily_expiry=time.fromisoformat(inputs["daily_expiry"]),
        zone=ZoneInfo(inputs["zone"]),
        random_bytes=lambda size: nonce[:size],
    )
    issued_at = when(inputs["issued_at"])

    if inputs["purpose"] == "screen":
        text = issuer.screen_code(
            inputs["resident_id"],
            inputs["masked_name"],
            Colour(inputs["colour"]),
            issued_at,
        )
    else:
        text = issuer.paper_code(
            inputs["resident_id"],
            inputs["masked_name"],
            inputs["status_index"],
            issued_at,
        )

    assert text == expected["text"]
    assert text == "HCZ1:" + base45.encode(
        bytes.fromhex(expected["body"]) + bytes.fromhex(expected["signature"])
    )
    assert list(qr.symbol_size(text)) == [
        expected["qr_version_m"],
        expected["qr_modules"],
    ]


@pytest.mark.parametrize("path", CODE_VECTORS, ids=lambda p: p.stem)
def test_body_read_by_hand_matches_the_inputs(path: Path) -> None:
    vector = load(path)
    inputs, expected = vector["inputs"], vector["expected"]
    body = bytes.fromhex(expected["body"])

    version, kind, region, key_id, issued, until, reference = struct.unpack_from(
        ">BB3s4sII16s", body
    )
    rest = body[33:]
    if kind >> 4 == 2:
        (index,) = struct.unpack_from(">I", rest)
        rest = rest[4:]
    else:
        index = None

    assert version == 1
    assert kind >> 4 == {"screen": 1, "paper": 2}[inputs["purpose"]]
    assert WIRE_COLOURS.get(kind & 0x0F) == inputs["colour"]
    assert index == inputs["status_index"]
    assert int.from_bytes(region, "big") == int(inputs["region"])
    assert key_id.hex() == expected["key_id"]
    assert issued == int(when(inputs["issued_at"]).timestamp())
    assert rest.decode("utf-8") == inputs["masked_name"]
    assert until > issued
    sealer = SubjectSealer(bytes.fromhex(inputs["subject_secret"]))
    assert sealer.open(reference) == inputs["resident_id"]
    public_key = Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(expected["public_key"])
    )
    public_key.verify(bytes.fromhex(expected["signature"]), b"HCZ1:" + body)


@pytest.mark.parametrize("path", CODE_VECTORS, ids=lambda p: p.stem)
def test_checks_give_the_committed_results(path: Path) -> None:
    vector = load(path)
    verifier = Verifier([signing_key(vector["inputs"]).record])

    results = []
    for check in vector["checks"]:
        try:
            verifier.verify(vector["expected"]["text"], when(check["at"]))
        except InvalidCode as exc:
            results.append(exc.code)
        else:
            results.append("valid")

    assert results == [check["result"] for check in vector["checks"]]


def test_screen_code_before_midnight_is_cut_at_midnight() -> None:
    vector = load(VECTORS / "code-screen-red-before-midnight.json")

    until = struct.unpack_from(">I", bytes.fromhex(vector["expected"]["body"]), 13)[0]

    assert datetime.fromtimestamp(until, UTC) == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)


def test_c12_vector_holds_spaces_and_a_percent_escape_lookalike() -> None:
    vector = load(VECTORS / "code-screen-spaces-and-percent.json")
    text = vector["expected"]["text"]
    verifier = Verifier([signing_key(vector["inputs"]).record])
    at = when(vector["inputs"]["issued_at"])

    code = verifier.verify(text, at)

    assert " " in text
    assert unquote(text) != text
    assert code.colour is Colour.YELLOW
    for altered in (unquote(text), text.replace(" ", ""), text.replace(" ", "%20")):
        with pytest.raises(InvalidCode):
            verifier.verify(altered, at)


def test_status_list_vector() -> None:
    expectation = load(VECTORS / "statuslist-310000.json")
    document = (VECTORS / "statuslist-310000.bin").read_bytes()
    key = SigningKey.from_seed(
        bytes.fromhex(expectation["signing_key_seed"]),
        "310000",
        when(expectation["key_valid_from"]),
    )
    at = when(expectation["issued_at"])

    status_list = load_status_list(document, Verifier([key.record]), at)

    assert len(document) == expectation["size"]
    assert status_list.index_space == expectation["index_space"]
    assert status_list.valid_until == when(expectation["valid_until"])
    for index, colour in expectation["colours"].items():
        assert status_list.colour_of(int(index)) is Colour(colour)
    for index in expectation["green_samples"]:
        assert status_list.colour_of(index) is Colour.GREEN
    assert document[:4] == b"HCZS"
    assert document[4] == 1
