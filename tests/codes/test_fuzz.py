"""The verifiers never crash and never raise anything but their own errors."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthcode.codes import base45
from healthcode.codes.errors import (
    CodeError,
    InvalidCode,
    InvalidStatusList,
    InvalidTrustList,
    StaleStatusList,
)
from healthcode.codes.format import PREFIX, Colour, Issuer
from healthcode.codes.statuslist import build_status_list, load_status_list
from healthcode.codes.trust import Verifier, load_trust_list, sign_trust_list

from .support import NOW, code_key, seed, trust_key

KEY = code_key()
VERIFIER = Verifier([KEY.record])
ISSUER = Issuer(KEY, seed("subject"))
SCREEN = ISSUER.screen_code(42, "\U00020164**", Colour.GREEN, NOW)
PAPER = ISSUER.paper_code(42, "张**", 1234, NOW)


def outcome(text: object) -> str:
    try:
        VERIFIER.verify(text, NOW)
    except InvalidCode as exc:
        return exc.code
    return "valid"


@given(st.text(max_size=400))
def test_any_text_is_refused_with_invalid_code(text: str) -> None:
    assert outcome(text) != "valid"


@given(st.text(alphabet=base45.ALPHABET, max_size=400))
def test_any_base45_text_after_the_prefix_is_refused(text: str) -> None:
    assert outcome(PREFIX + text) != "valid"


@given(st.binary(min_size=90, max_size=200))
@settings(max_examples=300)
def test_any_bytes_after_the_prefix_are_refused(data: bytes) -> None:
    assert outcome(PREFIX + base45.encode(data)) != "valid"


@given(st.binary(min_size=0, max_size=120))
def test_bytes_under_a_known_key_id_are_refused(data: bytes) -> None:
    # Keep a real header, so that parsing gets past the key look-up and the
    # signature check meets arbitrary tails.
    raw = base45.decode(SCREEN[len(PREFIX) :])
    assert outcome(PREFIX + base45.encode(raw[:33] + data)) == "invalid_code"


@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_values_that_are_not_text_are_refused(value: object) -> None:
    assert outcome(value) == "invalid_code"


def _mutations(text: str, rng: random.Random) -> str:
    alphabet = base45.ALPHABET
    choice = rng.randrange(8)
    position = rng.randrange(len(text))
    if choice == 0:
        return text[:position] + rng.choice(alphabet) + text[position + 1 :]
    if choice == 1:
        return text[:position] + rng.choice(alphabet) + text[position:]
    if choice == 2:
        return text[:position] + text[position + 1 :]
    if choice == 3:
        return text[:position]
    if choice == 4:
        other = rng.randrange(len(text))
        chars = list(text)
        chars[position], chars[other] = chars[other], chars[position]
        return "".join(chars)
    if choice == 5:
        raw = bytearray(base45.decode(text[len(PREFIX) :]))
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        return PREFIX + base45.encode(bytes(raw))
    if choice == 6:
        return text[:position] + chr(rng.randrange(0x20, 0x3000)) + text[position:]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 200)))


@pytest.mark.slow
def test_hundred_thousand_mutations_are_all_refused() -> None:
    rng = random.Random(20200211)
    outcomes: Counter[str] = Counter()

    for number in range(100_000):
        original = SCREEN if number % 2 else PAPER
        mutated = _mutations(original, rng)
        result = outcome(mutated)
        if mutated == original:
            assert result == "valid"
            continue
        outcomes[result] += 1

    assert "valid" not in outcomes
    assert sum(outcomes.values()) > 99_000
    assert set(outcomes) <= {"invalid_code", "unknown_key"}


def _fuzz_bytes(
    document: bytes, load: Callable[[bytes], object], own: tuple[type, ...], rounds: int
) -> Counter[str]:
    rng = random.Random(len(document))
    seen: Counter[str] = Counter()
    for _ in range(rounds):
        altered = bytearray(document)
        for _ in range(rng.randrange(1, 4)):
            altered[rng.randrange(len(altered))] = rng.randrange(256)
        if rng.random() < 0.1:
            altered = altered[: rng.randrange(len(altered))]
        if bytes(altered) == document:
            continue
        try:
            load(bytes(altered))
        except own as exc:
            assert isinstance(exc, CodeError)
            seen[type(exc).__name__] += 1
        else:
            seen["accepted"] += 1
    return seen


def test_damaged_status_lists_raise_only_status_list_errors() -> None:
    document = build_status_list({1: Colour.RED, 50: Colour.GREY}, 100, KEY, NOW)

    seen = _fuzz_bytes(
        document,
        lambda data: load_status_list(data, VERIFIER, NOW + timedelta(hours=1)),
        (InvalidStatusList, StaleStatusList),
        3000,
    )

    assert "accepted" not in seen


def test_damaged_trust_lists_raise_only_trust_list_errors() -> None:
    anchor = trust_key()
    document = sign_trust_list([KEY.record], anchor, NOW)

    seen = _fuzz_bytes(
        document,
        lambda data: load_trust_list(data, [anchor.record], NOW),
        (InvalidTrustList,),
        3000,
    )

    # A change inside the JSON's white space or its base64 padding leaves
    # the signed payload intact, and such a list is still the signed one.
    assert seen["InvalidTrustList"] > 2500
