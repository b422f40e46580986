"""Hostile feed files: odd times, misplaced personal data, broken structure."""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.feeds.errors import FeedError
from healthcode.feeds.formats import KINDS
from healthcode.feeds.readers import BadLine, FeedFile
from healthcode.feeds.services import RowError
from healthcode.identity.documents import mod11_2_check
from healthcode.identity.models import Resident

from .conftest import (
    ANNA_PASSPORT,
    LI,
    NOW,
    PERSONAL,
    ZHANG,
    Writer,
    reasons,
    rows,
    run,
)

LAB_HEADER = "record_id,doc_number,sampled_at,method,result\n"
IDENTITY_HEADER = "record_id,doc_number,name,region_code,outcome,confirmed_at\n"
TRAVEL_HEADER = (
    "record_id,doc_number,mode,carrier,service_number,service_date,dep_station,"
    "dep_code,dep_at,arr_station,arr_code,arr_at\n"
)
# A valid mainland number that no example registers.
STRANGER = "320102198811110019"


def number(body: str) -> str:
    return body + mod11_2_check(body)


def ndjson(*items: dict[str, object]) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


def lab(record_id: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "record_id": record_id,
        "doc_number": LI,
        "sampled_at": "2026-03-09T08:00:00",
        "method": "pcr",
        "result": "negative",
    }
    row.update(values)
    return row


def rail(record_id: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "record_id": record_id,
        "doc_number": ZHANG,
        "mode": "rail",
        "carrier": "CR",
        "service_number": "G87",
        "service_date": "2026-03-07",
        "dep_station": "北京西",
        "dep_code": "110106",
        "dep_at": "2026-03-07T14:00:00",
        "arr_station": "西安北",
        "arr_code": "610112",
        "arr_at": "2026-03-07T18:32:00",
    }
    row.update(values)
    return row


# Times.


@pytest.mark.parametrize(
    ("kind", "content", "field", "shown"),
    [
        (
            "lab-results",
            LAB_HEADER + f"L-1,{LI},0001-01-01T00:00:00,pcr,negative\n",
            "sampled_at",
            "0001-01-01T00:00:00",
        ),
        (
            "lab-results",
            LAB_HEADER + f"L-1,{LI},0001-01-01T00:00:00+08:00,pcr,negative\n",
            "sampled_at",
            "0001-01-01T00:00:00+08:00",
        ),
        (
            "lab-results",
            LAB_HEADER + f"L-1,{LI},0999-06-01T00:00:00Z,pcr,negative\n",
            "sampled_at",
            "0999-06-01T00:00:00Z",
        ),
        (
            "orders",
            "record_id,doc_number,kind,starts_at,ends_at\n"
            f"O-1,{LI},home-observation,2026-03-09T00:00:00,9999-12-31T23:00:00-08:00\n",
            "ends_at",
            "9999-12-31T23:00:00-08:00",
        ),
        (
            "risk-areas",
            "record_id,code,level,starts_at\nRA-1,610113,high,0001-01-05T00:00:00Z\n",
            "starts_at",
            "0001-01-05T00:00:00Z",
        ),
    ],
)
def test_time_outside_the_supported_years_is_an_error_on_its_row(
    registered: Engine, write: Writer, kind: str, content: str, field: str, shown: str
) -> None:
    path = write(f"{kind}.csv", content)

    report = run(registered, kind, path)

    assert not report.committed
    assert report.errors == [
        RowError(
            2,
            field,
            f"The time '{shown}' lies outside the years 1900 to 2199"
            " that a record may carry.",
        )
    ]


def test_time_just_beyond_three_days_ahead_is_called_three_days(
    registered: Engine, write: Writer
) -> None:
    ahead = (NOW + timedelta(days=3) - timedelta(seconds=10)).isoformat()
    path = write("a.csv", LAB_HEADER + f"L-1,{LI},{ahead},pcr,negative\n")

    report = run(registered, "lab-results", path)

    assert report.errors == [
        RowError(
            2,
            "sampled_at",
            f"The time '{ahead}' lies 3 days after the import time, beyond the"
            " allowed clock skew; a recorded event cannot lie in the future.",
        )
    ]


