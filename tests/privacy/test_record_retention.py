"""Retention of authoritative records: old ones go, active and needed ones stay.

Lab results, vaccinations, cases, quarantine orders and journeys each have a
configured period, counted in local days from the moment the record stops
mattering. A case not released and an order not ended are never purged; no
period may be shorter than what the rules and tracing still read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.checkins.models import Exposure
from healthcode.config import get_settings
from healthcode.errors import ConfigurationError
from healthcode.feeds.models import (
    CaseReport,
    FeedImport,
    LabResult,
    QuarantineOrder,
    TravelSegment,
    Vaccination,
)
from healthcode.privacy.config import get_privacy_settings
from healthcode.privacy.retention import (
    RECORD_KINDS,
    RetentionPolicy,
    purge,
    purge_records,
    record_floor,
)
from healthcode.privacy.seals import SealKeys
from healthcode.status.models import Status
from healthcode.status.services import active_rule_set, recolor_residents

from .support import add_resident

ZONE = ZoneInfo("Asia/Shanghai")
# The purge clock: 2026-09-30, 12:00 in Shanghai.
NOW = datetime(2026, 9, 30, 12, 0, tzinfo=ZONE)


def local(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE)


_serial = iter(range(1, 10**9))


def _record(session: Session, model: Any, resident: int, **values: Any) -> int:
    serial = next(_serial)
    feed = FeedImport(
        kind=model.__tablename__,
        department="health",
        file_name=f"feed-{serial}.csv",
        sha256="0" * 64,
        zone="Asia/Shanghai",
        mode="all-or-nothing",
        started_at=NOW - timedelta(days=400),
    )
    session.add(feed)
    session.flush()
    row = model(
        department="health",
        source_id=f"R-{serial}",
        content_hash="0" * 32,
        import_id=feed.id,
        resident_id=resident,
        **values,
    )
    session.add(row)
    session.flush()
    return int(row.id)


def _test(session: Session, resident: int, sampled: datetime, result: str) -> int:
    return _record(
        session, LabResult, resident, sampled_at=sampled, method="pcr", result=result
    )


def _case(session: Session, resident: int, released: datetime | None) -> int:
    return _record(
        session,
        CaseReport,
        resident,
        classification="confirmed",
        diagnosed_at=local(1, 5),
        released_at=released,
    )


def _order(session: Session, resident: int, ends: datetime | None) -> int:
    return _record(
        session,
        QuarantineOrder,
        resident,
        kind="central-quarantine",
        starts_at=local(1, 5),
        ends_at=ends,
    )


def _journey(session: Session, resident: int, arrived: datetime) -> int:
    return _record(
        session,
        TravelSegment,
        resident,
        mode="rail",
        carrier="CR",
        service_number="G572",
        service_date=arrived.date(),
        dep_station="武汉",
        dep_code="420106",
        dep_at=arrived - timedelta(hours=5),
        arr_station="西安北",
        arr_code="610112",
        arr_at=arrived,
        stops=[],
    )


def _ids(engine: Engine, column: Any) -> list[int]:
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(column)).scalars())


@pytest.fixture
def resident(engine: Engine) -> int:
    with Session(engine) as session, session.begin():
        return add_resident(session, "610113199001011230", "周慧敏", local(1, 1))


def test_lab_results_go_after_their_period_in_local_days(
    engine: Engine, resident: int
) -> None:
    with Session(engine) as session, session.begin():
        gone = _test(session, resident, local(7, 1, 23, 59), "negative")
        kept = _test(session, resident, local(7, 2, 0, 1), "negative")
        recent = _test(session, resident, local(9, 29), "positive")

    with Session(engine) as session, session.begin():
        deleted = purge_records(session, "lab-results", NOW, timedelta(days=90), ZONE)

    assert deleted == 1
    assert gone not in _ids(engine, LabResult.id)
    assert _ids(engine, LabResult.id) == sorted([kept, recent])


def test_a_case_or_order_still_active_is_never_purged(
    engine: Engine, resident: int
) -> None:
    with Session(engine) as session, session.begin():
        open_case = _case(session, resident, None)
        released_long_ago = _case(session, resident, local(3, 1))
        released_lately = _case(session, resident, local(8, 1))
        open_order = _order(session, resident, None)
        ending_later = _order(session, resident, local(10, 30))
        ended_long_ago = _order(session, resident, local(5, 1))

    with Session(engine) as session, session.begin():
        cases = purge_records(session, "cases", NOW, timedelta(days=180), ZONE)
        orders = purge_records(
            session, "quarantine-orders", NOW, timedelta(days=90), ZONE
        )

    assert (cases, orders) == (1, 1)
    assert released_long_ago not in _ids(engine, CaseReport.id)
    assert _ids(engine, CaseReport.id) == sorted([open_case, released_lately])
    assert ended_long_ago not in _ids(engine, QuarantineOrder.id)
    assert _ids(engine, QuarantineOrder.id) == sorted([open_order, ending_later])


def test_a_purged_case_takes_the_exposures_traced_from_it(
    engine: Engine, resident: int
) -> None:
    with Session(engine) as session, session.begin():
        contact = add_resident(session, "610113199202022345", "王伟", local(1, 1))
        case = _case(session, resident, local(3, 1))
        session.add(
            Exposure(
                resident_id=contact,
                case_resident_id=resident,
                case_report_id=case,
                kind="travel",
                place="rail:CR:G572:2026-02-20",
                place_label="G572",
                starts_at=local(2, 20, 9),
                ends_at=local(2, 20, 14),
                overlap_minutes=300,
                provenance={"case": "R-1"},
                found_at=local(3, 1),
            )
        )

    with Session(engine) as session, session.begin():
        deleted = purge_records(session, "cases", NOW, timedelta(days=180), ZONE)

    assert deleted == 1
    assert _ids(engine, Exposure.id) == []
    assert _ids(engine, CaseReport.id) == []


def test_purge_runs_every_record_kind_with_its_own_period(
    engine: Engine, resident: int, tmp_path: Path
) -> None:
    policy = RetentionPolicy(zone=ZONE)
    with Session(engine) as session, session.begin():
        old_test = _test(session, resident, local(6, 1), "negative")
        new_test = _test(session, resident, local(9, 1), "negative")
        old_dose = _record(
            session,
            Vaccination,
            resident,
            administered_at=datetime(2023, 6, 1, tzinfo=ZONE),
            product="Sinovac",
            dose_number=1,
        )
        new_dose = _record(
            session,
            Vaccination,
            resident,
            administered_at=local(1, 10),
            product="Sinovac",
            dose_number=2,
        )
        old_trip = _journey(session, resident, local(7, 1))
        new_trip = _journey(session, resident, local(9, 20))

    report = purge(engine, NOW, policy, SealKeys(tmp_path / "keys"))

    assert {k: report.deleted[k] for k in policy.records} == {
        "lab-results": 1,
        "vaccinations": 1,
        "cases": 0,
        "quarantine-orders": 0,
        "journeys": 1,
    }
    assert report.cutoffs["journeys"] == local(8, 1, 0, 0)
    assert _ids(engine, LabResult.id) == [new_test]
    assert _ids(engine, Vaccination.id) == [new_dose]
    assert _ids(engine, TravelSegment.id) == [new_trip]
    assert old_test not in _ids(engine, LabResult.id)
    assert old_dose not in _ids(engine, Vaccination.id)
    assert old_trip not in _ids(engine, TravelSegment.id)


def test_purging_at_the_shortest_periods_changes_no_colour(
    engine: Engine, resident: int, tmp_path: Path
) -> None:
    floor = record_floor(active_rule_set().lookback)
    policy = RetentionPolicy(zone=ZONE, records=dict.fromkeys(RECORD_KINDS, floor))
    with Session(engine) as session, session.begin():
        # A positive test the rules still read, and one long past.
        _test(session, resident, NOW - timedelta(days=10), "positive")
        _test(session, resident, NOW - floor - timedelta(days=2), "positive")
        recolor_residents(session, [resident], NOW, "test")
    with engine.connect() as connection:
        colour = connection.scalar(
            sa.select(Status.colour).where(Status.resident_id == resident)
        )

    report = purge(engine, NOW, policy, SealKeys(tmp_path / "keys"))
    with Session(engine) as session, session.begin():
        recolor_residents(session, [resident], NOW, "test")
    with engine.connect() as connection:
        again = connection.scalar(
            sa.select(Status.colour).where(Status.resident_id == resident)
        )

    assert report.deleted["lab-results"] == 1
    assert (colour, again) == ("red", "red")


# Configuration.


def test_the_shortest_period_is_the_longest_lookback_plus_a_margin() -> None:
    assert active_rule_set().lookback == timedelta(days=14)
    assert record_floor(timedelta(days=14)) == timedelta(days=21)
    assert record_floor(timedelta(days=30)) == timedelta(days=37)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_variables(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        get_privacy_settings.cache_clear()

    yield set_variables
    get_settings.cache_clear()
    get_privacy_settings.cache_clear()


def test_a_period_shorter_than_the_rules_read_is_refused(environment: Any) -> None:
    environment(HEALTHCODE_JOURNEY_RETENTION_DAYS="10")

    with pytest.raises(ConfigurationError) as refused:
        RetentionPolicy.configured()

    assert str(refused.value) == (
        "HEALTHCODE_JOURNEY_RETENTION_DAYS is 10 days, shorter than the 21 days"
        " that the active rule set and tracing may still read such records"
        " (their longest lookback plus 7 days); set it to 21 or more."
    )


def test_configured_periods_are_read_from_the_environment(environment: Any) -> None:
    environment(
        HEALTHCODE_LAB_RESULT_RETENTION_DAYS="30",
        HEALTHCODE_CASE_RETENTION_DAYS="365",
    )

    policy = RetentionPolicy.configured()

    assert policy.records == {
        "lab-results": timedelta(days=30),
        "vaccinations": timedelta(days=1095),
        "cases": timedelta(days=365),
        "quarantine-orders": timedelta(days=90),
        "journeys": timedelta(days=60),
    }


def test_a_period_beyond_ten_years_is_refused_naming_the_variable(
    environment: Any,
) -> None:
    environment(HEALTHCODE_VACCINATION_RETENTION_DAYS="4000")

    with pytest.raises(ConfigurationError) as refused:
        get_privacy_settings()

    assert "HEALTHCODE_VACCINATION_RETENTION_DAYS" in str(refused.value)
    assert "between 1 and 3660 days" in str(refused.value)
