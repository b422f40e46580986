"""Contact tracing: who shared a venue or a carriage with a reported case.

For each case report the tracer takes the case's infectious window: from a
number of days before symptom onset or, without onset, before the first
positive sample, until isolation (or diagnosis, when no isolation time was
sent). Within it, it finds

* **venue co-presence**: other residents' visits at a venue that overlap the
  case's visit there, the case's visit extended by a decay after the case
  left, because the air of a room stays infectious for a while. A visit
  without a check-out lasts the venue's default stay after its latest scan;
* **travel co-presence**: other passengers on the same train carriage or the
  same flight on the same date whose journeys overlapped the case's, and
  whose seat rows lie within a distance of the case's where both seats are
  known.

Intervals are half-open: a visit that starts at the very minute the case's
extended visit ends shares no time with it. The case is never a contact of
themselves, and check-ins older than the retention period never count, even
before the purge has removed them.

The matching reads only the visits at the venues and the segments on the
services the cases used, sorts them by place and time with numpy, and finds
every overlapping pair with binary searches over the sorted starts (an
interval sweep): a visit can only overlap a case's visit if it started less
than the longest possible visit before the case's visit began. Exposures are
written once; the unique index on (resident, case, kind, place, start) makes
a second run on the same data add nothing. The residents with new exposures
are then recoloured through the rules, whose ``YELLOW-EXPOSURE`` reads them.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from healthcode.checkins.config import MAX_VISIT, get_checkin_settings
from healthcode.checkins.errors import TracingConfigurationError
from healthcode.checkins.models import Checkin, Exposure, Venue
from healthcode.checkins.services import retention_cutoff
from healthcode.config import get_settings
from healthcode.feeds.models import CaseReport, LabResult, TravelSegment

log = structlog.get_logger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MINUTE_US = 60_000_000
# A positive sample older than this before diagnosis belongs to an earlier
# infection, not to the one reported.
SAMPLE_LOOKBACK = timedelta(days=14)
# Ranges or ids per statement; SQLite allows 32766 bound parameters.
_RANGES_PER_QUERY = 250
ID_SLICE = 900
_SEAT_ROW = re.compile(r"\s*0*([0-9]{1,3})")


@dataclass(frozen=True, slots=True)
class TracingPolicy:
    """The numbers of one region's tracing regime."""

    before_onset: timedelta = timedelta(days=2)
    before_sample: timedelta = timedelta(days=2)
    decay: timedelta = timedelta(minutes=30)
    #: Largest seat-row distance that counts where both seats are known;
    #: ``None`` counts the whole carriage or cabin.
    seat_rows: int | None = 3
    retention: timedelta = timedelta(days=21)
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))

    def __post_init__(self) -> None:
        for name in ("before_onset", "before_sample", "decay", "retention"):
            if getattr(self, name) < timedelta(0):
                raise TracingConfigurationError(
                    f"The tracing policy's {name} of {getattr(self, name)} is negative."
                )
        if self.seat_rows is not None and self.seat_rows < 0:
            raise TracingConfigurationError(
                f"The tracing policy's seat-row distance {self.seat_rows} is negative."
            )

    @classmethod
    def from_settings(cls) -> TracingPolicy:
        """The policy that ``HEALTHCODE_*`` settings describe."""
        settings = get_checkin_settings()
        return cls(
            before_onset=timedelta(days=settings.trace_days_before_onset),
            before_sample=timedelta(days=settings.trace_days_before_sample),
            decay=timedelta(minutes=settings.trace_decay_minutes),
            seat_rows=None
            if settings.trace_seat_rows < 0
            else settings.trace_seat_rows,
            retention=settings.retention,
            zone=get_settings().tz,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "beforeOnsetHours": self.before_onset / timedelta(hours=1),
            "beforeSampleHours": self.before_sample / timedelta(hours=1),
            "decayMinutes": self.decay / timedelta(minutes=1),
            "seatRows": self.seat_rows,
        }


@dataclass(frozen=True, slots=True)
class CaseWindow:
    """When one reported case could infect others, and why from then."""

    case_report_id: int
    resident_id: int
    department: str
    source_id: str
    start: datetime
    end: datetime
    basis: str

    def describe(self) -> dict[str, str]:
        return {"from": _iso(self.start), "to": _iso(self.end), "basis": self.basis}


