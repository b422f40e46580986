"""Tracing restated the plain way, to check the fast matcher against.

For each case window this walks the case's visits one by one, reads every
visit at that venue, and compares the two intervals with datetimes; then the
same for every segment of the case's journeys against everyone on that
service and date. It shares nothing with :mod:`healthcode.checkins.tracing`
but the window of each case (which is an input to both) and the place key,
so when the two agree on a sample, the sorting, the binary searches and the
integer arithmetic of the fast path are right. It is far too slow for a
city: it is for benchmarks and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from healthcode.checkins.models import Checkin, Venue
from healthcode.checkins.services import retention_cutoff
from healthcode.checkins.tracing import (
    CaseWindow,
    TracingPolicy,
    seat_row,
    travel_place,
)
from healthcode.feeds.models import TravelSegment

#: (resident, case resident, case report, kind, place, start, end, minutes)
Match = tuple[int, int, int, str, str, datetime, datetime, int]


def reference_exposures(
    connection: Connection,
    windows: Sequence[CaseWindow],
    now: datetime,
    policy: TracingPolicy,
) -> set[Match]:
    """Every exposure to the cases in ``windows``, found one pair at a time."""
    cutoff = retention_cutoff(now, policy.retention, policy.zone)
    best: dict[tuple[int, int, str, str, datetime], Match] = {}

    def keep(match: Match) -> None:
        key = (match[0], match[1], match[3], match[4], match[5])
        kept = best.get(key)
        if kept is None or (match[6], match[2]) > (kept[6], kept[2]):
            best[key] = match

    stays = {
        vid: timedelta(minutes=minutes)
        for vid, minutes in connection.execute(
            sa.select(Venue.id, Venue.default_stay_minutes)
        )
    }

    def end_of(row: sa.Row) -> datetime:
        if row.checked_out_at is not None:
            return row.checked_out_at
        return (row.last_scan_at or row.checked_in_at) + stays[row.venue_id]

    for window in windows:
        own = connection.execute(
            sa.select(Checkin.__table__).where(
                Checkin.resident_id == window.resident_id
            )
        ).all()
        for visit in own:
            if visit.checked_in_at < cutoff:
                continue
            begins = max(visit.checked_in_at, window.start)
            ends = min(end_of(visit), window.end)
            if ends <= begins:
                continue
            reach = ends + policy.decay
            others = connection.execute(
                sa.select(Checkin.__table__).where(Checkin.venue_id == visit.venue_id)
            ).all()
            for other in others:
                if other.resident_id == window.resident_id:
                    continue
                if other.checked_in_at < cutoff:
                    continue
                start = max(other.checked_in_at, begins)
                end = min(end_of(other), reach)
                if end <= start:
                    continue
                keep(
                    (
                        other.resident_id,
                        window.resident_id,
                        window.case_report_id,
                        "venue",
                        f"venue:{visit.venue_id}",
                        start,
                        end,
                        (end - start) // timedelta(minutes=1),
                    )
                )

        journeys = connection.execute(
            sa.select(TravelSegment.__table__).where(
                TravelSegment.resident_id == window.resident_id
            )
        ).all()
        for journey in journeys:
            begins = max(journey.dep_at, window.start)
            ends = min(journey.arr_at, window.end)
            if ends <= begins:
                continue
            fellow_rows = connection.execute(
                sa.select(TravelSegment.__table__).where(
                    TravelSegment.service_date == journey.service_date,
                    TravelSegment.service_number == journey.service_number,
                )
            ).all()
            for fellow in fellow_rows:
                if fellow.resident_id == window.resident_id:
                    continue
                if (fellow.mode, fellow.carrier) != (journey.mode, journey.carrier):
                    continue
                if (
                    journey.carriage
                    and fellow.carriage
                    and journey.carriage != fellow.carriage
                ):
                    continue
                if policy.seat_rows is not None:
                    mine, theirs = seat_row(journey.seat), seat_row(fellow.seat)
                    if (
                        mine >= 0
                        and theirs >= 0
                        and abs(mine - theirs) > (policy.seat_rows)
                    ):
                        continue
                start = max(fellow.dep_at, begins)
                end = min(fellow.arr_at, ends)
                if end <= start:
                    continue
                case_row = _segment_tuple(journey)
                place, _label = travel_place(case_row, _segment_tuple(fellow))
                keep(
                    (
                        fellow.resident_id,
                        window.resident_id,
                        window.case_report_id,
                        "travel",
                        place,
                        start,
                        end,
                        (end - start) // timedelta(minutes=1),
                    )
                )
    return set(best.values())


def _segment_tuple(segment: sa.Row) -> tuple[object, ...]:
    return (
        segment.id,
        segment.resident_id,
        segment.department,
        segment.source_id,
        segment.mode,
        segment.carrier,
        segment.service_number,
        segment.service_date,
        segment.carriage,
        segment.seat,
        segment.dep_at,
        segment.arr_at,
    )
