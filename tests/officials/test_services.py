"""Overrides, bulk overrides (C15), appeals, searches and statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.models import Account
from healthcode.accounts.services import create_official
from healthcode.identity.documents import mod11_2_check, parse_document
from healthcode.identity.models import Resident, personal_values
from healthcode.officials.errors import (
    AppealOpen,
    AppealReviewed,
    BulkOverrideDecided,
    InvalidOverride,
    InvalidReview,
    InvalidSearch,
    LegalBasisRequired,
    SecondOfficialRequired,
)
from healthcode.officials.models import Override
from healthcode.officials.services import (
    OverridePolicy,
    approve_bulk_override,
    end_override,
    file_appeal,
    reject_bulk_override,
    review_appeal,
    search_residents,
    set_override,
    statistics,
)
from healthcode.status.services import current_status, recolor_residents

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
LATER = NOW + timedelta(days=3)
PASSWORD = "correct horse battery"
LEGAL_BASIS = "Law on the Prevention and Treatment of Infectious Diseases, art. 42"


def cn_id(sequence: int) -> str:
    body = f"610113199001{sequence // 1000 + 1:02d}{sequence % 1000:03d}"
    return body + mod11_2_check(body)


def residents(engine: Engine, count: int, region: str = "610113") -> list[int]:
    """Confirmed residents, coloured green, without going through a feed."""
    rows = [
        {
            "doc_kind": "cn-id",
            "doc_country": "",
            "doc_number": cn_id(index),
            "name": "张伟" if index % 2 else "李娜",
            "birth_date": date(1990, 1, 1),
            "region_code": region,
            "identity_state": "confirmed",
            "identity_confirmed_at": NOW - timedelta(days=9),
            "registered_at": NOW - timedelta(days=9),
        }
        for index in range(count)
    ]
    with Session(engine) as session, session.begin():
        start = session.scalar(sa.select(sa.func.count()).select_from(Resident)) or 0
        stored = []
        for index, row in enumerate(rows):
            # Through the table, whose column types seal and index the values.
            number, name = cn_id(start + index), row.pop("name")
            del row["doc_number"]
            stored.append({**row, **personal_values(number, name, row["birth_date"])})
        table = Resident.__table__
        ids = list(
            session.execute(
                sa.insert(table).returning(table.c.id, sort_by_parameter_order=True),
                stored,
            ).scalars()
        )
        recolor_residents(session, ids, NOW - timedelta(days=9), "register")
    return ids


def officials(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session, session.begin():
        first, _ = create_official(session, "wang.li", "health-official", PASSWORD, NOW)
        second, _ = create_official(
            session, "zhao.min", "health-official", PASSWORD, NOW
        )
        return first.id, second.id


def colour(engine: Engine, resident_id: int, at: datetime = NOW) -> str:
    with Session(engine) as session, session.begin():
        return current_status(session, resident_id, at).colour


def override(engine: Engine, ids: list[int], author: int, **given):
    given.setdefault("colour", "red")
    given.setdefault("reason", "Close contact of case 42, until the trace is done.")
    given.setdefault("expires_at", LATER)
    with Session(engine) as session, session.begin():
        outcome = set_override(
            session,
            resident_ids=ids,
            author_id=author,
            author_role="health-official",
            now=NOW,
            **given,
        )
        return (
            [o.id for o in outcome.overrides],
            outcome.bulk.id if outcome.bulk else None,
        )


def test_an_override_recolours_at_once_and_shows_its_reason(engine: Engine) -> None:
    (resident,) = residents(engine, 1)
    author, _ = officials(engine)

    made, bulk = override(engine, [resident], author)

    with Session(engine) as session, session.begin():
        view = current_status(session, resident, NOW)
    assert (len(made), bulk) == (1, None)
    assert view.colour == "red"
    assert view.reasons[0]["override"] is True
    assert view.reasons[0]["until"] == LATER.isoformat()
    assert (view.changes_at, view.changes_to) == (LATER, "green")
    assert colour(engine, resident, LATER) == "green"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"colour": "grey"}, "green, yellow or red"),
        ({"expires_at": NOW}, "expire in the future"),
        ({"expires_at": NOW + timedelta(days=31)}, "at most 30 days"),
        ({"reason": "  "}, "reason"),
    ],
)
def test_an_override_must_be_sound(engine: Engine, given: dict, message: str) -> None:
    (resident,) = residents(engine, 1)
    author, _ = officials(engine)

    with pytest.raises(InvalidOverride, match=message):
        override(engine, [resident], author, **given)


def test_an_override_of_unknown_residents_is_refused(engine: Engine) -> None:
    (resident,) = residents(engine, 1)
    author, _ = officials(engine)

    with pytest.raises(InvalidOverride, match="1 of the 2 resident ids"):
        override(engine, [resident, resident + 1000], author)


def test_a_hundred_residents_are_overridden_without_a_second_official(
    engine: Engine,
) -> None:
    ids = residents(engine, 100)
    author, _ = officials(engine)

    made, bulk = override(engine, ids, author)

    assert (len(made), bulk) == (100, None)
    assert colour(engine, ids[-1]) == "red"


def test_c15_a_thousand_at_once_need_a_legal_basis(engine: Engine) -> None:
    ids = residents(engine, 1000)
    author, _ = officials(engine)

    with pytest.raises(LegalBasisRequired) as refused:
        override(engine, ids, author)

    assert str(refused.value) == (
        "Overriding more than 100 residents in one action needs a stated legal"
        " basis; give legalBasis."
    )


def test_c15_a_thousand_wait_for_a_second_official(engine: Engine) -> None:
    ids = residents(engine, 1000)
    author, second = officials(engine)
    made, bulk = override(engine, ids, author, legal_basis=LEGAL_BASIS)
    assert made == [] and bulk is not None
    assert colour(engine, ids[0]) == "green"

    with Session(engine) as session, pytest.raises(SecondOfficialRequired):
        approve_bulk_override(session, bulk, author, NOW)
    with Session(engine) as session, session.begin():
        outcome = approve_bulk_override(session, bulk, second, NOW, "Checked the list.")
        approved = len(outcome.overrides)
    with Session(engine) as session, pytest.raises(BulkOverrideDecided):
        approve_bulk_override(session, bulk, second, NOW)

    assert approved == 1000
    with Session(engine) as session, session.begin():
        view = current_status(session, ids[500], NOW)
        stored = session.execute(
            sa.select(Override.bulk_id, Override.legal_basis).where(
                Override.resident_id == ids[500]
            )
        ).one()
    assert view.colour == "red"
    assert view.reasons[0]["text"]["en"].endswith("until the trace is done.")
    assert tuple(stored) == (bulk, LEGAL_BASIS)


def test_c15_each_resident_can_appeal_a_bulk_override(engine: Engine) -> None:
    ids = residents(engine, 3)
    author, second = officials(engine)
    policy = OverridePolicy(bulk_threshold=2)
    with Session(engine) as session, session.begin():
        bulk = set_override(
            session,
            resident_ids=ids,
            colour="red",
            reason="Building sealed after a case.",
            expires_at=LATER,
            author_id=author,
            author_role="health-official",
            now=NOW,
            legal_basis=LEGAL_BASIS,
            policy=policy,
        ).bulk
        assert bulk is not None
        approve_bulk_override(session, bulk.id, second, NOW)
        account = Account(phone="+8613800138000", resident_id=ids[1], created_at=NOW)
        session.add(account)
        session.flush()

        appeal = file_appeal(session, ids[1], account.id, "I moved out in 2024.", NOW)

        assert (appeal.colour, appeal.rules[0]) == ("red", "OFFICIAL-OVERRIDE")


def test_a_rejected_bulk_override_changes_nobody(engine: Engine) -> None:
    ids = residents(engine, 3)
    author, second = officials(engine)
    with Session(engine) as session, session.begin():
        bulk = set_override(
            session,
            resident_ids=ids,
            colour="red",
            reason="Building sealed.",
            expires_at=LATER,
            author_id=author,
            author_role="health-official",
            now=NOW,
            legal_basis=LEGAL_BASIS,
            policy=OverridePolicy(bulk_threshold=2),
        ).bulk
        assert bulk is not None
        reject_bulk_override(session, bulk.id, second, NOW, "Wrong building.")

    assert [colour(engine, rid) for rid in ids] == ["green"] * 3


def test_ending_an_override_early_brings_the_computed_colour_back(
    engine: Engine,
) -> None:
    (resident,) = residents(engine, 1)
    author, _ = officials(engine)
    (made,), _ = override(engine, [resident], author)

    with Session(engine) as session, session.begin():
        end_override(session, made, author, NOW + timedelta(hours=1))
    with Session(engine) as session, pytest.raises(InvalidOverride):
        end_override(session, made, author, NOW + timedelta(hours=2))

    assert colour(engine, resident, NOW + timedelta(hours=1)) == "green"


def appeal_of(engine: Engine, resident: int) -> int:
    with Session(engine) as session, session.begin():
        account = Account(phone="+8613800138000", resident_id=resident, created_at=NOW)
        session.add(account)
        session.flush()
        return file_appeal(session, resident, account.id, "Wrong colour.", NOW).id


def test_one_open_appeal_at_a_time(engine: Engine) -> None:
    (resident,) = residents(engine, 1)
    appeal_of(engine, resident)

    with Session(engine) as session, pytest.raises(AppealOpen):
        file_appeal(session, resident, 1, "Again.", NOW)


def test_an_upheld_appeal_keeps_the_colour(engine: Engine) -> None:
    (resident,) = residents(engine, 1)
    author, _ = officials(engine)
    appeal = appeal_of(engine, resident)

    with Session(engine) as session, session.begin():
        reviewed = review_appeal(
            session,
            appeal,
            official_id=author,
            official_role="health-official",
            outcome="upheld",
            note="The records are right.",
            now=NOW,
        )
        state, override_id = reviewed.state, reviewed.override_id
    with Session(engine) as session, pytest.raises(AppealReviewed):
        review_appeal(
            session,
            appeal,
            official_id=author,
            official_role="health-official",
            outcome="upheld",
            note="Again.",
            now=NOW,
        )

    assert (state, override_id) == ("upheld", None)
    assert colour(engine, resident) == "green"


def test_a_corrected_appeal_sets_an_override_with_the_note(engine: Engine) -> None:
    (resident,) = residents(engine, 1)
    author, _ = officials(engine)
    override(engine, [resident], author)
    appeal = appeal_of(engine, resident)

    with Session(engine) as session, session.begin():
        reviewed = review_appeal(
            session,
            appeal,
            official_id=author,
            official_role="health-official",
            outcome="corrected",
            note="The trace cleared this resident.",
            now=NOW + timedelta(minutes=1),
            colour="green",
            expires_at=LATER,
        )
        override_id = reviewed.override_id
    with Session(engine) as session, session.begin():
        view = current_status(session, resident, NOW + timedelta(minutes=1))

    assert override_id is not None
    assert view.colour == "green"
    assert "The trace cleared this resident." in view.reasons[0]["text"]["en"]


def test_a_correction_needs_colour_and_expiry(engine: Engine) -> None:
    (resident,) = residents(engine, 1)
    author, _ = officials(engine)
    appeal = appeal_of(engine, resident)

    with Session(engine) as session, pytest.raises(InvalidReview):
        review_appeal(
            session,
            appeal,
            official_id=author,
            official_role="health-official",
            outcome="corrected",
            note="Fix it.",
            now=NOW,
        )


def test_search_by_document_or_name(engine: Engine) -> None:
    ids = residents(engine, 4)
    document = parse_document("cn-id", cn_id(1), today=NOW.date())

    with Session(engine) as session:
        by_document = [r.id for r in search_residents(session, document=document)]
        by_name = sorted(r.id for r in search_residents(session, name="李 娜"))
        with pytest.raises(InvalidSearch):
            search_residents(session)

    assert by_document == [ids[1]]
    assert by_name == [ids[0], ids[2]]


def test_statistics_count_colours_districts_and_days(engine: Engine) -> None:
    ids = residents(engine, 3, region="610113")
    residents(engine, 2, region="610112")
    author, _ = officials(engine)
    override(engine, ids[:1], author)

    with Session(engine) as session:
        found = statistics(session, NOW, SHANGHAI, days=7)

    assert found.by_colour == {"green": 4, "red": 1}
    assert found.by_district == [
        ("610112", "green", 2),
        ("610113", "green", 2),
        ("610113", "red", 1),
    ]
    assert found.by_day == [("2026-03-10", "red", 1)]
