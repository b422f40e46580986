from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from healthcode.identity.documents import (
    Document,
    DocumentKind,
    mod11_2_check,
    parse_document,
)
from healthcode.identity.errors import InvalidDocument

TODAY = date(2026, 3, 2)

# The sample number from GB 11643-1999, and its 15-digit form.
SAMPLE = "11010519491231002X"
SAMPLE_LEGACY = "110105491231002"


def refusal(kind: str, number: str, country: str = "") -> str:
    with pytest.raises(InvalidDocument) as caught:
        parse_document(kind, number, country, today=TODAY)
    message = str(caught.value)
    assert caught.value.code == "invalid_document"
    # No refusal may repeat the number, whole or normalised.
    stripped = number.replace(" ", "").upper()
    if len(stripped) >= 5:
        assert stripped not in message.upper()
    return message


# ISO 7064 MOD 11-2


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("11010519491231002", "X"),
        ("61011319750615021", "0"),
        ("61012119900101001", "9"),
        ("61011320260302001", "6"),
        ("81000019900101001", "9"),
        ("91184019790101002", "2"),
        ("00000000000000000", "1"),
    ],
)
def test_mod11_2_known_answers(body, check):
    result = mod11_2_check(body)

    assert result == check


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_mod11_2_agrees_with_stdnum(body):
    ours = mod11_2_check(body)

    # stdnum computes the check of a number that already has one appended.
    assert ours == ric.calc_check_digit(body + "0")


@pytest.mark.parametrize(
    "body",
    [
        "1101051949123100",
        "110105194912310021",
        "1101051949123100X",
        "",
        None,
        17,
        "１１０１０５１９４９１２３１００２",
    ],
)
def test_mod11_2_refuses_anything_but_17_ascii_digits(body):
    with pytest.raises(ValueError, match="exactly 17 ASCII digits"):
        mod11_2_check(body)


# Mainland identity card


def test_mainland_sample_number_is_read_in_full():
    document = parse_document("cn-id", SAMPLE, today=TODAY)

    assert document == Document(
        kind=DocumentKind.CN_ID,
        number=SAMPLE,
        birth_date=date(1949, 12, 31),
        region_code="110105",
        legacy=False,
    )
    assert document.key == ("cn-id", "", SAMPLE)


def test_lowercase_x_check_character_is_accepted_and_stored_upper_case():
    document = parse_document("cn-id", "61011319900307012x", today=TODAY)

    assert document.number == "61011319900307012X"
    assert document.birth_date == date(1990, 3, 7)


@pytest.mark.parametrize(
    "typed",
    [
        " 11010519491231002X ",
        "110105 19491231 002X",
        "1101 0519 4912 3100 2x",
        "\u3000１１０１０５１９４９１２３１００２ｘ",
        "110105\t19491231\n002X",
    ],
)
def test_spaces_and_full_width_characters_give_the_same_number(typed):
    document = parse_document(DocumentKind.CN_ID, typed, today=TODAY)

    assert document.number == SAMPLE


def test_legacy_15_digit_number_converts_to_the_18_digit_form():
    document = parse_document("cn-id", SAMPLE_LEGACY, today=TODAY)

    assert document.number == SAMPLE
    assert document.legacy is True
    assert document.birth_date == date(1949, 12, 31)
    assert document.key == parse_document("cn-id", SAMPLE, today=TODAY).key


def test_legacy_number_whose_computed_check_is_x():
    document = parse_document("cn-id", "610113900307012", today=TODAY)

    assert document.number == "61011319900307012X"
    assert document.region_code == "610113"


def test_wrong_check_character_is_refused():
    message = refusal("cn-id", "110105194912310021")

    assert message == "The mainland identity number has a wrong check character."


@pytest.mark.parametrize("number", ["610113194902300010", "610113194913010019"])
def test_impossible_birth_date_is_refused(number):
    assert mod11_2_check(number[:17]) == number[17]

    message = refusal("cn-id", number)

    assert message == (
        "The birth date in the mainland identity number is not a real date."
    )


def test_birth_date_after_today_is_refused():
    message = refusal("cn-id", "610113202603030011")

    assert message == "The birth date in the mainland identity number is in the future."