def infectious_windows(
    connection: Connection,
    now: datetime,
    policy: TracingPolicy,
    case_ids: Iterable[int] | None = None,
) -> list[CaseWindow]:
    """The infectious window of every case report (or of ``case_ids``).

    The window opens ``before_onset`` before symptom onset; without onset,
    ``before_sample`` before the first positive sample taken in the two
    weeks up to diagnosis; without either, ``before_sample`` before the
    diagnosis itself. It closes at isolation, or at diagnosis when no
    isolation time was sent, and never later than ``now``.
    """
    query = sa.select(
        CaseReport.id,
        CaseReport.resident_id,
        CaseReport.department,
        CaseReport.source_id,
        CaseReport.onset_at,
        CaseReport.diagnosed_at,
        CaseReport.isolated_at,
    ).order_by(CaseReport.id)
    if case_ids is not None:
        query = query.where(CaseReport.id.in_(sorted(set(case_ids))))
    cases = list(connection.execute(query))
    positives: defaultdict[int, list[datetime]] = defaultdict(list)
    residents = sorted({row[1] for row in cases})
    for start in range(0, len(residents), ID_SLICE):
        chunk = residents[start : start + ID_SLICE]
        for rid, sampled_at in connection.execute(
            sa.select(LabResult.resident_id, LabResult.sampled_at).where(
                LabResult.resident_id.in_(chunk), LabResult.result == "positive"
            )
        ):
            positives[rid].append(sampled_at)
    windows = []
    for cid, rid, department, source_id, onset, diagnosed, isolated in cases:
        if onset is not None:
            start, basis = onset - policy.before_onset, "onset"
        else:
            samples = [
                at
                for at in positives.get(rid, ())
                if diagnosed - SAMPLE_LOOKBACK <= at <= diagnosed
            ]
            if samples:
                start, basis = min(samples) - policy.before_sample, "first-positive"
            else:
                start, basis = diagnosed - policy.before_sample, "diagnosis"
        end = min(isolated or diagnosed, now)
        if end > start:
            windows.append(
                CaseWindow(cid, rid, department, source_id, start, end, basis)
            )
    return windows


# Matching


@dataclass(slots=True)
class Found:
    """Exposures found, as rows ready to write, and counts per case."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    venue: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    travel: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))


def find_exposures(
    connection: Connection,
    windows: Sequence[CaseWindow],
    now: datetime,
    policy: TracingPolicy,
) -> Found:
    """Every exposure to the cases in ``windows``, one row per contact and place.

    When one contact's visit meets the same case at the same place from the
    same instant more than once (two reports of one case, say), the longest
    overlap is kept, which is the row the unique index would keep anyway.
    """
    cutoff = retention_cutoff(now, policy.retention, policy.zone)
    rows = _venue_exposures(connection, windows, cutoff, now, policy)
    rows += _travel_exposures(connection, windows, now, policy)
    return found_of(rows)


def found_of(rows: Iterable[dict[str, Any]]) -> Found:
    """The exposures to write from ``rows`` as matched, in writing order.

    The order is total, whatever order the rows came in, so the exposures
    get the same ids however the matching was split up; the recolour reads
    them back in that order, and a status lists its reasons in it.
    """
    found = Found()
    found.rows = sorted(keep_longest(rows), key=_writing_order)
    for row in found.rows:
        counter = found.venue if row["kind"] == "venue" else found.travel
        counter[row["case_report_id"]] += 1
    return found


def keep_longest(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per contact, case resident, kind, place and start: the longest.

    Rows that tie on the end are told apart by the case report and then by
    the two records matched, so the choice never depends on the order the
    rows arrive in. Every row sharing a key shares its place, so matching
    split by place may keep the longest per part.
    """
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (
            row["resident_id"],
            row["case_resident_id"],
            row["kind"],
            row["place"],
            row["starts_at"],
        )
        kept = best.get(key)
        if kept is None or _preference(row) > _preference(kept):
            best[key] = row
    return list(best.values())


