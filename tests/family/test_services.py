"""Guardians and dependents: who may be added, the two limits (C11), removal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.models import Account
from healthcode.family.errors import (
    AlreadyGuardian,
    DependentLimit,
    GuardianLimit,
    GuardianshipNotPending,
    IdentityMismatch,
    NotYourDependent,
    OwnDependent,
)
from healthcode.family.services import (
    FamilyPolicy,
    add_dependent,
    approve_guardianship,
    dependents_of,
    pending_guardianships,
    register_self,
    remove_dependent,
    require_holder,
)
from healthcode.identity.documents import mod11_2_check, parse_document

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
TODAY = date(2026, 3, 10)


def cn_id(birth: str, sequence: int = 1) -> str:
    body = f"610113{birth}{sequence:03d}"
    return body + mod11_2_check(body)


def card(birth: str, sequence: int = 1):
    return parse_document("cn-id", cn_id(birth, sequence), today=TODAY)


def accounts(engine: Engine, count: int) -> list[int]:
    with Session(engine) as session, session.begin():
        made = [
            Account(phone=f"+86139000000{i:02d}", created_at=NOW) for i in range(count)
        ]
        session.add_all(made)
        session.flush()
        return [account.id for account in made]


def add(engine: Engine, guardian: int, document, name: str = "张小明", **policy):
    with Session(engine) as session, session.begin():
        link = add_dependent(
            session, guardian, document, name, NOW, FamilyPolicy(**policy)
        )
        return link.id, link.state, link.basis, link.dependent_id


@pytest.mark.parametrize(
    ("birth", "state", "basis"),
    [
        ("20150505", "active", "child"),
        ("20080311", "active", "child"),  # 17 until tomorrow
        ("20080310", "pending", "approval"),  # 18 today
        ("19660310", "active", "elder"),  # 60 today
        ("19660311", "pending", "approval"),  # 60 tomorrow
        ("19550202", "active", "elder"),
    ],
)
def test_children_and_the_elderly_are_added_at_once(
    engine: Engine, birth: str, state: str, basis: str
) -> None:
    (guardian,) = accounts(engine, 1)

    _, got_state, got_basis, _ = add(engine, guardian, card(birth))

    assert (got_state, got_basis) == (state, basis)


def test_a_passport_holder_of_unknown_age_waits_for_approval(engine: Engine) -> None:
    (guardian,) = accounts(engine, 1)
    passport = parse_document("passport", "C01X00T47", "DEU", today=TODAY)

    _, state, basis, _ = add(engine, guardian, passport, "Anna Schmidt")

    assert (state, basis) == ("pending", "approval")


def test_an_official_approves_a_pending_link_once(engine: Engine) -> None:
    (guardian,) = accounts(engine, 1)
    link_id, _, _, dependent = add(engine, guardian, card("20000101"))
    with Session(engine) as session, pytest.raises(NotYourDependent):
        require_holder(session, guardian, dependent)

    with Session(engine) as session, session.begin():
        assert [link.id for link in pending_guardianships(session)] == [link_id]
        approve_guardianship(session, link_id, official_id=None, now=NOW)  # type: ignore[arg-type]
    with Session(engine) as session:
        holder = require_holder(session, guardian, dependent)
        with pytest.raises(GuardianshipNotPending):
            approve_guardianship(session, link_id, official_id=None, now=NOW)  # type: ignore[arg-type]

    assert holder == "guardian"


def test_c11_a_ninth_dependent_is_refused_naming_the_limit(engine: Engine) -> None:
    (guardian,) = accounts(engine, 1)
    for sequence in range(1, 9):
        add(engine, guardian, card("20150505", sequence))

    with pytest.raises(DependentLimit) as refused:
        add(engine, guardian, card("20150505", 9))

    assert str(refused.value) == (
        "A guardian may hold at most 8 dependents, and you hold 8; remove one"
        " before adding another."
    )


def test_c11_a_fourth_guardian_is_refused_naming_the_limit(engine: Engine) -> None:
    guardians = accounts(engine, 4)
    child = card("20150505")
    for guardian in guardians[:3]:
        add(engine, guardian, child)

    with pytest.raises(GuardianLimit) as refused:
        add(engine, guardians[3], child)

    assert str(refused.value).startswith(
        "A dependent may have at most 3 guardians, and this one has that many"
    )


def test_the_limits_are_configurable(engine: Engine) -> None:
    (guardian,) = accounts(engine, 1)
    add(engine, guardian, card("20150505", 1), max_dependents=1)

    with pytest.raises(DependentLimit, match="at most 1 dependents"):
        add(engine, guardian, card("20150505", 2), max_dependents=1)


def test_pending_links_count_against_the_limits(engine: Engine) -> None:
    (guardian,) = accounts(engine, 1)
    add(engine, guardian, card("20000101", 1), max_dependents=1)

    with pytest.raises(DependentLimit):
        add(engine, guardian, card("20150505", 2), max_dependents=1)


def test_a_removed_guardian_loses_access_and_frees_a_place(engine: Engine) -> None:
    (guardian,) = accounts(engine, 1)
    _, _, _, dependent = add(engine, guardian, card("20150505"), max_dependents=1)
    with Session(engine) as session, session.begin():
        remove_dependent(session, guardian, dependent, NOW + timedelta(hours=1))

    with Session(engine) as session:
        with pytest.raises(NotYourDependent):
            require_holder(session, guardian, dependent)
        assert dependents_of(session, guardian) == []
    _, state, _, again = add(engine, guardian, card("20150505", 2), max_dependents=1)

    assert state == "active"
    assert again != dependent


def test_removing_someone_not_held_is_refused(engine: Engine) -> None:
    (guardian, other) = accounts(engine, 2)
    _, _, _, dependent = add(engine, guardian, card("20150505"))

    with Session(engine) as session, pytest.raises(NotYourDependent):
        remove_dependent(session, other, dependent, NOW)


def test_the_same_dependent_twice_and_oneself_are_refused(engine: Engine) -> None:
    (guardian,) = accounts(engine, 1)
    with Session(engine) as session, session.begin():
        register_self(session, guardian, card("19900101"), "张伟", NOW)
    add(engine, guardian, card("20150505"))

    with pytest.raises(AlreadyGuardian):
        add(engine, guardian, card("20150505"))
    with pytest.raises(OwnDependent):
        add(engine, guardian, card("19900101"), "张伟")


def test_a_known_dependent_must_be_named_as_on_record(engine: Engine) -> None:
    (first, second) = accounts(engine, 2)
    add(engine, first, card("20150505"), "张小明")

    with pytest.raises(IdentityMismatch):
        add(engine, second, card("20150505"), "李小红")
    _, state, _, _ = add(engine, second, card("20150505"), "张小明")

    assert state == "active"
