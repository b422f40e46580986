"""Finding residents by name through the blind indexes of sealed names."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.identity.documents import mod11_2_check, parse_document
from healthcode.identity.models import Resident
from healthcode.identity.names import name_year_key
from healthcode.identity.services import register_resident, search_by_name

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def _register(session: Session, born: str, sequence: int, name: str) -> int:
    body = f"610113{born}{sequence:03d}"
    document = parse_document("cn-id", body + mod11_2_check(body), today=NOW.date())
    return register_resident(session, document, name, NOW).id


@pytest.fixture
def people(engine: Engine) -> dict[str, int]:
    with Session(engine) as session, session.begin():
        return {
            "张伟 1985": _register(session, "19850301", 1, "张伟"),
            "张伟明 1985": _register(session, "19851111", 2, "张伟明"),
            "张伟 1990": _register(session, "19900101", 3, "张伟"),
            "章伟 1985": _register(session, "19850505", 4, "章伟"),
            "𠅤明 1985": _register(session, "19850606", 5, "\U00020164明"),
        }


def test_a_full_name_finds_everyone_of_that_name_whatever_their_year(
    engine: Engine, people: dict[str, int]
) -> None:
    with Session(engine) as session:
        found = [r.id for r in search_by_name(session, "张伟")]

    assert found == [people["张伟 1985"], people["张伟 1990"]]


def test_the_beginning_of_a_name_with_a_year_finds_those_born_then(
    engine: Engine, people: dict[str, int]
) -> None:
    with Session(engine) as session:
        surname = [r.id for r in search_by_name(session, "张", born_in=1985)]
        longer = [r.id for r in search_by_name(session, "张伟明", born_in=1985)]
        rare = [r.id for r in search_by_name(session, "\U00020164", born_in=1985)]
        none = search_by_name(session, "张", born_in=1986)

    assert surname == [people["张伟 1985"], people["张伟明 1985"]]
    assert longer == [people["张伟明 1985"]]
    assert rare == [people["𠅤明 1985"]]
    assert none == []


def test_a_part_from_the_middle_of_a_name_finds_nobody(
    engine: Engine, people: dict[str, int]
) -> None:
    with Session(engine) as session:
        middle = search_by_name(session, "伟", born_in=1985)
        part = search_by_name(session, "伟明")

    assert (middle, part) == ([], [])


def test_the_indexes_follow_a_change_of_name_and_birth_date(
    engine: Engine, people: dict[str, int]
) -> None:
    with Session(engine) as session, session.begin():
        resident = session.get(Resident, people["章伟 1985"])
        assert resident is not None
        resident.name = "李伟"
        resident.birth_date = date(1979, 5, 5)

    with Session(engine) as session:
        by_name = [r.id for r in search_by_name(session, "李伟")]
        by_year = [r.id for r in search_by_name(session, "李", born_in=1979)]
        old = search_by_name(session, "章伟")
        stored = session.scalar(
            sa.select(sa.func.count())
            .select_from(Resident)
            .where(Resident.name_year_index == name_year_key("李伟", date(1979, 1, 1)))
        )

    assert by_name == by_year == [people["章伟 1985"]]
    assert old == []
    assert stored == 1


def test_the_partial_key_is_the_first_letter_and_the_year() -> None:
    assert name_year_key("张伟", date(1985, 3, 1)) == "张:1985"
    assert name_year_key("ZHANG Wei", date(1985, 3, 1)) == "z:1985"
    assert name_year_key("\U00020164明", date(2001, 1, 1)) == "\U00020164:2001"
    assert name_year_key("张伟", None) is None