def test_birth_today_is_accepted():
    document = parse_document("cn-id", "610113202603020016", today=TODAY)

    assert document.birth_date == TODAY


def test_birth_before_1890_is_refused_and_1890_accepted():
    message = refusal("cn-id", "610113188912310019")
    document = parse_document("cn-id", "61011318900101001X", today=TODAY)

    assert message == "The birth date in the mainland identity number is before 1890."
    assert document.birth_date == date(1890, 1, 1)


def test_unknown_region_is_refused():
    message = refusal("cn-id", "610199199001010019")

    assert message == (
        "The region code in the mainland identity number is not a GB/T 2260 "
        "division in use at any time since the birth year."
    )


def test_region_created_after_the_birth_is_accepted():
    # Yanta district (610113) dates from 1983; people born there earlier got
    # its code with their first card.
    document = parse_document("cn-id", "610113197506150210", today=TODAY)

    assert document.region_code == "610113"


def test_region_abolished_before_the_birth_is_refused():
    # Chang'an county (610121) became a district with a new code in 2002.
    message = refusal("cn-id", "610121200501010010")
    document = parse_document("cn-id", "610121199001010019", today=TODAY)

    assert "region code" in message
    assert document.region_code == "610121"


def test_residence_permit_number_given_as_a_mainland_card_is_refused():
    message = refusal("cn-id", "810000199001010019")

    assert message == (
        "The mainland identity number has the region code of a Hong Kong, Macao "
        "and Taiwan residence permit; register it as that document."
    )


def test_foreign_card_number_given_as_a_mainland_card_is_refused():
    message = refusal("cn-id", "911840197901010022")

    assert "foreign permanent residence card" in message


@pytest.mark.parametrize(
    "number",
    [
        "1101051949123100",
        "11010519491231002",
        "11010519491231002X1",
        "11010519491",
        "1",
    ],
)
def test_mainland_number_of_wrong_length_is_refused(number):
    message = refusal("cn-id", number)

    assert message == (
        "The mainland identity number must have 18 characters, or 15 in the old form."
    )


@pytest.mark.parametrize(
    "number", ["X1010519491231002X", "1101051949123100XX", "11010519491231002A"]
)
def test_mainland_number_with_letters_in_the_body_is_refused(number):
    message = refusal("cn-id", number)

    assert message == (
        "The mainland identity number must be 17 digits followed by a digit or X."
    )


def test_legacy_number_with_a_letter_is_refused():
    message = refusal("cn-id", "11010549123100X")

    assert (
        message == "The old 15-character mainland identity number must be all digits."
    )


@pytest.mark.parametrize(
    "number", ["110105-19491231-002X", "11010519491231002X.", "１１０１٠٥"]
)
def test_number_with_punctuation_or_foreign_digits_is_refused(number):
    message = refusal("cn-id", number)

    assert message == "The mainland identity number may hold only letters and digits."


@pytest.mark.parametrize("number", ["", "   ", "\u3000"])
def test_empty_number_is_refused(number):
    message = refusal("cn-id", number)

    assert message == "The mainland identity number is empty."


@pytest.mark.parametrize("number", [None, 11010519491231002, b"11010519491231002X"])
def test_number_that_is_not_text_is_refused(number):
    with pytest.raises(InvalidDocument) as caught:
        parse_document("cn-id", number, today=TODAY)

    assert str(caught.value) == "The mainland identity number must be given as text."


@pytest.mark.parametrize("kind", ["id-card", "CN-ID", "", None, 3])
def test_unknown_document_kind_is_refused(kind):
    with pytest.raises(InvalidDocument) as caught:
        parse_document(kind, SAMPLE, today=TODAY)

    assert str(caught.value) == "The document kind is not one we accept."


def test_country_with_a_document_other_than_a_passport_is_refused():
    message = refusal("cn-id", SAMPLE, "CHN")

    assert message == "Only a passport is given with an issuing country."


@pytest.mark.parametrize("today", [datetime(2026, 3, 2, 12), "2026-03-02", None])
def test_today_must_be_a_date(today):
    with pytest.raises(TypeError):
        parse_document("cn-id", SAMPLE, today=today)


# Foreign permanent residence card


