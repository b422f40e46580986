"""A small world for check-in and tracing tests: residents, venues, records.

Records that departments send (cases, lab results, manifests) are written
straight into their tables under one feed-import row; check-ins go through
:func:`record_checkins`, the path devices use.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.checkins.services import (
    CheckinItem,
    CheckinResult,
    record_checkins,
    register_venue,
)
from healthcode.checkins.tracing import TraceReport, TracingPolicy, trace
from healthcode.feeds.models import CaseReport, FeedImport, LabResult, TravelSegment
from healthcode.identity.models import Resident
from healthcode.status.services import recolor_residents

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The clock of every test: 2026-03-10 12:00 in Shanghai.
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=SHANGHAI)
DISTRICT = "610113"


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant in March 2026, Shanghai time."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=SHANGHAI)


def policy(**changes: Any) -> TracingPolicy:
    return TracingPolicy(zone=SHANGHAI, **changes)


class World:
    """Residents, venues and records on one test database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._keys = itertools.count(1)
        self._records = itertools.count(1)
        with Session(engine) as session, session.begin():
            feed = FeedImport(
                kind="test",
                department="test",
                file_name="test",
                sha256="0" * 64,
                zone="Asia/Shanghai",
                mode="test",
                started_at=NOW,
            )
            session.add(feed)
            session.flush()
            self.import_id = feed.id

    def residents(self, count: int) -> list[int]:
        with Session(self.engine) as session, session.begin():
            people = [
                Resident(
                    doc_kind="passport",
                    doc_country="DEU",
                    doc_number=f"T{next(self._records):08d}",
                    name="Test Person",
                    region_code=DISTRICT,
                    identity_state="confirmed",
                    identity_confirmed_at=NOW - timedelta(days=60),
                    registered_at=NOW - timedelta(days=60),
                )
                for _ in range(count)
            ]
            session.add_all(people)
            session.flush()
            ids = [person.id for person in people]
            # Everyone starts green, so that tracing's colours are changes.
            recolor_residents(session, ids, NOW - timedelta(days=30), "register")
            return ids

    def venue(self, venue_type: str = "restaurant", name: str = "Noodle Bar") -> int:
        with Session(self.engine) as session, session.begin():
            return register_venue(
                session,
                name=name,
                address="1 Test Street",
                region_code=DISTRICT,
                venue_type=venue_type,
                now=NOW - timedelta(days=30),
            ).id

    def upload(
        self, items: list[CheckinItem], now: datetime = NOW, **options: Any
    ) -> CheckinResult:
        with Session(self.engine) as session, session.begin():
            return record_checkins(session, items, now=now, **options)

    def item(
        self,
        resident: int,
        venue: int,
        start: datetime | str,
        end: datetime | str | None = None,
        **fields: Any,
    ) -> CheckinItem:
        fields.setdefault("idempotency_key", f"dev-1:{next(self._keys)}")
        return CheckinItem(
            venue_id=venue,
            resident_id=resident,
            checked_in_at=start,
            checked_out_at=end,
            **fields,
        )

    def visit(
        self,
        resident: int,
        venue: int,
        start: datetime,
        end: datetime | None = None,
        now: datetime = NOW,
    ) -> CheckinResult:
        result = self.upload([self.item(resident, venue, start, end)], now=now)
        assert result.refused == [], result.refused
        return result

    def _common(self, department: str) -> dict[str, Any]:
        return {
            "department": department,
            "source_id": f"REC-{next(self._records)}",
            "content_hash": "x",
            "import_id": self.import_id,
        }

    def case(
        self,
        resident: int,
        *,
        diagnosed: datetime,
        onset: datetime | None = None,
        isolated: datetime | None = None,
    ) -> int:
        with Session(self.engine) as session, session.begin():
            report = CaseReport(
                **self._common("health"),
                resident_id=resident,
                classification="confirmed",
                onset_at=onset,
                diagnosed_at=diagnosed,
                isolated_at=isolated,
            )
            session.add(report)
            session.flush()
            return report.id

    def test_result(self, resident: int, sampled: datetime, result: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(
                LabResult(
                    **self._common("health"),
                    resident_id=resident,
                    sampled_at=sampled,
                    method="pcr",
                    result=result,
                )
            )

    def segment(
        self,
        resident: int,
        *,
        number: str,
        day: date,
        dep: datetime,
        arr: datetime,
        carriage: str | None = None,
        seat: str | None = None,
        mode: str = "rail",
        carrier: str = "CR",
    ) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(
                TravelSegment(
                    **self._common("railway" if mode == "rail" else "civil-aviation"),
                    resident_id=resident,
                    mode=mode,
                    carrier=carrier,
                    service_number=number,
                    service_date=day,
                    carriage=carriage,
                    seat=seat,
                    dep_station="北京西",
                    dep_code="110106",
                    dep_at=dep,
                    arr_station="西安北",
                    arr_code="610112",
                    arr_at=arr,
                    stops=[],
                )
            )

    def trace(self, now: datetime = NOW, **options: Any) -> TraceReport:
        options.setdefault("policy", policy())
        with Session(self.engine) as session, session.begin():
            return trace(session, now=now, **options)

    def exposures(self) -> list[tuple[Any, ...]]:
        """(resident, case resident, kind, place, start, end, minutes), sorted."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT resident_id, case_resident_id, kind, place, starts_at,"
                    " ends_at, overlap_minutes FROM exposures"
                )
            ).all()
        return sorted(
            (rid, case, kind, place, _instant(start), _instant(end), minutes)
            for rid, case, kind, place, start, end, minutes in rows
        )

    def count(self, table: str) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count()).select_from(sa.table(table))
            ).scalar_one()


def _instant(value: Any) -> datetime:
    # Raw SQL reads SQLite's stored text; the ORM type is bypassed here on
    # purpose, to see what the table holds.
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo("UTC"))
    return value.astimezone(ZoneInfo("UTC"))
