"""Hostile names: look-alike dots, full-width letters, searches in another case."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.identity.documents import parse_document
from healthcode.identity.names import mask_name, normalize_name, search_key
from healthcode.identity.services import register_resident, search_by_name

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "typed",
    ["阿依古丽.买买提", "阿依古丽﹒买买提", "阿依古丽 . 买买提", "阿依古丽。买买提"],
)
def test_full_stop_between_han_characters_is_a_middle_dot(typed: str) -> None:
    stored = normalize_name(typed)

    assert stored == "阿依古丽\u00b7买买提"
    assert mask_name(typed) == "阿***\u00b7***"


@pytest.mark.parametrize("name", ["J. R. Smith", "St. John", "A.B. Ali", "李.", ".李"])
def test_full_stop_elsewhere_stays_a_full_stop(name: str) -> None:
    stored = normalize_name(name)

    assert stored == name


def test_full_width_latin_letters_are_stored_as_ascii() -> None:
    stored = normalize_name("Ａｎｎａ\u3000Ｓｃｈｍｉｄｔ－Ｏ＇Ｂｒｉｅｎ")

    assert stored == "Anna Schmidt-O'Brien"
    assert search_key("Ａｎｎａ Ｓｃｈｍｉｄｔ") == search_key("anna schmidt")


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("Élodie Martin", "élodie martin"),
        ("Zhang San", "zhang san"),
        ("ZHANG San", "Zhang·San"),
        ("Ölçer Ağa", "ÖLÇER AĞA"),
    ],
)
def test_search_by_name_ignores_case_on_every_backend(
    engine: Engine, stored: str, asked: str
) -> None:
    document = parse_document("passport", "E1234567", "FRA", today=NOW.date())
    with Session(engine) as session, session.begin():
        resident = register_resident(session, document, stored, NOW)
        resident_id = resident.id

    with Session(engine) as session:
        found = [resident.id for resident in search_by_name(session, asked)]

    assert found == [resident_id]
