import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthcode.identity.errors import InvalidName
from healthcode.identity.names import (
    MAX_NAME_LENGTH,
    mask_name,
    normalize_name,
    search_key,
)

RARE_SURNAME = "\U00020164"  # 𠅤, CJK Unified Ideographs Extension B
RARE_NAME = RARE_SURNAME + "\u660e"  # 𠅤明
DOTTED_NAME = "阿依古丽\u00b7买买提"


def refusal(name) -> str:
    with pytest.raises(InvalidName) as caught:
        normalize_name(name)
    assert caught.value.code == "invalid_name"
    return str(caught.value)


# A name outside the Basic Multilingual Plane


def test_rare_surname_is_kept_as_one_code_point():
    stored = normalize_name(RARE_NAME)

    assert stored == RARE_NAME
    assert len(stored) == 2
    assert len(stored.encode("utf-16-le")) // 2 == 3


def test_rare_surname_masks_by_code_point():
    masked = mask_name(RARE_NAME)

    assert masked == RARE_SURNAME + "*"


def test_rare_surname_round_trips_through_utf8():
    stored = normalize_name(RARE_NAME)

    decoded = stored.encode("utf-8").decode("utf-8")

    assert decoded == RARE_NAME
    assert mask_name(decoded) == RARE_SURNAME + "*"


def test_rare_surname_is_found_by_search():
    stored_key = search_key(RARE_NAME)

    typed_key = search_key(" " + RARE_NAME + " ")

    assert stored_key == typed_key == RARE_NAME


def test_64_astral_characters_fit_the_limit():
    name = RARE_SURNAME * MAX_NAME_LENGTH

    stored = normalize_name(name)

    assert stored == name
    assert mask_name(name) == RARE_SURNAME + "*" * (MAX_NAME_LENGTH - 1)


# A name with a middle dot


def test_dotted_name_is_stored_in_nfc_unchanged():
    stored = normalize_name(DOTTED_NAME)

    assert stored == DOTTED_NAME
    assert unicodedata.is_normalized("NFC", stored)


def test_dotted_name_masks_around_the_dot():
    masked = mask_name(DOTTED_NAME)

    assert masked == "阿***\u00b7***"


@pytest.mark.parametrize(
    "dot",
    [
        "\u00b7",
        "\u0387",
        "\u16eb",
        "\u2022",
        "\u2027",
        "\u2219",
        "\u22c5",
        "\u2e31",
        "\u2e33",
        "\u30fb",
        "\ua78f",
        "\uff0e",
        "\uff65",
    ],
)
def test_middle_dot_look_alikes_become_u00b7(dot):
    stored = normalize_name("阿依古丽" + dot + "买买提")

    assert stored == DOTTED_NAME


@pytest.mark.parametrize(
    "typed", ["阿依古丽 · 买买提", "阿依古丽 ・买买提", "阿依古丽\u3000•\u3000买买提"]
)
def test_spaces_around_the_dot_are_removed(typed):
    stored = normalize_name(typed)

    assert stored == DOTTED_NAME


# Normal form and whitespace


def test_decomposed_latin_name_is_composed():
    stored = normalize_name("Zoe\u0308 Saldan\u0303a")

    assert stored == "Zo\u00eb Salda\u00f1a"
    assert mask_name("Zoe\u0308 Saldan\u0303a") == "Z** S******"


def test_compatibility_ideograph_becomes_the_unified_one():
    stored = normalize_name("\uf900\u660e")

    assert stored == "\u8c48\u660e"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("  ZHANG   San ", "ZHANG San"),
        ("ZHANG\u3000San", "ZHANG San"),
        ("ZHANG\u00a0San", "ZHANG San"),
        ("ZHANG\tSan\n", "ZHANG San"),
        ("\u3000张三\u3000", "张三"),
    ],
)
def test_whitespace_is_trimmed_and_collapsed(typed, stored):
    result = normalize_name(typed)

    assert result == stored


# Refusals


@pytest.mark.parametrize("name", ["", "   ", "\u3000", "\n"])
def test_empty_name_is_refused(name):
    message = refusal(name)

    assert message == "The name is empty."


