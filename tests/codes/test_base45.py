from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthcode.codes import base45


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"AB", "BB8"),
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),
        (b"\x00", "00"),
        (b"\xff", "U5"),
        (b"\xff\xff", "FGW"),
    ],
)
def test_known_answers(data: bytes, text: str) -> None:
    encoded = base45.encode(data)

    decoded = base45.decode(text)

    assert encoded == text
    assert decoded == data


@given(st.binary(max_size=300))
def test_round_trip(data: bytes) -> None:
    assert base45.decode(base45.encode(data)) == data


@pytest.mark.parametrize(
    "text",
    [
        "A",  # a single character left over
        "BB8A",
        "GGW",  # 16 + 16 * 45 + 32 * 2025 = 65536, one past two bytes
        "ZZZ",
        "V5",  # 31 + 5 * 45 = 256, one past a byte
        "bb8",  # lowercase is outside the alphabet
        "BB\n",
        "BB=",
        "BB８",  # a full-width digit
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        base45.decode(text)


def test_space_is_a_character_of_the_alphabet() -> None:
    decoded = base45.decode("%69 VD92EX0")

    assert decoded == b"Hello!!"
    with pytest.raises(ValueError):
        base45.decode("%69 VD92EX0 ")
