"""The identity-number detector: whole numbers found, look-alikes left alone."""

from __future__ import annotations

import random

import pytest

from healthcode.identity.documents import mod11_2_check
from healthcode.privacy.scan import (
    find_identity_numbers,
    looks_like_identity_number,
    mask_number,
)


def _number(body: str) -> str:
    return body + mod11_2_check(body)


VALID = _number("61011319900101123")  # Yanta district, born 1990-01-01
ENDS_IN_X = "61011319550202121X"


@pytest.mark.parametrize("number", [VALID, ENDS_IN_X, ENDS_IN_X.lower()])
def test_a_whole_number_is_found(number: str) -> None:
    text = f'{{"event": "imported", "doc": "{number}", "line": 3}}'

    found = find_identity_numbers(text)

    assert found == [number]


def test_numbers_are_found_in_order_and_next_to_punctuation() -> None:
    text = f"PS-{VALID},{ENDS_IN_X}."

    found = find_identity_numbers(text)

    assert found == [VALID, ENDS_IN_X]


@pytest.mark.parametrize(
    "text",
    [
        VALID[:17] + str((int(VALID[17]) + 1) % 10)
        if VALID[17] != "X"
        else VALID[:17] + "0",
        "00" + VALID[2:],  # no province starts with 00
        "991131" + VALID[6:],  # nor with 99
        "610113" + "19901301" + VALID[14:],  # month 13
        "610113" + "18001231" + VALID[14:],  # before any card holder was born
    ],
)
def test_a_number_with_a_wrong_part_is_not_an_identity_number(text: str) -> None:
    found = looks_like_identity_number(text)

    assert found is False


def test_runs_inside_longer_numbers_and_digests_are_not_taken() -> None:
    digest = "ab" + VALID + "cd"
    longer = "9" + VALID
    text = f"{digest} {longer} {VALID}0 id{VALID}"

    found = find_identity_numbers(text)

    assert found == []


def test_timestamps_ids_and_hashes_of_a_log_line_hold_no_number() -> None:
    line = (
        '{"event": "recolored_all", "timestamp": "2026-03-10T04:00:00.123456Z",'
        ' "request_id": "3f9a0c1e5b7d2a46", "ns": 1773115200123456789,'
        ' "hash": "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"}'
    )

    found = find_identity_numbers(line)

    assert found == []


def test_random_digit_runs_almost_never_pass() -> None:
    # The check character alone lets one random run in eleven through; the
    # region and the birth date together keep out nearly all of those.
    rng = random.Random(11)
    runs = [f"{rng.randrange(10**18):018d}" for _ in range(100_000)]

    check_only = [run for run in runs if mod11_2_check(run[:17]) == run[17]]
    passed = [run for run in runs if looks_like_identity_number(run)]

    assert 8_000 < len(check_only) < 10_200
    assert len(passed) <= 10


def test_a_masked_number_keeps_two_characters_at_each_end() -> None:
    masked = mask_number(ENDS_IN_X)

    assert masked == "61" + "*" * 14 + "1X"