def test_foreign_card_2017_form_carries_the_birth_date():
    document = parse_document("foreign-permanent", "911840197901010022", today=TODAY)

    assert document.number == "911840197901010022"
    assert document.birth_date == date(1979, 1, 1)
    assert document.legacy is False


def test_foreign_card_old_form_is_upper_cased_and_marked_legacy():
    document = parse_document("foreign-permanent", "usa 310078120315", today=TODAY)

    assert document.number == "USA310078120315"
    assert document.legacy is True
    assert document.birth_date is None


def test_foreign_card_with_wrong_check_character_is_refused():
    message = refusal("foreign-permanent", "911840197901010023")

    assert message == (
        "The foreign permanent residence card number has a wrong check character."
    )


def test_foreign_card_with_birth_after_today_is_refused():
    message = refusal("foreign-permanent", "911840202603030010")

    assert message == (
        "The birth date in the foreign permanent residence card number is in "
        "the future."
    )


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (
            "811840197901010022",
            "The foreign permanent residence card number must start with 9 and be "
            "17 digits followed by a digit or X.",
        ),
        (
            "US3310078120315",
            "The old 15-character foreign permanent residence card number must be "
            "three letters followed by 12 digits.",
        ),
        (
            "91184019790101002",
            "The foreign permanent residence card number must have 18 characters, "
            "or 15 in the old form.",
        ),
        (
            "USA31007812031",
            "The foreign permanent residence card number must have 18 characters, "
            "or 15 in the old form.",
        ),
    ],
)
def test_foreign_card_of_wrong_layout_is_refused(number, message):
    assert refusal("foreign-permanent", number) == message


# Passport


def test_passport_is_keyed_with_its_country():
    document = parse_document("passport", "c01x00t47", " deu ", today=TODAY)

    assert document.key == ("passport", "DEU", "C01X00T47")
    assert document.birth_date is None


@pytest.mark.parametrize("country", ["XXA", "UNO", "XXX", "TWN", "HKG"])
def test_passport_from_special_and_territory_issuers_is_accepted(country):
    document = parse_document("passport", "E12345678", country, today=TODAY)

    assert document.country == country


@pytest.mark.parametrize(
    ("country", "message"),
    [
        ("", "A passport must be given with its issuing country."),
        ("D", "The passport's issuing country must be a three-letter ISO 3166-1 code."),
        (
            "DE",
            "The passport's issuing country must be a three-letter ISO 3166-1 code.",
        ),
        (
            "DEU1",
            "The passport's issuing country must be a three-letter ISO 3166-1 code.",
        ),
        ("XYZ", "The passport's issuing country is not an ISO 3166-1 country code."),
        ("EUE", "The passport's issuing country is not an ISO 3166-1 country code."),
    ],
)
def test_passport_with_a_bad_country_is_refused(country, message):
    assert refusal("passport", "E12345678", country) == message


def test_passport_country_that_is_not_text_is_refused():
    with pytest.raises(InvalidDocument) as caught:
        parse_document("passport", "E12345678", 276, today=TODAY)

    assert str(caught.value) == "The issuing country must be given as text."


@pytest.mark.parametrize("number", ["E1234", "E" + "1" * 16])
def test_passport_numbers_of_5_and_17_characters_are_accepted(number):
    document = parse_document("passport", number, "FRA", today=TODAY)

    assert document.number == number


@pytest.mark.parametrize("number", ["E123", "E" + "1" * 17])
def test_passport_number_of_wrong_length_is_refused(number):
    message = refusal("passport", number, "FRA")

    assert message == "The passport number must have 5 to 17 letters and digits."


@pytest.mark.parametrize("country", ["\u00dfA", "D\u0130U"])
def test_passport_country_with_letters_that_upper_case_to_ascii_is_refused(country):
    message = refusal("passport", "E12345678", country)

    assert message == (
        "The passport's issuing country must be a three-letter ISO 3166-1 code."
    )


def test_passport_number_with_letters_that_upper_case_to_ascii_is_refused():
    message = refusal("passport", "E\u00df12345", "FRA")

    assert message == "The passport number may hold only letters and digits."


def test_passport_number_with_punctuation_is_refused():
    message = refusal("passport", "E12-345678", "FRA")

    assert message == "The passport number may hold only letters and digits."


# Hong Kong / Macao and Taiwan permits


