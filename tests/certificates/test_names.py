"""Holder names and dates of birth: ICAO 9303 forms, order, scripts, partial dates."""

from __future__ import annotations

import inspect
from datetime import date

import pytest

from healthcode.certificates import errors
from healthcode.certificates.names import (
    CertificateName,
    DateOfBirth,
    holder_matches,
    name_matches,
    standardised,
)
from healthcode.errors import HealthcodeError

GABRIELE = CertificateName(
    family="Musterfrau-Gößinger",
    given="Gabriele",
    family_standardised="MUSTERFRAU<GOESSINGER",
    given_standardised="GABRIELE",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Musterfrau-Gößinger", "MUSTERFRAU<GOESSINGER"),
        ("Rogaliński-Król", "ROGALINSKI<KROL"),
        ("José Carlos", "JOSE<CARLOS"),
        ("O'Brien", "OBRIEN"),
        ("Ærøskøbing", "AEROESKOEBING"),
        ("Þórsdóttir", "THORSDOTTIR"),
        ("Щербакова", "SHCHERBAKOVA"),
        ("Юлия", "IULIIA"),
        ("张三", "ZHANGSAN"),
        ("阿依古丽·买买提", "AYIGULI<MAIMAITI"),
    ],
)
def test_standardised_forms(text: str, expected: str) -> None:
    assert standardised(text) == expected


@pytest.mark.parametrize(
    "registered",
    [
        "Gabriele Musterfrau-Gößinger",
        "Musterfrau-Gößinger Gabriele",
        "MUSTERFRAU GOESSINGER GABRIELE",
        "gabriele musterfrau gößinger",
        "MUSTERFRAU<GOESSINGER<<GABRIELE",
    ],
)
def test_the_same_person_in_every_form_a_passport_gives(registered: str) -> None:
    assert name_matches(registered, GABRIELE)


@pytest.mark.parametrize(
    "registered",
    ["Gabriele Musterfrau", "Gabriela Musterfrau-Gößinger", "Gößinger", ""],
)
def test_other_people(registered: str) -> None:
    assert not name_matches(registered, GABRIELE)


def test_an_umlaut_written_as_a_single_letter_also_matches() -> None:
    simple = CertificateName(family_standardised="MULLER", given_standardised="JORG")

    assert name_matches("Jörg Müller", simple)
    assert name_matches(
        "Jörg Müller",
        CertificateName(family_standardised="MUELLER", given_standardised="JOERG"),
    )


def test_printed_parts_when_standardised_ones_are_missing() -> None:
    printed = CertificateName(family="Rogaliński-Król", given="Stanisław")

    assert name_matches("Stanisław Rogaliński-Król", printed)
    assert name_matches("STANISLAW ROGALINSKI KROL", printed)


def test_a_single_name() -> None:
    only_given = CertificateName(given="Ravi", given_standardised="RAVI")

    assert name_matches("Ravi", only_given)
    assert not name_matches("Ravi Kumar", only_given)


def test_a_chinese_passport_name_and_its_pinyin_certificate() -> None:
    certificate = CertificateName(family_standardised="ZHANG", given_standardised="SAN")

    assert name_matches("张三", certificate)
    assert name_matches("ZHANG San", certificate)
    assert not name_matches("李四", certificate)


def test_cyrillic_in_icao_and_in_the_older_form() -> None:
    icao = CertificateName(
        family_standardised="SHCHERBAKOVA", given_standardised="IULIIA"
    )
    older = CertificateName(
        family_standardised="SHCHERBAKOVA", given_standardised="YULIYA"
    )

    assert name_matches("Юлия Щербакова", icao)
    assert name_matches("Юлия Щербакова", older)


@pytest.mark.parametrize(
    ("text", "latest", "partial", "shown"),
    [
        ("1978", date(1978, 12, 31), True, "1978 (partial)"),
        ("1978-06", date(1978, 6, 30), True, "1978-06 (partial)"),
        ("1980-02", date(1980, 2, 29), True, "1980-02 (partial)"),
        ("1978-06-15", date(1978, 6, 15), False, "1978-06-15"),
        ("", None, True, "unknown"),
    ],
)
def test_dates_of_birth(text: str, latest, partial: bool, shown: str) -> None:
    birth = DateOfBirth.parse(text)

    assert (birth.latest(), birth.partial, birth.shown()) == (latest, partial, shown)


@pytest.mark.parametrize("text", ["78", "1978-6", "1978-02-30", "1978-13", "June 1978"])
def test_dates_of_birth_that_are_not(text: str) -> None:
    with pytest.raises(ValueError):
        DateOfBirth.parse(text)


def test_a_partial_date_is_compared_as_far_as_it_goes() -> None:
    june = DateOfBirth.parse("1978-06")

    assert june.admits(date(1978, 6, 2))
    assert not june.admits(date(1978, 7, 2))
    assert DateOfBirth.parse("1978").admits(date(1978, 11, 30))
    assert DateOfBirth.parse("").admits(date(1901, 1, 1))


def test_holder_matches_needs_name_and_agreeing_birth() -> None:
    june = DateOfBirth.parse("1978-06")

    assert holder_matches("Gabriele Musterfrau-Gößinger", None, GABRIELE, june)
    assert holder_matches(
        "Gabriele Musterfrau-Gößinger", date(1978, 6, 9), GABRIELE, june
    )
    assert not holder_matches(
        "Gabriele Musterfrau-Gößinger", date(1979, 6, 9), GABRIELE, june
    )


def test_names_stay_out_of_reprs() -> None:
    assert "Gabriele" not in repr(GABRIELE)
    assert "1978" not in repr(DateOfBirth.parse("1978"))


def _error_classes() -> list[type[errors.CertificateError]]:
    return [
        value
        for _, value in inspect.getmembers(errors, inspect.isclass)
        if issubclass(value, errors.CertificateError)
    ]


def test_every_error_has_its_own_stable_code() -> None:
    classes = _error_classes()
    codes = [error.code for error in classes]

    assert len(classes) >= 25
    assert len(set(codes)) == len(codes)
    assert all(issubclass(error, HealthcodeError) for error in classes)
    assert all(error.__doc__ for error in classes)


def test_every_refusal_is_an_invalid_certificate() -> None:
    refusals = [
        error
        for error in _error_classes()
        if error.__name__
        not in {"CertificateError", "InvalidBusinessRule", "TrustConfigurationError"}
    ]

    assert all(issubclass(error, errors.InvalidCertificate) for error in refusals)