def test_word_that_is_no_date_is_not_said_to_lack_a_time_of_day(
    registered: Engine, write: Writer
) -> None:
    path = write("a.csv", LAB_HEADER + f"L-1,{LI},not-a-time,pcr,negative\n")

    report = run(registered, "lab-results", path)

    assert report.errors == [
        RowError(
            2,
            "sampled_at",
            "The time given is not an ISO 8601 time such as 2026-03-02T09:15:00+08:00.",
        )
    ]


# Personal data in the wrong place.


def test_personal_values_in_the_wrong_field_are_never_echoed(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "a.ndjson",
        ndjson(
            lab("L-1", sampled_at="Anna Schmidt"),
            lab("L-2", sampled_at="138-1234-5678"),
            lab("L-3", sampled_at="6101 1319 6702 2825 66"),
            lab("L-4", method="Zhang San", result="WANG Wei"),
            lab("L-5", doc_kind="passport", doc_country="Anna Schmidt"),
            lab("L-6", doc_kind="Zhang San"),
            lab("L-7", sampled_at="2026-03-09 张晓明"),
        ),
    )

    report = run(registered, "lab-results", path, skip_bad=True)

    assert report.rejected == 7
    assert [word for word in PERSONAL if word in reasons(report)] == []
    assert report.errors[0] == RowError(
        1,
        "sampled_at",
        "The time given is not an ISO 8601 time such as 2026-03-02T09:15:00+08:00.",
    )
    assert report.errors[3] == RowError(
        4, "method", "The value given is not one of: pcr, antigen."
    )


@pytest.mark.parametrize(
    ("kind", "item", "field"),
    [
        ("vaccinations", {"dose_number": "WANG Wei"}, "dose_number"),
        ("declarations", {"fever": "Zhang San"}, "fever"),
        ("risk-areas", {"code": "+86 138 1234 5678"}, "code"),
    ],
)
def test_personal_values_in_typed_fields_are_never_echoed(
    registered: Engine, write: Writer, kind: str, item: dict[str, str], field: str
) -> None:
    base: dict[str, dict[str, object]] = {
        "vaccinations": {
            "doc_number": LI,
            "administered_at": "2021-06-15T10:30:00",
            "product": "CoronaVac",
            "dose_number": 1,
        },
        "declarations": {
            "doc_number": LI,
            "declared_at": "2026-03-09T08:00:00",
            "fever": "no",
            "respiratory": "no",
        },
        "risk-areas": {
            "code": "610113",
            "level": "high",
            "starts_at": "2026-03-06T00:00:00",
        },
    }
    row = {"record_id": "R-1", **base[kind], **item}
    path = write("a.ndjson", ndjson(row))

    report = run(registered, kind, path)

    assert [error.field for error in report.errors] == [field]
    assert [word for word in PERSONAL if word in reasons(report)] == []


def test_a_data_line_taken_for_the_header_is_not_echoed(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "a.csv",
        f"PS-9,cn-id,{ZHANG},,张晓明,1967-02-28,610113,小寨路街道,confirmed,"
        "2026-03-01T09:30:00\n",
    )

    report = run(registered, "identities", path)

    assert not report.committed
    assert report.errors == [
        RowError(
            1,
            None,
            "The first line names none of this feed kind's columns; a CSV feed"
            " starts with a header line that names them.",
        )
    ]


def test_a_header_cell_that_is_no_column_name_is_not_echoed(
    registered: Engine, write: Writer
) -> None:
    path = write("a.csv", f"record_id,doc_number,sampled_at,method,result,{ZHANG}\n")

    report = run(registered, "lab-results", path)

    assert report.errors == [
        RowError(
            1,
            None,
            "The header names a column this feed kind does not have (column 6).",
        )
    ]