@pytest.mark.parametrize(
    "name",
    [
        "张\x00三",
        "张\x1b三",
        "张\x7f三",
        "张\x1c三",
        "张\x9b三",
        "\u200b张三",
        "张\u200d三",
        "\u202e张三",
        "\ufeff张三",
        "张三\u2066",
    ],
)
def test_control_and_formatting_characters_are_refused(name):
    message = refusal(name)

    assert message == "The name holds a control or formatting character."


@pytest.mark.parametrize("name", ["\ud842", "张\udc64三", "张三\udfff"])
def test_unpaired_surrogate_is_refused(name):
    message = refusal(name)

    assert message == "The name holds an unpaired surrogate."


def test_name_of_65_code_points_is_refused():
    message = refusal("张" * (MAX_NAME_LENGTH + 1))

    assert message == "The name is longer than 64 characters."


@pytest.mark.parametrize("name", ["\u00b7", " \u30fb ", "\u00b7\u00b7"])
def test_name_of_only_dots_is_refused(name):
    message = refusal(name)

    assert message == "The name holds no letters, only dots."


@pytest.mark.parametrize("name", [None, 12, b"\xe5\xbc\xa0\xe4\xb8\x89", ["张三"]])
def test_name_that_is_not_text_is_refused(name):
    message = refusal(name)

    assert message == "The name must be given as text."


def test_refusal_never_repeats_the_name():
    name = "ZHANGSAN\u202e" + "X" * 10

    message = refusal(name)

    assert "ZHANGSAN" not in message


# Masking


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("王", "*"),
        ("ZHANG San", "Z**** S**"),
        ("Zhang San Feng", "Z**** S** F***"),
        ("Madonna", "M******"),
        ("A B", "* *"),
        ("ZHANG S", "Z**** *"),
        ("欧阳 娜娜", "欧* **"),
        ("Jean\u00b7Paul", "J***\u00b7****"),
        ("Иван Петров", "И*** П*****"),
    ],
)
def test_mask_keeps_only_first_letters(name, masked):
    result = mask_name(name)

    assert result == masked


def test_mask_normalises_first():
    masked = mask_name("  阿依古丽 ・ 买买提 ")

    assert masked == "阿***\u00b7***"


# Search key


@pytest.mark.parametrize(
    "typed", ["Zhang San", "ZHANG SAN", "zhang·san", "Zhang\u30fbSan", " zhangsan "]
)
def test_search_key_ignores_case_spaces_and_dots(typed):
    key = search_key(typed)

    assert key == "zhangsan"


def test_search_key_of_dotted_name():
    key = search_key("阿依古丽 • 买买提")

    assert key == "阿依古丽买买提"


def test_search_key_case_folds_beyond_lower_case():
    key = search_key("STRASSE")

    assert key == search_key("Straße") == "strasse"


def test_search_key_is_nfc_after_case_folding():
    # U+0130 folds to "i" plus a combining dot above, which has no
    # precomposed form, so the key is NFC yet two code points long.
    key = search_key("\u0130stanbul")

    assert key == "i\u0307stanbul"
    assert unicodedata.is_normalized("NFC", key)


# Properties

_NAME_TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs")),
    min_size=1,
    max_size=80,
)


def _stored_or_none(text: str) -> str | None:
    try:
        return normalize_name(text)
    except InvalidName:
        return None


@given(_NAME_TEXT)
def test_mask_has_the_length_of_the_stored_name(text):
    stored = _stored_or_none(text)

    if stored is None:
        return
    masked = mask_name(text)

    assert len(masked) == len(stored)


@given(_NAME_TEXT)
def test_normalising_twice_changes_nothing(text):
    stored = _stored_or_none(text)

    if stored is None:
        return

    assert normalize_name(stored) == stored
    assert unicodedata.is_normalized("NFC", stored)


@given(_NAME_TEXT)
def test_mask_shows_at_most_one_character_per_word(text):
    stored = _stored_or_none(text)

    if stored is None:
        return
    masked = mask_name(stored)

    for word in masked.split(" "):
        shown = [char for char in word if char not in "*\u00b7"]
        assert len(shown) <= 1