def _preference(row: dict[str, Any]) -> tuple[Any, ...]:
    case, contact = row["provenance"]["case"], row["provenance"]["contact"]
    if row["kind"] == "venue":
        ours, theirs = case["checkinId"], contact["checkinId"]
    else:
        ours, theirs = case["segment"], contact["segment"]
    return (row["ends_at"], row["case_report_id"], ours, theirs)


def _writing_order(row: dict[str, Any]) -> tuple[Any, ...]:
    # After keep_longest, no two rows share all of these.
    return (
        row["case_report_id"],
        row["kind"],
        row["place"],
        row["starts_at"],
        row["resident_id"],
    )


def _venue_exposures(
    connection: Connection,
    windows: Sequence[CaseWindow],
    cutoff: datetime,
    now: datetime,
    policy: TracingPolicy,
) -> list[dict[str, Any]]:
    if not windows:
        return []
    by_resident = windows_by_resident(windows)
    visit_rows = []
    residents = sorted(by_resident)
    for start in range(0, len(residents), ID_SLICE):
        chunk = residents[start : start + ID_SLICE]
        visit_rows += connection.execute(
            case_visits_query(windows, cutoff).where(Checkin.resident_id.in_(chunk))
        ).all()
    if not visit_rows:
        return []
    venues = _venue_facts(connection, {row[2] for row in visit_rows})
    cases = venue_queries(visit_rows, by_resident, venues, policy)
    if not cases:
        return []
    candidates = _visits_at(connection, visit_ranges(cases, cutoff))
    venues.update(
        _venue_facts(connection, {row[2] for row in candidates} - set(venues))
    )
    if not candidates:
        return []
    return match_venue_visits(cases, candidates, venues, now, policy)


#: One case visit clipped to a window: the window, the visit's row, the
#: shared start and end, the end extended by the decay, and whether the
#: visit had no check-out.
VenueQuery = tuple[CaseWindow, Any, datetime, datetime, datetime, bool]


def windows_by_resident(
    windows: Iterable[CaseWindow],
) -> defaultdict[int, list[CaseWindow]]:
    by_resident: defaultdict[int, list[CaseWindow]] = defaultdict(list)
    for window in windows:
        by_resident[window.resident_id].append(window)
    return by_resident


def case_visits_query(windows: Sequence[CaseWindow], cutoff: datetime) -> Any:
    """The visits that can be a case's own visits inside their window."""
    latest = max(window.end for window in windows)
    return sa.select(*_VISIT_COLUMNS).where(
        Checkin.checked_in_at >= cutoff, Checkin.checked_in_at < latest
    )


def venue_queries(
    visit_rows: Iterable[Any],
    by_resident: dict[int, list[CaseWindow]],
    venues: dict[int, tuple[timedelta, str]],
    policy: TracingPolicy,
) -> list[VenueQuery]:
    """One query interval per case visit, clipped to the window and extended
    by the decay after the case left."""
    cases: list[VenueQuery] = []
    for row in visit_rows:
        cid, rid, vid, start_at, out, last = row
        if rid not in by_resident:
            continue
        end_at = _end(start_at, out, last, venues[vid][0])
        for window in by_resident[rid]:
            begins = max(start_at, window.start)
            ends = min(end_at, window.end)
            if ends > begins:
                cases.append(
                    (window, row, begins, ends, ends + policy.decay, out is None)
                )
    return cases