def test_a_json_key_that_is_no_column_name_is_not_echoed(
    registered: Engine, write: Writer
) -> None:
    path = write("a.ndjson", ndjson(lab("L-1", **{ZHANG: "x", "colour": "red"})))

    report = run(registered, "lab-results", path)

    assert report.errors == [
        RowError(1, None, "The row has a key that the lab-results feed does not have."),
        RowError(1, "colour", "The lab-results feed has no such field."),
    ]


# Structure.


def test_a_json_key_given_twice_refuses_the_row(
    registered: Engine, write: Writer
) -> None:
    line = json.dumps(lab("L-1"))[:-1] + ', "result": "positive"}\n'
    path = write("a.ndjson", line + ndjson(lab("L-2")))

    report = run(registered, "lab-results", path, skip_bad=True)

    assert report.errors == [
        RowError(1, "result", "The line gives this key more than once.")
    ]
    assert rows(registered, "SELECT source_id, result FROM lab_results") == [
        ("L-2", "negative")
    ]


def test_an_unclosed_quote_names_every_line_it_swallowed(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "a.csv",
        LAB_HEADER
        + f"L-1,{LI},2026-03-09T08:00:00,pcr,negative\n"
        + f'L-2,{LI},"2026-03-09T08:00:00,pcr,negative\n'
        + f"L-3,{LI},2026-03-09T09:00:00,pcr,negative\n",
    )

    report = run(registered, "lab-results", path, skip_bad=True)

    assert report.errors == [
        RowError(
            3,
            None,
            "The record from line 3 to line 4 is not valid CSV: unexpected end of"
            " data.",
        )
    ]
    assert rows(registered, "SELECT source_id FROM lab_results") == [("L-1",)]


def test_many_undecodable_lines_are_read_in_linear_time(write: Writer) -> None:
    spec = KINDS["lab-results"]
    path = write("a.csv", LAB_HEADER.encode() + b"L-\xff,x,y,z,w\n" * 20_000)

    started = time.perf_counter()
    with FeedFile(path, spec.columns, spec.required) as feed:
        found = list(feed.rows())
    elapsed = time.perf_counter() - started

    assert len(found) == 20_000
    assert found[-1] == BadLine(20_001, None, "The line is not valid UTF-8.")
    assert elapsed < 3.0