@pytest.mark.parametrize(
    ("typed", "number", "legacy"),
    [
        ("H12345678", "H12345678", False),
        ("m 1234 5678", "M12345678", False),
        ("H1234567801", "H1234567801", True),
    ],
)
def test_hong_kong_macao_permit_forms_are_accepted(typed, number, legacy):
    document = parse_document("hk-mo-permit", typed, today=TODAY)

    assert (document.number, document.legacy) == (number, legacy)


@pytest.mark.parametrize(
    "number", ["H1234567", "H123456789", "A12345678", "12345678", "HH12345678"]
)
def test_hong_kong_macao_permit_of_wrong_layout_is_refused(number):
    message = refusal("hk-mo-permit", number)

    assert message == (
        "The Hong Kong and Macao travel permit number must be H or M followed "
        "by 8 digits (10 in the older form)."
    )


@pytest.mark.parametrize(
    ("typed", "number", "legacy"),
    [
        ("12345678", "12345678", False),
        ("1234567801", "1234567801", True),
        ("12345678b1", "12345678B1", True),
    ],
)
def test_taiwan_permit_forms_are_accepted(typed, number, legacy):
    document = parse_document("tw-permit", typed, today=TODAY)

    assert (document.number, document.legacy) == (number, legacy)


@pytest.mark.parametrize(
    "number", ["1234567", "123456789", "A1234567", "12345678901", "A123456789"]
)
def test_taiwan_permit_of_wrong_layout_is_refused(number):
    message = refusal("tw-permit", number)

    assert message == (
        "The Taiwan travel permit number must be 8 digits (10 characters in the "
        "older form)."
    )


# Residence permit for Hong Kong, Macao and Taiwan residents


@pytest.mark.parametrize(
    ("number", "region"),
    [
        ("810000199001010019", "810000"),
        ("820000198505120024", "820000"),
        ("83000019700101003x", "830000"),
    ],
)
def test_residence_permit_is_accepted_with_its_region(number, region):
    document = parse_document("hmt-residence", number, today=TODAY)

    assert document.number == number.upper()
    assert document.region_code == region
    assert document.birth_date is not None


def test_residence_permit_with_wrong_check_character_is_refused():
    message = refusal("hmt-residence", "810000199001010010")

    assert message == (
        "The Hong Kong, Macao and Taiwan residence permit number has a wrong "
        "check character."
    )


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (
            "840000199001010015",
            "The Hong Kong, Macao and Taiwan residence permit number must start "
            "with 810000, 820000 or 830000 and be 17 digits followed by a digit "
            "or X.",
        ),
        (
            SAMPLE,
            "The Hong Kong, Macao and Taiwan residence permit number must start "
            "with 810000, 820000 or 830000 and be 17 digits followed by a digit "
            "or X.",
        ),
        (
            "81000019900101001",
            "The Hong Kong, Macao and Taiwan residence permit number must have 18 "
            "characters.",
        ),
    ],
)
def test_residence_permit_of_wrong_layout_is_refused(number, message):
    assert refusal("hmt-residence", number) == message


def test_residence_permit_with_impossible_birth_date_is_refused():
    number = "81000019900231001"
    number += mod11_2_check(number)

    message = refusal("hmt-residence", number)

    assert message == (
        "The birth date in the Hong Kong, Macao and Taiwan residence permit "
        "number is not a real date."
    )


# Masking and representation


@pytest.mark.parametrize(
    ("kind", "number", "country", "masked"),
    [
        ("cn-id", SAMPLE, "", "1101**********002X"),
        ("passport", "E1234567", "FRA", "E1****67"),
        ("passport", "E1234", "FRA", "E***4"),
        ("hk-mo-permit", "H12345678", "", "H1*****78"),
        ("foreign-permanent", "USA310078120315", "", "USA*********315"),
    ],
)
def test_masked_number_hides_at_least_half(kind, number, country, masked):
    document = parse_document(kind, number, country, today=TODAY)

    result = document.masked()

    assert result == masked
    assert result.count("*") >= len(number) / 2


def test_repr_never_shows_the_number():
    document = parse_document("cn-id", SAMPLE, today=TODAY)

    text = repr(document)

    assert SAMPLE not in text
    assert "1101**********002X" in text