def match_venue_visits(
    cases: Sequence[VenueQuery],
    candidates: Sequence[Any],
    venues: dict[int, tuple[timedelta, str]],
    now: datetime,
    policy: TracingPolicy,
) -> list[dict[str, Any]]:
    """Exposures between the case visits and the candidate visits.

    Only visits at the same venue can pair, so the candidates may be split
    by venue and each part matched on its own.
    """
    if not cases or not candidates:
        return []
    count = len(candidates)
    c_id = np.fromiter((row[0] for row in candidates), np.int64, count)
    c_res = np.fromiter((row[1] for row in candidates), np.int64, count)
    c_ven = np.fromiter((row[2] for row in candidates), np.int64, count)
    c_start = np.fromiter((_us(row[3]) for row in candidates), np.int64, count)
    c_open = np.fromiter((row[4] is None for row in candidates), bool, count)
    c_end = np.fromiter(
        (_us(_end(row[3], row[4], row[5], venues[row[2]][0])) for row in candidates),
        np.int64,
        count,
    )
    q_count = len(cases)
    q_ven = np.fromiter((row[2] for _, row, *_ in cases), np.int64, q_count)
    q_res = np.fromiter((w.resident_id for w, *_ in cases), np.int64, q_count)
    q_start = np.fromiter((_us(c[2]) for c in cases), np.int64, q_count)
    q_reach = np.fromiter((_us(c[4]) for c in cases), np.int64, q_count)

    pairs_q, pairs_c = _sweep(
        c_ven, c_start, q_ven, q_start - MAX_VISIT // _US, q_reach
    )
    # The sweep found every visit that started in time; keep those that were
    # still there when the case came, and that are somebody else's.
    keep = (c_end[pairs_c] > q_start[pairs_q]) & (c_res[pairs_c] != q_res[pairs_q])
    pairs_q, pairs_c = pairs_q[keep], pairs_c[keep]
    o_start = np.maximum(c_start[pairs_c], q_start[pairs_q])
    o_end = np.minimum(c_end[pairs_c], q_reach[pairs_q])

    found_at = now
    decay_minutes = policy.decay / timedelta(minutes=1)
    rows = []
    for q, c, begins, ends in zip(
        pairs_q.tolist(),
        pairs_c.tolist(),
        o_start.tolist(),
        o_end.tolist(),
        strict=True,
    ):
        window, case_row, case_from, case_to, _reach, case_open = cases[q]
        vid = int(c_ven[c])
        rows.append(
            {
                "resident_id": int(c_res[c]),
                "case_resident_id": window.resident_id,
                "case_report_id": window.case_report_id,
                "kind": "venue",
                "place": f"venue:{vid}",
                "place_label": venues[vid][1],
                "venue_id": vid,
                "starts_at": _instant(begins),
                "ends_at": _instant(ends),
                "overlap_minutes": (ends - begins) // _MINUTE_US,
                "provenance": {
                    "case": {
                        "department": window.department,
                        "recordId": window.source_id,
                        "checkinId": case_row[0],
                        "from": _iso(case_from),
                        "to": _iso(case_to),
                        "estimatedEnd": case_open,
                    },
                    "contact": {
                        "checkinId": int(c_id[c]),
                        "from": _iso(_instant(int(c_start[c]))),
                        "to": _iso(_instant(int(c_end[c]))),
                        "estimatedEnd": bool(c_open[c]),
                    },
                    "decayMinutes": decay_minutes,
                    "window": window.describe(),
                    "overlapSeconds": (ends - begins) // 1_000_000,
                },
                "found_at": found_at,
            }
        )
    return rows


_VISIT_COLUMNS = (
    Checkin.id,
    Checkin.resident_id,
    Checkin.venue_id,
    Checkin.checked_in_at,
    Checkin.checked_out_at,
    Checkin.last_scan_at,
)


def visit_ranges(
    cases: Sequence[VenueQuery], cutoff: datetime
) -> list[tuple[int, datetime, datetime]]:
    """Where and when a visit must begin to meet one of ``cases``.

    Per venue, ``[low, high)`` ranges of check-in times, sorted and
    disjoint: overlapping ranges are merged, so no visit is read twice.
    """
    ranges = [
        (row[2], begins - MAX_VISIT, reach) for _, row, begins, _, reach, _ in cases
    ]
    merged: list[tuple[int, datetime, datetime]] = []
    for vid, low, high in sorted(ranges):
        low = max(low, cutoff)
        if high <= low:
            continue
        if merged and merged[-1][0] == vid and low <= merged[-1][2]:
            merged[-1] = (vid, merged[-1][1], max(merged[-1][2], high))
        else:
            merged.append((vid, low, high))
    return merged


