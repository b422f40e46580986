"""The import service: matching, idempotence, batch modes, identities, risk areas."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.feeds import services
from healthcode.feeds.errors import UnknownFeedFormat, UnknownFeedKind
from healthcode.feeds.models import FeedImport, LabResult
from healthcode.feeds.services import NOT_REGISTERED, RowError
from healthcode.identity.documents import mod11_2_check
from healthcode.identity.models import Resident, personal_values

from .conftest import (
    ANNA_PASSPORT,
    AYGUL,
    EXAMPLES,
    LI,
    NOW,
    RARE,
    ZHANG,
    count,
    resident_id,
    rows,
    run,
)

Writer = Callable[[str, str], Path]
LAB_HEADER = "record_id,doc_number,sampled_at,method,result\n"
IDENTITY_HEADER = "record_id,doc_number,name,region_code,outcome,confirmed_at\n"
# A valid mainland number that no example registers.
STRANGER = "320102198811110019"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def stored_labs(engine: Engine) -> list[tuple]:
    query = sa.select(
        LabResult.id, LabResult.source_id, LabResult.sampled_at, LabResult.result
    ).order_by(LabResult.source_id)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def resident(engine: Engine, number: str) -> tuple:
    query = sa.select(
        Resident.name,
        Resident.birth_date,
        Resident.region_code,
        Resident.street,
        Resident.identity_state,
        Resident.identity_confirmed_at,
    ).where(Resident.doc_number_index == number)
    with engine.connect() as connection:
        return tuple(connection.execute(query).one())


def add_pending_resident(engine: Engine, number: str, name: str) -> int:
    table = Resident.__table__
    with engine.begin() as connection:
        return connection.execute(
            table.insert().returning(table.c.id),
            {
                "doc_kind": "cn-id",
                "doc_country": "",
                **personal_values(number, name, None),
                "birth_date": None,
                "region_code": None,
                "street": None,
                "identity_state": "pending",
                "identity_confirmed_at": None,
                "registered_at": utc(2026, 3, 2),
            },
        ).scalar_one()


# Matching residents.


def test_row_for_an_unregistered_resident_is_rejected(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "labs.csv",
        LAB_HEADER
        + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-2,{STRANGER},2026-03-09T08:00:00,pcr,negative\n",
    )

    report = run(registered, "lab-results", path, skip_bad=True)

    assert report.errors == [RowError(3, "doc_number", NOT_REGISTERED)]
    assert NOT_REGISTERED == "The row refers to a resident who is not registered."
    assert [row[1] for row in stored_labs(registered)] == ["L-1"]


def test_invalid_document_is_reported_without_the_number(
    registered: Engine, write: Writer
) -> None:
    wrong_check = ZHANG[:-1] + "7"
    path = write(
        "labs.csv",
        LAB_HEADER + f"L-1,{wrong_check},2026-03-09T08:00:00,pcr,negative\n",
    )

    report = run(registered, "lab-results", path)

    assert report.errors == [
        RowError(
            2,
            "doc_number",
            "The mainland identity number has a wrong check character.",
        )
    ]


def test_passport_needs_its_country(registered: Engine, write: Writer) -> None:
    path = write(
        "labs.csv",
        "record_id,doc_kind,doc_number,sampled_at,method,result\n"
        f"L-1,passport,{ANNA_PASSPORT},2026-03-09T08:00:00,pcr,negative\n",
    )

    report = run(registered, "lab-results", path)

    assert report.errors == [
        RowError(2, "doc_country", "A passport must be given with its issuing country.")
    ]


def test_lowercase_x_finds_the_resident_registered_with_uppercase(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "labs.csv", LAB_HEADER + f"L-1,{LI.lower()},2026-03-09T08:00:00,pcr,negative\n"
    )

    report = run(registered, "lab-results", path)

    assert report.affected_residents == {resident_id(registered, LI)}


# Idempotence.


def test_changed_content_updates_the_record_in_place(
    registered: Engine, write: Writer
) -> None:
    first = write(
        "a.csv", LAB_HEADER + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
    )
    run(registered, "lab-results", first)
    ((record_id, *_),) = stored_labs(registered)
    corrected = write(
        "b.csv", LAB_HEADER + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,positive\n"
    )

    report = run(registered, "lab-results", corrected)

    assert (report.imported, report.updated, report.unchanged) == (0, 1, 0)
    assert report.affected_residents == {resident_id(registered, ZHANG)}
    assert stored_labs(registered) == [
        (record_id, "L-1", utc(2026, 3, 9, 0, 0), "positive")
    ]


def test_correction_to_another_resident_affects_both(
    registered: Engine, write: Writer
) -> None:
    run(
        registered,
        "lab-results",
        write("a.csv", LAB_HEADER + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,positive\n"),
    )

    report = run(
        registered,
        "lab-results",
        write("b.csv", LAB_HEADER + f"L-1,{LI},2026-03-09T08:00:00,pcr,positive\n"),
    )

    assert report.updated == 1
    assert report.affected_residents == {
        resident_id(registered, ZHANG),
        resident_id(registered, LI),
    }


def test_same_record_twice_in_a_file_is_a_resend(
    registered: Engine, write: Writer
) -> None:
    line = f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
    path = write("labs.csv", LAB_HEADER + line + line)

    report = run(registered, "lab-results", path)

    assert (report.read, report.imported, report.unchanged) == (2, 1, 1)
    assert report.errors == []


def test_same_record_id_with_other_content_is_an_error_on_the_later_line(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "labs.csv",
        LAB_HEADER
        + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-2,{LI},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,positive\n",
    )

    report = run(registered, "lab-results", path, skip_bad=True)

    assert report.errors == [
        RowError(
            4,
            "record_id",
            "The record id was used on line 2 for a record with different content.",
        )
    ]
    assert [row[3] for row in stored_labs(registered)] == ["negative", "negative"]


def test_one_instant_written_in_two_zones_is_unchanged(
    registered: Engine, write: Writer
) -> None:
    shanghai = write(
        "a.csv", LAB_HEADER + f"L-1,{ZHANG},2026-03-02T09:15:00+08:00,pcr,negative\n"
    )
    utc_text = write(
        "b.ndjson",
        f'{{"record_id": "L-1", "doc_number": "{ZHANG}",'
        ' "sampled_at": "2026-03-02T01:15:00Z", "method": "pcr",'
        ' "result": "negative"}\n',
    )

    run(registered, "lab-results", shanghai)
    report = run(registered, "lab-results", utc_text)

    assert (report.unchanged, report.updated) == (1, 0)
    assert stored_labs(registered)[0][2] == utc(2026, 3, 2, 1, 15)


def test_naive_times_are_read_in_the_declared_zone(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "labs.csv", LAB_HEADER + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
    )

    run(registered, "lab-results", path, zone=ZoneInfo("Europe/Berlin"))

    assert stored_labs(registered)[0][2] == utc(2026, 3, 9, 7, 0)


def test_other_department_keeps_its_own_record_ids(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "labs.csv", LAB_HEADER + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
    )

    run(registered, "lab-results", path)
    report = run(registered, "lab-results", path, department="lab-xian-3")

    assert (report.department, report.imported) == ("lab-xian-3", 1)
    assert rows(
        registered, "SELECT department FROM lab_results ORDER BY department"
    ) == [("health",), ("lab-xian-3",)]


# Clock skew.


@pytest.mark.parametrize(
    ("sampled_at", "accepted"),
    [
        ("2026-03-10T12:05:00+08:00", True),
        ("2026-03-10T12:05:01+08:00", False),
        ("2026-03-10T04:04:59Z", True),
    ],
)
def test_future_skew_is_a_sharp_limit(
    registered: Engine, write: Writer, sampled_at: str, accepted: bool
) -> None:
    path = write("labs.csv", LAB_HEADER + f"L-1,{ZHANG},{sampled_at},pcr,negative\n")

    report = run(registered, "lab-results", path)

    assert report.committed is accepted


# Batch modes over several rounds.


def test_all_or_nothing_rolls_back_rounds_already_written(
    registered: Engine, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "ROUND", 2)
    good = [
        f"L-{n},{number},2026-03-09T08:00:00,pcr,negative\n"
        for n, number in enumerate((ZHANG, LI, AYGUL, RARE), start=1)
    ]
    path = write(
        "labs.csv",
        LAB_HEADER + "".join(good) + f"L-9,{ZHANG},2026-03-09T08:00:00,pcr,maybe\n",
    )

    report = run(registered, "lab-results", path)

    assert report.committed is False
    assert report.errors == [
        RowError(6, "result", "The value 'maybe' is not one of: negative, positive.")
    ]
    assert count(registered, "lab_results") == 0


def test_duplicate_across_rounds_is_caught(
    registered: Engine, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "ROUND", 2)
    path = write(
        "labs.csv",
        LAB_HEADER
        + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-2,{LI},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-3,{AYGUL},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-2,{LI},2026-03-09T08:00:00,antigen,negative\n",
    )

    report = run(registered, "lab-results", path, skip_bad=True)

    assert (report.imported, report.unchanged, report.rejected) == (3, 1, 1)
    assert [error.line for error in report.errors] == [6]


def test_broken_header_refuses_even_with_skip_bad(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "labs.csv",
        "record_id,doc_number,sampeld_at,method,result\n"
        f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n",
    )

    report = run(registered, "lab-results", path, skip_bad=True)

    assert report.committed is False
    assert report.errors == [
        RowError(
            1, "sampeld_at", "The header names a column this feed kind does not have."
        ),
        RowError(1, "sampled_at", "The header lacks this required column."),
    ]
    assert count(registered, "lab_results") == 0


def test_import_row_records_the_counts_and_the_file(
    registered: Engine, write: Writer
) -> None:
    text = (
        LAB_HEADER
        + f"L-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
        + f"L-2,{STRANGER},2026-03-09T08:00:00,pcr,negative\n"
    )
    path = write("labs.csv", text)

    report = run(registered, "lab-results", path, skip_bad=True)

    query = sa.select(
        FeedImport.kind,
        FeedImport.department,
        FeedImport.file_name,
        FeedImport.sha256,
        FeedImport.zone,
        FeedImport.mode,
        FeedImport.started_at,
        FeedImport.rows_read,
        FeedImport.rows_imported,
        FeedImport.rows_rejected,
    ).where(FeedImport.id == report.import_id)
    with registered.connect() as connection:
        stored = tuple(connection.execute(query).one())
    assert stored == (
        "lab-results",
        "health",
        "labs.csv",
        hashlib.sha256(text.encode()).hexdigest(),
        "Asia/Shanghai",
        "skip-bad",
        NOW,
        2,
        1,
        1,
    )


def test_missing_and_unknown_fields_are_named(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "labs.ndjson",
        f'{{"record_id": "L-1", "doc_number": "{ZHANG}", "method": "pcr",'
        ' "sampled_at": "2026-03-09T08:00:00", "colour": "red"}\n',
    )

    report = run(registered, "lab-results", path)

    assert report.errors == [
        RowError(1, "result", "A value is required."),
        RowError(1, "colour", "The lab-results feed has no such field."),
    ]


def test_unknown_kind_and_format_are_refused(engine: Engine, write: Writer) -> None:
    path = write("labs.txt", LAB_HEADER)

    with pytest.raises(UnknownFeedKind, match="no feed kind 'tests'"):
        run(engine, "tests", path)
    with pytest.raises(UnknownFeedFormat, match=r"labs\.txt does not end in \.csv"):
        run(engine, "lab-results", path)


# Identities.


def test_identity_confirms_a_pending_resident(engine: Engine, write: Writer) -> None:
    rid = add_pending_resident(engine, ZHANG, "张小明")
    path = write(
        "ids.csv",
        "record_id,doc_number,name,region_code,street,outcome,confirmed_at\n"
        f"PS-1,{ZHANG},张晓明,610113,小寨路街道,confirmed,2026-03-05T10:00:00\n",
    )

    report = run(engine, "identities", path)

    assert (report.imported, report.affected_residents) == (1, {rid})
    assert resident(engine, ZHANG) == (
        "张晓明",
        date(1967, 2, 28),
        "610113",
        "小寨路街道",
        "confirmed",
        utc(2026, 3, 5, 2, 0),
    )
    assert count(engine, "residents") == 1


def test_identity_rejection_keeps_the_name_the_resident_gave(
    engine: Engine, write: Writer
) -> None:
    add_pending_resident(engine, ZHANG, "张小明")
    path = write(
        "ids.csv",
        IDENTITY_HEADER + f"PS-1,{ZHANG},张晓明,610113,rejected,2026-03-05T10:00:00\n",
    )

    run(engine, "identities", path)

    assert resident(engine, ZHANG)[0] == "张小明"
    assert resident(engine, ZHANG)[4:] == ("rejected", utc(2026, 3, 5, 2, 0))


def test_newest_identity_answer_wins_whatever_the_order(
    engine: Engine, write: Writer
) -> None:
    newer = write(
        "a.csv",
        IDENTITY_HEADER + f"PS-2,{ZHANG},张晓明,610113,rejected,2026-03-06T10:00:00\n",
    )
    older = write(
        "b.csv",
        IDENTITY_HEADER + f"PS-1,{ZHANG},张晓明,610113,confirmed,2026-03-05T10:00:00\n",
    )

    run(engine, "identities", newer)
    run(engine, "identities", older)

    assert resident(engine, ZHANG)[4:] == ("rejected", utc(2026, 3, 6, 2, 0))
    assert count(engine, "identity_records") == 2


def test_identity_birth_date_must_match_the_number(
    engine: Engine, write: Writer
) -> None:
    path = write(
        "ids.csv",
        "record_id,doc_number,name,birth_date,region_code,outcome,confirmed_at\n"
        f"PS-1,{ZHANG},张晓明,1967-03-01,610113,confirmed,2026-03-05T10:00:00\n",
    )

    report = run(engine, "identities", path)

    assert report.errors == [
        RowError(
            2,
            "birth_date",
            "The birth date differs from the one the identity number carries.",
        )
    ]


def test_identity_region_must_be_a_county(engine: Engine, write: Writer) -> None:
    path = write(
        "ids.csv",
        IDENTITY_HEADER + f"PS-1,{ZHANG},张晓明,610100,confirmed,2026-03-05T10:00:00\n",
    )

    report = run(engine, "identities", path)

    assert report.errors == [
        RowError(
            2,
            "region_code",
            "The region code 610100 names a province or city; a resident's region"
            " is a county-level division.",
        )
    ]


def test_two_answers_for_one_new_resident_in_one_file_create_one(
    engine: Engine, write: Writer
) -> None:
    path = write(
        "ids.csv",
        IDENTITY_HEADER
        + f"PS-1,{ZHANG},张晓明,610113,rejected,2026-03-05T10:00:00\n"
        + f"PS-2,{ZHANG},张晓明,610113,confirmed,2026-03-06T10:00:00\n",
    )

    report = run(engine, "identities", path)

    assert (report.imported, count(engine, "residents")) == (2, 1)
    assert resident(engine, ZHANG)[4] == "confirmed"


# Travel and risk areas.


TRAVEL_HEADER = (
    "record_id,doc_number,mode,carrier,service_number,service_date,dep_station,"
    "dep_code,dep_at,arr_station,arr_code,arr_at,stops\n"
)


def test_flight_manifest_comes_from_civil_aviation(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "flights.csv",
        TRAVEL_HEADER + f"CA-1,{ZHANG},air,CA,CA1205,2026-03-08,首都机场,110113,"
        "2026-03-08T08:00:00,咸阳机场,610404,2026-03-08T10:20:00,\n",
    )

    report = run(registered, "travel", path)

    assert (report.department, report.imported) == ("civil-aviation", 1)
    assert rows(registered, "SELECT department FROM travel_segments") == [
        ("civil-aviation",)
    ]


def test_travel_file_with_both_modes_rejects_the_other_mode(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "mixed.csv",
        TRAVEL_HEADER
        + f"CR-1,{ZHANG},rail,CR,G87,2026-03-07,北京西,110106,2026-03-07T14:00:00,"
        "西安北,610112,2026-03-07T18:32:00,\n"
        + f"CA-1,{LI},air,CA,CA1205,2026-03-08,首都机场,110113,"
        "2026-03-08T08:00:00,咸阳机场,610404,2026-03-08T10:20:00,\n",
    )

    report = run(registered, "travel", path, skip_bad=True)

    assert report.department == "railway"
    assert report.errors == [
        RowError(
            3,
            "mode",
            "Mode air is sent by civil-aviation, but this file comes from railway;"
            " send it in a file of its own.",
        )
    ]


def test_risk_area_correction_affects_residents_of_old_and_new_area(
    registered: Engine, write: Writer
) -> None:
    run(registered, "travel", EXAMPLES / "travel.csv")
    header = "record_id,code,level,starts_at\n"
    run(
        registered,
        "risk-areas",
        write("a.csv", header + "RA-1,130104,high,2026-03-06T00:00:00\n"),
    )

    report = run(
        registered,
        "risk-areas",
        write("b.csv", header + "RA-1,610113,high,2026-03-06T00:00:00\n"),
    )

    # Shijiazhuang (130104) was a stop of G87; nobody travelled to Yanta.
    assert report.updated == 1
    assert report.affected_residents == {
        resident_id(registered, AYGUL),
        resident_id(registered, ANNA_PASSPORT),
    }


def test_risk_area_counts_travel_within_its_window_only(
    registered: Engine, write: Writer
) -> None:
    run(registered, "travel", EXAMPLES / "travel.csv")
    header = "record_id,code,level,starts_at,ends_at\n"
    # G87 passed Zhengzhou East after 14:00 on March 7, D1921 left it at
    # 07:12 on March 8.
    before_g87 = "RA-1,410100,high,2026-02-20T00:00:00,2026-03-07T12:00:00\n"
    before_d1921 = "RA-2,410100,high,2026-02-20T00:00:00,2026-03-08T07:00:00\n"

    early = run(registered, "risk-areas", write("a.csv", header + before_g87))
    later = run(registered, "risk-areas", write("b.csv", header + before_d1921))

    assert early.affected_residents == set()
    assert later.affected_residents == {
        resident_id(registered, AYGUL),
        resident_id(registered, ANNA_PASSPORT),
    }


# Speed.


@pytest.mark.slow
def test_import_speed(engine: Engine, tmp_path: Path) -> None:
    numbers = []
    for n in range(20_000):
        birth = date(1950, 1, 1) + timedelta(days=n)
        body = f"610113{birth:%Y%m%d}{n % 1000:03d}"
        numbers.append(body + mod11_2_check(body))
    identities = tmp_path / "ids.csv"
    identities.write_text(
        IDENTITY_HEADER
        + "".join(
            f"PS-{n},{number},测试,610113,confirmed,2026-03-01T09:00:00\n"
            for n, number in enumerate(numbers)
        )
    )
    labs = tmp_path / "labs.csv"
    labs.write_text(
        LAB_HEADER
        + "".join(
            f"L-{n},{number},2026-03-09T08:00:00,pcr,negative\n"
            for n, number in enumerate(numbers)
        )
    )
    run(engine, "identities", identities)

    started = time.perf_counter()
    report = run(engine, "lab-results", labs)
    elapsed = time.perf_counter() - started

    assert report.imported == 20_000
    # The aim is 20,000 rows a second on SQLite; the bound is lower so that a
    # busy test machine does not fail the suite, yet it catches a change that
    # makes the import row-by-row.
    assert 20_000 / elapsed > 4_000
