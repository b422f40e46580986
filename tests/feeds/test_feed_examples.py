"""Every example file in docs/examples imports as documented, CSV and NDJSON alike.

Each test imports a kind's CSV example and then its NDJSON example, which
carries the same records: the second import must find all of them unchanged,
which shows that both formats read to the same values.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.feeds.formats import FEED_KINDS
from healthcode.feeds.models import (
    CaseReport,
    Declaration,
    LabResult,
    QuarantineOrder,
    RiskArea,
    TravelSegment,
    Vaccination,
)
from healthcode.identity.models import Resident

from .conftest import (
    AYGUL,
    CHEN,
    EXAMPLES,
    LI,
    RARE,
    ZHANG,
    resident_id,
    run,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def select(engine: Engine, *columns: object, order: object = None) -> list[tuple]:
    query = sa.select(*columns)
    if order is not None:
        query = query.order_by(order)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def import_both(engine: Engine, kind: str, expected: int) -> None:
    first = run(engine, kind, EXAMPLES / f"{kind}.csv")
    second = run(engine, kind, EXAMPLES / f"{kind}.ndjson")

    assert (first.committed, first.imported, first.rejected) == (True, expected, 0)
    assert first.errors == []
    assert (second.committed, second.imported, second.updated) == (True, 0, 0)
    assert second.unchanged == expected


def test_every_kind_has_both_example_files() -> None:
    missing = [
        f"{kind}.{suffix}"
        for kind in FEED_KINDS
        for suffix in ("csv", "ndjson")
        if not (EXAMPLES / f"{kind}.{suffix}").is_file()
    ]

    assert missing == []


def test_identities_example(engine: Engine) -> None:
    import_both(engine, "identities", 6)

    residents = select(
        engine,
        Resident.doc_kind,
        Resident.doc_number,
        Resident.name,
        Resident.birth_date,
        Resident.region_code,
        Resident.identity_state,
        Resident.identity_confirmed_at,
        order=Resident.id,
    )
    assert residents[0] == (
        "cn-id",
        ZHANG,
        "张晓明",
        date(1967, 2, 28),
        "610113",
        "confirmed",
        utc(2026, 3, 1, 1, 30),
    )
    # The lowercase x is stored as X, and the birth date comes from the number.
    assert residents[1][1:4] == (LI, "李娜", date(2001, 9, 23))
    assert residents[2][:2] == ("passport", "C01X00T47")
    assert residents[2][6] == utc(2026, 3, 1, 3, 0)
    assert residents[3][1:3] == (AYGUL, "阿依古丽·买买提")
    assert residents[4][1:3] == (RARE, "\U00020164明")
    assert residents[5][1] == CHEN
    assert residents[5][5] == "rejected"


def test_lab_results_example(registered: Engine) -> None:
    import_both(registered, "lab-results", 4)

    results = select(
        registered,
        LabResult.source_id,
        LabResult.resident_id,
        LabResult.sampled_at,
        LabResult.reported_at,
        LabResult.method,
        LabResult.result,
        LabResult.lab,
        order=LabResult.source_id,
    )
    assert results[0] == (
        "LAB-20260308-0001",
        resident_id(registered, ZHANG),
        utc(2026, 3, 8, 0, 10),
        utc(2026, 3, 8, 12, 40),
        "pcr",
        "negative",
        "西安市第一医院检验科",
    )
    assert results[1][2:] == (
        utc(2026, 3, 8, 1, 0),
        None,
        "antigen",
        "negative",
        None,
    )
    assert results[2][5] == "positive"
    assert results[3][6] == "北京市朝阳区医院, 检验科"


def test_vaccinations_example(registered: Engine) -> None:
    import_both(registered, "vaccinations", 4)

    doses = select(
        registered,
        Vaccination.source_id,
        Vaccination.product,
        Vaccination.dose_number,
        Vaccination.administered_at,
        order=Vaccination.source_id,
    )
    assert [dose[2] for dose in doses] == [1, 2, 1, 3]
    assert doses[2] == ("VAC-2021-004410", "Comirnaty", 1, utc(2021, 7, 2, 7, 0))


def test_cases_example(registered: Engine) -> None:
    import_both(registered, "cases", 2)

    cases = select(
        registered,
        CaseReport.source_id,
        CaseReport.classification,
        CaseReport.onset_at,
        CaseReport.released_at,
        order=CaseReport.source_id,
    )
    assert cases == [
        ("CASE-420100-0007", "asymptomatic", None, utc(2026, 2, 24, 2, 0)),
        ("CASE-610100-0042", "confirmed", utc(2026, 3, 8, 12, 0), None),
    ]


def test_orders_example(registered: Engine) -> None:
    import_both(registered, "orders", 2)

    orders = select(
        registered,
        QuarantineOrder.source_id,
        QuarantineOrder.kind,
        QuarantineOrder.ends_at,
        order=QuarantineOrder.source_id,
    )
    # The end of an order lies in the future, and that is allowed.
    assert orders == [
        ("ORD-110105-0117", "central-quarantine", None),
        ("ORD-610113-0301", "home-observation", utc(2026, 3, 16, 14, 0)),
    ]


def test_travel_example(registered: Engine) -> None:
    import_both(registered, "travel", 3)

    segments = select(
        registered,
        TravelSegment.source_id,
        TravelSegment.department,
        TravelSegment.dep_at,
        TravelSegment.arr_code,
        TravelSegment.stops,
        order=TravelSegment.source_id,
    )
    assert segments[0] == (
        "CR-20260307-G87-0512",
        "railway",
        utc(2026, 3, 7, 6, 0),
        "610112",
        [
            {"station": "石家庄", "code": "130104"},
            {"station": "郑州东", "code": "410105"},
        ],
    )
    assert segments[2][0] == "CR-20260308-D1921-0203"
    assert segments[2][4] == []


def test_declarations_example(registered: Engine) -> None:
    import_both(registered, "declarations", 3)

    declarations = select(
        registered,
        Declaration.source_id,
        Declaration.fever,
        Declaration.respiratory,
        Declaration.visited_code,
        Declaration.visited_from,
        order=Declaration.source_id,
    )
    assert declarations == [
        ("DCL-9f3a71c2", False, False, "410105", utc(2026, 3, 7, 22, 30)),
        ("DCL-9f3a71c3", True, False, None, None),
        ("DCL-9f3a71c4", True, False, None, None),
    ]


def test_risk_areas_example(registered: Engine) -> None:
    run(registered, "travel", EXAMPLES / "travel.csv")
    run(registered, "declarations", EXAMPLES / "declarations.csv")

    report = run(registered, "risk-areas", EXAMPLES / "risk-areas.csv")
    again = run(registered, "risk-areas", EXAMPLES / "risk-areas.ndjson")

    assert (report.committed, report.imported, again.unchanged) == (True, 4, 4)
    # Zhengzhou East (410105) was a stop of G87 and the start of D1921, and
    # was declared as visited; Beijing (110000) was where G87 set out.
    assert report.affected_residents == {
        resident_id(registered, ZHANG),
        resident_id(registered, AYGUL),
        resident_id(registered, "C01X00T47"),
    }
    assert again.affected_residents == set()
    areas = select(
        registered, RiskArea.code, RiskArea.name, RiskArea.level, order=RiskArea.id
    )
    assert areas == [
        ("610113", "电子城街道", "medium"),
        ("420106", None, "high"),
        ("410105", None, "medium"),
        ("110000", None, "low"),
    ]