def test_one_bad_document_on_many_rows_does_not_pile_up_memory(
    registered: Engine, write: Writer
) -> None:
    bad = ZHANG[:-1] + "7"
    lines = "".join(
        f"L-{n},{bad},2026-03-09T08:00:00,pcr,negative\n" for n in range(10_000)
    )
    path = write("a.csv", LAB_HEADER + lines)

    tracemalloc.start()
    try:
        report = run(registered, "lab-results", path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert report.rejected == 10_000
    assert peak < 20_000_000


# Stops.


@pytest.mark.parametrize(
    ("stops", "reason"),
    [
        (
            [{"station": "石家\u0000庄", "code": "130104"}],
            "Stop 1: The value contains control characters.",
        ),
        (
            [{"station": "石" * 65, "code": "130104"}],
            "Stop 1: The value is longer than 64 characters.",
        ),
        (
            [{"station": "石家庄", "code": "130104"}] * 101,
            "The row lists 101 stops; at most 100 are accepted.",
        ),
    ],
)
def test_stops_are_checked_like_other_text(
    registered: Engine, write: Writer, stops: list[dict[str, str]], reason: str
) -> None:
    path = write("a.ndjson", ndjson(rail("CR-1", stops=stops)))

    report = run(registered, "travel", path)

    assert report.errors == [RowError(1, "stops", reason)]


# Travel files of one department.


@pytest.mark.parametrize(
    "first_number", [ZHANG[:-1] + "7", STRANGER], ids=["bad-check", "unregistered"]
)
def test_a_rejected_first_row_does_not_decide_the_department(
    registered: Engine, write: Writer, first_number: str
) -> None:
    path = write(
        "a.ndjson",
        ndjson(
            rail(
                "CA-1",
                doc_number=first_number,
                mode="air",
                carrier="CA",
                service_number="CA1205",
            ),
            rail("CR-1"),
        ),
    )

    report = run(registered, "travel", path, skip_bad=True)

    assert [error.line for error in report.errors] == [1]
    assert report.department == "railway"
    assert rows(registered, "SELECT source_id, department FROM travel_segments") == [
        ("CR-1", "railway")
    ]


# Identities.


def test_identity_feed_names_take_the_stored_form_of_registration(
    engine: Engine, write: Writer
) -> None:
    dotted, spaced, long = (number(f"6101131990010100{n}") for n in (1, 2, 3))
    path = write(
        "a.csv",
        IDENTITY_HEADER
        + f"N-1,{dotted},阿依古丽•买买提,610113,confirmed,2026-03-01T09:30:00\n"
        + f"N-2,{spaced},Zhang   San,610113,confirmed,2026-03-01T09:30:00\n"
        + f"N-3,{long},{'A' * 65},610113,confirmed,2026-03-01T09:30:00\n",
    )

    report = run(engine, "identities", path, skip_bad=True)

    assert report.errors == [
        RowError(4, "name", "The name is longer than 64 characters.")
    ]
    query = sa.select(Resident.doc_number, Resident.name).order_by(Resident.id)
    with engine.connect() as connection:
        stored = [tuple(row) for row in connection.execute(query)]
    assert stored == [
        (dotted, "阿依古丽\u00b7买买提"),
        (spaced, "Zhang San"),
    ]


def test_identity_birth_date_in_the_future_is_refused(
    engine: Engine, write: Writer
) -> None:
    path = write(
        "a.csv",
        "record_id,doc_kind,doc_number,doc_country,name,birth_date,region_code,"
        "outcome,confirmed_at\n"
        f"P-1,passport,{ANNA_PASSPORT},DEU,Anna Schmidt,2030-05-17,610104,"
        "confirmed,2026-03-01T09:30:00\n",
    )

    report = run(engine, "identities", path)

    assert report.errors == [
        RowError(2, "birth_date", "The birth date lies in the future.")
    ]


def test_identity_answer_moved_to_another_document_unconfirms_the_first(
    registered: Engine, write: Writer
) -> None:
    path = write(
        "a.csv",
        IDENTITY_HEADER
        + f"PS-20260301-0002,{STRANGER},王伟,320102,confirmed,2026-03-01T10:05:00\n",
    )

    report = run(registered, "identities", path)

    assert report.committed
    assert report.updated == 1
    query = (
        sa.select(
            Resident.doc_number,
            Resident.identity_state,
            Resident.identity_confirmed_at.is_(None),
        )
        .where(Resident.doc_number_index.in_([LI, STRANGER]))
        .order_by(Resident.id)
    )
    with registered.connect() as connection:
        stored = [tuple(row) for row in connection.execute(query)]
    assert stored == [(LI, "pending", True), (STRANGER, "confirmed", False)]


# The sending department.


@pytest.mark.parametrize("department", ["d" * 33, "Lab Xi'an", "lab\u0000"])
def test_a_department_name_that_cannot_be_stored_is_refused(
    registered: Engine, write: Writer, department: str
) -> None:
    path = write("a.csv", LAB_HEADER + f"L-1,{LI},2026-03-09T08:00:00,pcr,negative\n")

    with pytest.raises(FeedError) as raised:
        run(registered, "lab-results", path, department=department)

    assert str(raised.value) == (
        "The department must be named by 1 to 32 lower-case letters, digits and"
        " hyphens, such as health or lab-xian-3."
    )
    assert rows(registered, "SELECT count(*) FROM lab_results") == [(0,)]