def _visits_at(
    connection: Connection, merged: list[tuple[int, datetime, datetime]]
) -> list[Any]:
    """Visits at each venue that began inside one of its ranges; each range
    is one index range scan on (venue, check-in time)."""
    rows: list[Any] = []
    for start in range(0, len(merged), _RANGES_PER_QUERY):
        chunk = merged[start : start + _RANGES_PER_QUERY]
        condition = sa.or_(
            *(
                sa.and_(
                    Checkin.venue_id == vid,
                    Checkin.checked_in_at >= low,
                    Checkin.checked_in_at < high,
                )
                for vid, low, high in chunk
            )
        )
        rows += connection.execute(sa.select(*_VISIT_COLUMNS).where(condition)).all()
    return rows


def _venue_facts(
    connection: Connection, ids: set[int]
) -> dict[int, tuple[timedelta, str]]:
    facts: dict[int, tuple[timedelta, str]] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), ID_SLICE):
        chunk = ordered[start : start + ID_SLICE]
        for vid, stay, name in connection.execute(
            sa.select(Venue.id, Venue.default_stay_minutes, Venue.name).where(
                Venue.id.in_(chunk)
            )
        ):
            facts[vid] = (timedelta(minutes=stay), name)
    return facts


def _sweep(
    place: np.ndarray,
    start: np.ndarray,
    q_place: np.ndarray,
    q_low: np.ndarray,
    q_high: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (query, item) where the item is at the query's place and starts
    in ``[q_low, q_high)``.

    The items are ordered by place and start once; each query is then two
    binary searches over a combined key (dense place rank, start), and the
    pairs come out of one ``repeat``. Item indices refer to the input order.
    """
    if len(place) == 0 or len(q_place) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty
    order = np.lexsort((start, place))
    places = np.unique(place)
    base = min(int(start.min()), int(q_low.min()))
    span = max(int(start.max()), int(q_high.max())) - base + 1
    if span * (len(places) + 1) >= 2**62:
        raise TracingConfigurationError(
            "The tracing sweep spans too long a time for its places; trace the"
            " cases in smaller groups."
        )
    item_rank = np.searchsorted(places, place[order])
    keys = item_rank * span + (start[order] - base)
    rank = np.searchsorted(places, q_place)
    known = (rank < len(places)) & (
        places[np.minimum(rank, len(places) - 1)] == q_place
    )
    lows = np.searchsorted(keys, rank * span + (q_low - base), "left")
    highs = np.searchsorted(keys, rank * span + (q_high - base), "left")
    counts = np.where(known, np.maximum(highs - lows, 0), 0)
    total = int(counts.sum())
    pairs_q = np.repeat(np.arange(len(q_place), dtype=np.int64), counts)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(
        np.cumsum(counts) - counts, counts
    )
    pairs_c = order[np.repeat(lows, counts) + offsets]
    return pairs_q, pairs_c


def _travel_exposures(
    connection: Connection,
    windows: Sequence[CaseWindow],
    now: datetime,
    policy: TracingPolicy,
) -> list[dict[str, Any]]:
    if not windows:
        return []
    by_resident = windows_by_resident(windows)
    segments = []
    residents = sorted(by_resident)
    for start in range(0, len(residents), ID_SLICE):
        chunk = residents[start : start + ID_SLICE]
        segments += connection.execute(
            journeys_query(windows).where(TravelSegment.resident_id.in_(chunk))
        ).all()
    cases = travel_queries(segments, by_resident)
    if not cases:
        return []
    services = travel_services(cases)
    candidates = []
    for start in range(0, len(services), _RANGES_PER_QUERY):
        chunk = services[start : start + _RANGES_PER_QUERY]
        condition = sa.or_(
            *(
                sa.and_(
                    TravelSegment.service_date == day,
                    TravelSegment.service_number == number,
                )
                for day, number in chunk
            )
        )
        candidates += connection.execute(
            sa.select(*_SEGMENT_COLUMNS).where(condition)
        ).all()
    return match_journeys(cases, candidates, now, policy)


#: One case journey clipped to a window: the window, the segment's row and
#: the shared start and end.
TravelQuery = tuple[CaseWindow, Any, datetime, datetime]


def journeys_query(windows: Sequence[CaseWindow]) -> Any:
    """The journeys that can meet a window: those under way inside one.

    A case's own journeys are among them, and so is every journey that can
    share time with one.
    """
    earliest = min(window.start for window in windows)
    latest = max(window.end for window in windows)
    return sa.select(*_SEGMENT_COLUMNS).where(
        TravelSegment.dep_at < latest, TravelSegment.arr_at > earliest
    )


def travel_queries(
    segments: Iterable[Any], by_resident: dict[int, list[CaseWindow]]
) -> list[TravelQuery]:
    cases: list[TravelQuery] = []
    for row in segments:
        for window in by_resident.get(row[1], ()):
            begins = max(row[10], window.start)
            ends = min(row[11], window.end)
            if ends > begins:
                cases.append((window, row, begins, ends))
    return cases


def travel_services(cases: Sequence[TravelQuery]) -> list[tuple[date, str]]:
    """The (service date, number) of each case journey, sorted."""
    return sorted({(row[7], row[6]) for _, row, *_ in cases})


def match_journeys(
    cases: Sequence[TravelQuery],
    candidates: Sequence[Any],
    now: datetime,
    policy: TracingPolicy,
) -> list[dict[str, Any]]:
    """Exposures between the case journeys and the candidate journeys.

    Only journeys of one service pair, so the candidates may be split by
    service and each part matched on its own.
    """
    if not cases or not candidates:
        return []
    # Dense codes for the service (mode, carrier, number, date) and carriage.
    codes: dict[tuple[Any, ...], int] = {}
    carriages: dict[str, int] = {}

    def service(row: Any) -> int:
        return codes.setdefault((row[4], row[5], row[6], row[7]), len(codes))

    def carriage(row: Any) -> int:
        value = row[8]
        return -1 if not value else carriages.setdefault(value, len(carriages))

    count = len(candidates)
    c_svc = np.fromiter((service(row) for row in candidates), np.int64, count)
    c_car = np.fromiter((carriage(row) for row in candidates), np.int64, count)
    c_seat = np.fromiter((seat_row(row[9]) for row in candidates), np.int64, count)
    c_res = np.fromiter((row[1] for row in candidates), np.int64, count)
    c_dep = np.fromiter((_us(row[10]) for row in candidates), np.int64, count)
    c_arr = np.fromiter((_us(row[11]) for row in candidates), np.int64, count)
    q_count = len(cases)
    q_svc = np.fromiter((service(row) for _, row, *_ in cases), np.int64, q_count)
    q_car = np.fromiter((carriage(row) for _, row, *_ in cases), np.int64, q_count)
    q_seat = np.fromiter((seat_row(row[9]) for _, row, *_ in cases), np.int64, q_count)
    q_res = np.fromiter((w.resident_id for w, *_ in cases), np.int64, q_count)
    q_from = np.fromiter((_us(c[2]) for c in cases), np.int64, q_count)
    q_to = np.fromiter((_us(c[3]) for c in cases), np.int64, q_count)

    # Every passenger of the same service and date, whatever their times.
    zeros = np.zeros(count, np.int64)
    pairs_q, pairs_c = _sweep(
        c_svc, zeros, q_svc, np.zeros(q_count, np.int64), np.ones(q_count, np.int64)
    )
    same_carriage = (
        (q_car[pairs_q] < 0) | (c_car[pairs_c] < 0) | (q_car[pairs_q] == c_car[pairs_c])
    )
    keep = (
        (c_res[pairs_c] != q_res[pairs_q])
        & same_carriage
        & (c_dep[pairs_c] < q_to[pairs_q])
        & (c_arr[pairs_c] > q_from[pairs_q])
    )
    if policy.seat_rows is not None:
        both_known = (q_seat[pairs_q] >= 0) & (c_seat[pairs_c] >= 0)
        near = np.abs(q_seat[pairs_q] - c_seat[pairs_c]) <= policy.seat_rows
        keep &= ~both_known | near
    pairs_q, pairs_c = pairs_q[keep], pairs_c[keep]
    o_start = np.maximum(c_dep[pairs_c], q_from[pairs_q])
    o_end = np.minimum(c_arr[pairs_c], q_to[pairs_q])

    rows = []
    for q, c, begins, ends in zip(
        pairs_q.tolist(),
        pairs_c.tolist(),
        o_start.tolist(),
        o_end.tolist(),
        strict=True,
    ):
        window, case_row, _, _ = cases[q]
        contact = candidates[c]
        place, label = travel_place(case_row, contact)
        rows.append(
            {
                "resident_id": contact[1],
                "case_resident_id": window.resident_id,
                "case_report_id": window.case_report_id,
                "kind": "travel",
                "place": place,
                "place_label": label,
                "venue_id": None,
                "starts_at": _instant(begins),
                "ends_at": _instant(ends),
                "overlap_minutes": (ends - begins) // _MINUTE_US,
                "provenance": {
                    "case": {
                        "department": window.department,
                        "recordId": window.source_id,
                        "segment": case_row[2],
                        "segmentRecordId": case_row[3],
                    },
                    "contact": {
                        "segment": contact[2],
                        "segmentRecordId": contact[3],
                        "seat": contact[9],
                    },
                    "seatRowsApart": _rows_apart(case_row[9], contact[9]),
                    "seatRows": policy.seat_rows,
                    "window": window.describe(),
                    "overlapSeconds": (ends - begins) // 1_000_000,
                },
                "found_at": now,
            }
        )
    return rows


_SEGMENT_COLUMNS = (
    TravelSegment.id,
    TravelSegment.resident_id,
    TravelSegment.department,
    TravelSegment.source_id,
    TravelSegment.mode,
    TravelSegment.carrier,
    TravelSegment.service_number,
    TravelSegment.service_date,
    TravelSegment.carriage,
    TravelSegment.seat,
    TravelSegment.dep_at,
    TravelSegment.arr_at,
)


def seat_row(seat: str | None) -> int:
    """The row number of a seat such as ``12F`` or ``05A``; -1 when unknown."""
    if not seat:
        return -1
    match = _SEAT_ROW.match(seat)
    return int(match.group(1)) if match else -1


def _rows_apart(case_seat: str | None, seat: str | None) -> int | None:
    case_row, row = seat_row(case_seat), seat_row(seat)
    return abs(case_row - row) if case_row >= 0 and row >= 0 else None


def travel_place(case_row: Any, contact: Any) -> tuple[str, str]:
    """The place key and label of a shared journey.

    The carriage is the case's where known, else the contact's; a flight
    has none, and its cabin is the place.
    """
    mode, carrier, number, day, case_carriage = case_row[4:9]
    carriage = case_carriage or contact[8]
    place = f"{mode}:{carrier}:{number}:{day.isoformat()}"
    label = f"{number} {day.isoformat()}"
    if carriage:
        place += f":{carriage}"
        label += f" carriage {carriage}"
    return place, label


# Writing and the whole run


@dataclass(slots=True)
class CaseTrace:
    """What tracing found for one case report."""

    case_report_id: int
    department: str
    source_id: str
    window: CaseWindow
    venue_found: int = 0
    travel_found: int = 0
    written: int = 0


@dataclass(slots=True)
class TraceReport:
    cases: list[CaseTrace] = field(default_factory=list)
    found: int = 0
    written: int = 0
    statuses_changed: int = 0
    find_seconds: float = 0.0
    write_seconds: float = 0.0
    recolor_seconds: float = 0.0
    exposed_residents: list[int] = field(default_factory=list)


Recolor = Callable[[Session, set[int], datetime, str], int]


def trace(
    session: Session,
    *,
    now: datetime,
    policy: TracingPolicy | None = None,
    case_ids: Iterable[int] | None = None,
    recolor: Recolor | None = None,
) -> TraceReport:
    """Trace every case (or ``case_ids``), write new exposures, recolour.

    Everything happens in ``session``'s transaction, so the exposures and
    the colours they cause commit together. ``recolor`` defaults to
    :func:`healthcode.status.services.recolor_residents`; it is given the
    residents whose exposures are new, so a second run recolours nobody.
    """
    if now.utcoffset() is None:
        raise TracingConfigurationError("The tracing clock must be timezone-aware.")
    now = now.astimezone(UTC)
    policy = policy or TracingPolicy.from_settings()
    if recolor is None:
        from healthcode.status.services import recolor_residents

        recolor = recolor_residents
    connection = session.connection()
    report = TraceReport()
    started = time.perf_counter()
    windows = infectious_windows(connection, now, policy, case_ids)
    found = find_exposures(connection, windows, now, policy)
    report.find_seconds = time.perf_counter() - started
    return record_exposures(session, windows, found, now, recolor, report)


def record_exposures(
    session: Session,
    windows: Sequence[CaseWindow],
    found: Found,
    now: datetime,
    recolor: Recolor,
    report: TraceReport,
) -> TraceReport:
    """Write what tracing found and recolour the newly exposed, in
    ``session``'s transaction; ``report`` gets the counts."""
    connection = session.connection()
    started = time.perf_counter()
    written = write_exposures(connection, found.rows)
    report.write_seconds = time.perf_counter() - started
    report.found = len(found.rows)
    report.written = len(written)
    per_case: defaultdict[int, int] = defaultdict(int)
    for _rid, case_id in written:
        per_case[case_id] += 1
    for window in windows:
        report.cases.append(
            CaseTrace(
                window.case_report_id,
                window.department,
                window.source_id,
                window,
                found.venue.get(window.case_report_id, 0),
                found.travel.get(window.case_report_id, 0),
                per_case.get(window.case_report_id, 0),
            )
        )
    report.exposed_residents = sorted({rid for rid, _ in written})
    if report.exposed_residents:
        started = time.perf_counter()
        report.statuses_changed = recolor(
            session, set(report.exposed_residents), now, "trace"
        )
        report.recolor_seconds = time.perf_counter() - started
    log.info(
        "traced",
        cases=len(windows),
        found=report.found,
        written=report.written,
        statuses_changed=report.statuses_changed,
        find_seconds=round(report.find_seconds, 3),
        write_seconds=round(report.write_seconds, 3),
    )
    return report


_EXPOSURE_COLUMNS = (
    "resident_id",
    "case_resident_id",
    "case_report_id",
    "kind",
    "place",
    "place_label",
    "venue_id",
    "starts_at",
    "ends_at",
    "overlap_minutes",
    "provenance",
    "found_at",
)


def write_exposures(
    connection: Connection, rows: Sequence[dict[str, Any]]
) -> list[tuple[int, int]]:
    """Insert the exposures not yet recorded; return (resident, case report)
    of each one written.

    The unique index decides what is already there, so two tracers running
    at once cannot write one exposure twice.
    """
    if not rows:
        return []
    if connection.dialect.name == "postgresql":
        return _write_postgres(connection, rows)
    from sqlalchemy.dialects.sqlite import insert

    statement = (
        insert(Exposure)
        .on_conflict_do_nothing()
        .returning(Exposure.resident_id, Exposure.case_report_id)
    )
    written: list[tuple[int, int]] = []
    for start in range(0, len(rows), 5000):
        result = connection.execute(statement, list(rows[start : start + 5000]))
        written += [(rid, cid) for rid, cid in result]
    return written


def _write_postgres(
    connection: Connection, rows: Sequence[dict[str, Any]]
) -> list[tuple[int, int]]:
    # COPY into a transaction-local table, then one INSERT ... ON CONFLICT
    # from it: psycopg would otherwise send one statement per row.
    columns = ", ".join(_EXPOSURE_COLUMNS)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS exposures_incoming"
            f" ON COMMIT DELETE ROWS AS SELECT {columns} FROM exposures WITH NO DATA"
        )
        with cursor.copy(f"COPY exposures_incoming ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        orjson.dumps(row[name]).decode()
                        if name == "provenance"
                        else row[name]
                        for name in _EXPOSURE_COLUMNS
                    ]
                )
        cursor.execute(
            f"INSERT INTO exposures ({columns}) SELECT {columns}"
            " FROM exposures_incoming ON CONFLICT DO NOTHING"
            " RETURNING resident_id, case_report_id"
        )
        written = [(int(rid), int(cid)) for rid, cid in cursor.fetchall()]
        cursor.execute("DELETE FROM exposures_incoming")
    finally:
        cursor.close()
    return written


# Small helpers


def _end(
    start: datetime, out: datetime | None, last: datetime | None, stay: timedelta
) -> datetime:
    if out is not None:
        return out
    return (last or start) + stay


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // _US


def _instant(microseconds: int) -> datetime:
    return EPOCH + timedelta(microseconds=microseconds)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
