"""Statuses stored and changed through the import path, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthcode.feeds.services import import_feed
from healthcode.identity.documents import parse_document
from healthcode.identity.services import get_resident, register_resident
from healthcode.status.models import Status
from healthcode.status.services import (
    current_status,
    recolor_all,
    recolor_due,
    recolor_residents,
    status_history,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
CARD = "610113196702282566"
PASSPORT = ("passport", "C01X00T47", "DEU")


def feed(tmp_path: Path, name: str, header: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def imported(engine, kind: str, path: Path, now: datetime = NOW):
    report = import_feed(
        engine,
        kind,
        path,
        now=now,
        zone=SHANGHAI,
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    assert report.committed, report.errors
    return report


def confirm(
    engine,
    tmp_path: Path,
    number: str = CARD,
    kind: str = "cn-id",
    country: str = "",
    name: str = "张三",
    now: datetime = NOW,
) -> None:
    path = feed(
        tmp_path,
        f"identities-{number}.csv",
        "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,confirmed_at",
        f"PS-{number},{kind},{number},{country},{name},610113,confirmed,2026-03-01T09:00:00",
    )
    imported(engine, "identities", path, now)


def status_of(
    engine,
    number: str = CARD,
    kind: str = "cn-id",
    country: str = "",
    now: datetime = NOW,
):
    document = parse_document(kind, number, country, today=now.date())
    with Session(engine) as session, session.begin():
        resident = get_resident(session, document)
        return current_status(session, resident.id, now), [
            (event.old_colour, event.new_colour, event.cause)
            for event in status_history(session, resident.id)
        ]


def test_a_passport_visitor_is_grey_at_once_then_takes_their_colour(engine, tmp_path):
    document = parse_document(*PASSPORT[:1], PASSPORT[1], PASSPORT[2], today=NOW.date())
    with Session(engine) as session, session.begin():
        register_resident(session, document, "Anna Müller", NOW - timedelta(hours=2))

    grey, _ = status_of(engine, PASSPORT[1], "passport", "DEU")
    confirm(engine, tmp_path, PASSPORT[1], "passport", "DEU", "MÜLLER ANNA")
    after, history = status_of(engine, PASSPORT[1], "passport", "DEU")

    assert grey.colour == "grey"
    assert grey.reasons[0]["text"]["en"] == "Identity being confirmed"
    assert grey.reasons[0]["text"]["zh"] == "身份核验中"
    assert after.colour == "green"
    assert after.reasons == []
    assert [(old, new) for old, new, _ in history] == [
        (None, "grey"),
        ("grey", "green"),
    ]


def test_a_negative_result_lifts_a_yellow_code_the_moment_it_is_imported(
    engine, tmp_path
):
    confirm(engine, tmp_path)
    symptoms = feed(
        tmp_path,
        "declarations.csv",
        "record_id,doc_number,declared_at,fever,respiratory",
        f"D-1,{CARD},2026-03-10T09:00:00,true,false",
    )
    imported(engine, "declarations", symptoms)
    yellow, _ = status_of(engine)
    later = NOW + timedelta(minutes=40)
    result = feed(
        tmp_path,
        "lab-results.csv",
        "record_id,doc_number,sampled_at,method,result",
        f"L-1,{CARD},2026-03-10T12:20:00,pcr,negative",
    )

    report = imported(engine, "lab-results", result, later)
    green, history = status_of(engine, now=later)

    assert yellow.colour == "yellow"
    assert yellow.changes_at == datetime(2026, 3, 11, 1, 0, tzinfo=UTC)
    assert report.statuses_changed == 1
    assert green.colour == "green"
    assert green.as_of == later
    assert history[-1] == ("yellow", "green", history[-1][2])
    assert history[-1][2].startswith("import:")


def test_importing_the_same_file_again_changes_no_status(engine, tmp_path):
    confirm(engine, tmp_path)
    path = feed(
        tmp_path,
        "lab-results.csv",
        "record_id,doc_number,sampled_at,method,result",
        f"L-9,{CARD},2026-03-09T10:00:00,pcr,positive",
    )
    first = imported(engine, "lab-results", path)

    second = imported(engine, "lab-results", path, NOW + timedelta(minutes=5))
    status, history = status_of(engine, now=NOW + timedelta(minutes=5))

    assert first.statuses_changed == 1
    assert (second.imported, second.unchanged, second.statuses_changed) == (0, 1, 0)
    assert status.colour == "red"
    assert [new for _, new, _ in history] == ["green", "red"]


def test_an_order_that_ends_turns_green_without_a_new_record(engine, tmp_path):
    confirm(engine, tmp_path)
    order = feed(
        tmp_path,
        "orders.csv",
        "record_id,doc_number,kind,starts_at,ends_at",
        f"O-1,{CARD},home-observation,2026-03-09T08:00:00,2026-03-12T08:00:00",
    )
    imported(engine, "orders", order)
    ends = datetime(2026, 3, 12, 0, 0, tzinfo=UTC)

    before = recolor_due(engine, ends - timedelta(minutes=1))
    after = recolor_due(engine, ends)
    status, history = status_of(engine, now=ends)

    assert (before.residents, before.colour_changes) == (0, 0)
    assert (after.residents, after.colour_changes) == (1, 1)
    assert status.colour == "green"
    assert history[-1] == ("yellow", "green", "time")


def test_a_status_read_after_its_change_time_is_never_stale(engine, tmp_path):
    confirm(engine, tmp_path)
    order = feed(
        tmp_path,
        "orders.csv",
        "record_id,doc_number,kind,starts_at,ends_at",
        f"O-2,{CARD},home-observation,2026-03-09T08:00:00,2026-03-11T08:00:00",
    )
    imported(engine, "orders", order)

    status, _ = status_of(engine, now=datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC))

    assert status.colour == "green"


def test_parallel_and_serial_full_recolour_agree(engine, tmp_path):
    confirm(engine, tmp_path)
    with Session(engine) as session, session.begin():
        for index in range(30):
            body = f"61011319800101{index:03d}"
            from healthcode.identity.documents import mod11_2_check

            doc = parse_document("cn-id", body + mod11_2_check(body), today=NOW.date())
            register_resident(session, doc, "王小明", NOW)

    serial = recolor_all(engine, NOW + timedelta(hours=1), workers=1, batch=7)
    with engine.connect() as connection:
        first = connection.execute(
            sa.select(Status.resident_id, Status.colour, Status.as_of).order_by(
                Status.resident_id
            )
        ).all()
    parallel = recolor_all(engine, NOW + timedelta(hours=2), workers=2, batch=7)
    with engine.connect() as connection:
        second = connection.execute(
            sa.select(Status.resident_id, Status.colour, Status.as_of).order_by(
                Status.resident_id
            )
        ).all()

    assert serial.residents == parallel.residents == 31
    assert [row[:2] for row in first] == [row[:2] for row in second]
    assert {row[2] for row in second} == {NOW + timedelta(hours=2)}
    assert dict(
        (c, sum(1 for r in second if r[1] == c)) for c in ("green", "grey")
    ) == {
        "green": 1,
        "grey": 30,
    }
