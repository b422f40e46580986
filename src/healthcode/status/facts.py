"""Facts: a resident's records, shaped as the data that rules read.

The rule engine sees one JSON-like document per resident (times are aware
``datetime`` objects, which the CertLogic engine accepts wherever it accepts
a date-time string)::

    {
      "now": <instant of evaluation>,
      "resident": {"identityState", "docKind", "regionCode", "birthDate"},
      "tests": [{"result", "method", "sampledAt",
                 "firstNegativeAfter", "lastNegativeAfter"}],
      "lastNegativeTestAt": <latest negative sample or null>,
      "vaccinations": [{"administeredAt", "product", "doseNumber"}],
      "cases": [{"classification", "onsetAt", "diagnosedAt", "releasedAt"}],
      "orders": [{"kind", "startsAt", "endsAt"}],
      "declarations": [{"declaredAt", "fever", "respiratory",
                        "lastNegativeAfter"}],
      "riskStays": [{"level", "areaCode", "areaName", "from", "to",
                     "minutes", "via"}],
      "declaredRiskStays": [the same, from trips residents declared],
      "exposures": [{"at", "from", "to", "kind", "place", "minutes",
                     "lastNegativeAfter"}],
      "overrides": [{"colour", "reason", "authorRole", "setAt", "expiresAt"}]
    }

``firstNegativeAfter`` and ``lastNegativeAfter`` are the first and last
negative samples taken after the item's own time; rules use them for "not
followed by two negative tests 24 hours apart" and "no negative test since".
``riskStays`` (from railway and flight manifests) and ``declaredRiskStays``
(from trips residents declare) are the parts of a resident's stays that fell
inside a risk area while the area held its level; a train or plane passing through a
station is not a stay, and neither is a connection shorter than the rule's
threshold, because the rule measures ``minutes``.

Every item also carries ``ref``: the record kind, the sending department and
its record id, which is what a reason shows as evidence. An exposure found by
contact tracing names the case's record and the place key (a venue, or a
train carriage or flight on a date); its ``at`` is when the shared time
ended, from which "3 days after" and "the last 14 days" are counted.

``overrides`` are officials' settings of the colour that have not ended by
``now``, newest first; ``expiresAt`` is when each stops, early or not. The
engine applies them over the rules (see :mod:`healthcode.status.engine`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(slots=True)
class ResidentRecords:
    """The raw rows of one resident, as read in bulk by the recolour job."""

    resident_id: int
    identity_state: str
    doc_kind: str
    region_code: str | None
    birth_date: date | None
    tests: list[Sequence[Any]] = field(default_factory=list)
    vaccinations: list[Sequence[Any]] = field(default_factory=list)
    cases: list[Sequence[Any]] = field(default_factory=list)
    orders: list[Sequence[Any]] = field(default_factory=list)
    travel: list[Sequence[Any]] = field(default_factory=list)
    declarations: list[Sequence[Any]] = field(default_factory=list)
    exposures: list[Sequence[Any]] = field(default_factory=list)
    overrides: list[Sequence[Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Area:
    """A risk area: a GB/T 2260 code, optionally a finer named place in it."""

    code: str
    prefix: str
    name: str | None
    level: str
    starts_at: datetime
    ends_at: datetime | None
    department: str
    source_id: str

    def covers(self, code: str, place: str | None) -> bool:
        if not code.startswith(self.prefix):
            return False
        return self.name is None or (place is not None and place == self.name)


def area_prefix(code: str) -> str:
    """The prefix that every code inside ``code`` shares (610100 -> 6101)."""
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


@dataclass(frozen=True, slots=True)
class Stay:
    code: str
    place: str | None
    start: datetime | None
    end: datetime
    ref: dict[str, str]
    via: tuple[str, ...] = ()


def _ref(kind: str, department: str, source_id: str) -> dict[str, str]:
    return {"kind": kind, "department": department, "recordId": source_id}


def build_facts(
    records: ResidentRecords, areas: Sequence[Area], now: datetime
) -> dict[str, Any]:
    """The document the rules read for one resident at ``now``."""
    negatives = sorted(
        row[3] for row in records.tests if row[4] == "negative" and row[3] <= now
    )

    def negatives_after(moment: datetime) -> tuple[datetime | None, datetime | None]:
        index = bisect.bisect_right(negatives, moment)
        if index == len(negatives):
            return None, None
        return negatives[index], negatives[-1]

    tests = []
    for _rid, department, source_id, sampled_at, result, method in records.tests:
        first, last = negatives_after(sampled_at)
        tests.append(
            {
                "result": result,
                "method": method,
                "sampledAt": sampled_at,
                "firstNegativeAfter": first,
                "lastNegativeAfter": last,
                "ref": _ref("lab-result", department, source_id),
            }
        )

    declarations = []
    for row in records.declarations:
        _rid, department, source_id, declared_at, fever, respiratory = row[:6]
        declarations.append(
            {
                "declaredAt": declared_at,
                "fever": fever,
                "respiratory": respiratory,
                "lastNegativeAfter": negatives_after(declared_at)[1],
                "ref": _ref("declaration", department, source_id),
            }
        )

    exposures = []
    for row in records.exposures:
        _rid, department, source_id, kind, place, label, starts, ends, minutes = row
        exposures.append(
            {
                "at": ends,
                "from": starts,
                "to": ends,
                "kind": kind,
                "place": label,
                "minutes": minutes,
                "lastNegativeAfter": negatives_after(ends)[1],
                "ref": {**_ref("exposure", department, source_id), "place": place},
            }
        )

    overrides = []
    for row in records.overrides:
        _rid, override_id, colour, reason, role, set_at, expires_at, ended_at = row
        ends = expires_at if ended_at is None else min(expires_at, ended_at)
        if set_at <= now < ends:
            overrides.append(
                {
                    "colour": colour,
                    "reason": reason,
                    "authorRole": role,
                    "setAt": set_at,
                    "expiresAt": ends,
                    "ref": _ref("override", "officials", f"override-{override_id}"),
                }
            )
    overrides.sort(key=lambda item: item["setAt"], reverse=True)

    return {
        "now": now,
        "resident": {
            "identityState": records.identity_state,
            "docKind": records.doc_kind,
            "regionCode": records.region_code,
            "birthDate": records.birth_date.isoformat() if records.birth_date else None,
        },
        "tests": tests,
        "lastNegativeTestAt": negatives[-1] if negatives else None,
        "vaccinations": [
            {
                "administeredAt": administered_at,
                "product": product,
                "doseNumber": dose,
                "ref": _ref("vaccination", department, source_id),
            }
            for _rid, department, source_id, administered_at, product, dose in (
                records.vaccinations
            )
        ],
        "cases": [
            {
                "classification": classification,
                "onsetAt": onset_at,
                "diagnosedAt": diagnosed_at,
                "isolatedAt": isolated_at,
                "releasedAt": released_at,
                "ref": _ref("case", department, source_id),
            }
            for (
                _rid,
                department,
                source_id,
                classification,
                onset_at,
                diagnosed_at,
                isolated_at,
                released_at,
            ) in records.cases
        ],
        "orders": [
            {
                "kind": kind,
                "startsAt": starts_at,
                "endsAt": ends_at,
                "ref": _ref("order", department, source_id),
            }
            for _rid, department, source_id, kind, starts_at, ends_at in records.orders
        ],
        "declarations": declarations,
        **_risk_stays_by_source(records, areas, now),
        "exposures": exposures,
        "overrides": overrides,
    }


def _risk_stays_by_source(
    records: ResidentRecords, areas: Sequence[Area], now: datetime
) -> dict[str, list[dict[str, Any]]]:
    # Stays from carriers' manifests are a department's record; stays that
    # residents declare are their own word. They are kept in two collections
    # so that a red rule can be held to the first (see rules.ruleset).
    found: dict[str, list[dict[str, Any]]] = {"riskStays": [], "declaredRiskStays": []}
    if not areas:
        return found
    for stay in risk_stays(stays_of(records, now), areas, now):
        declared = stay["ref"]["kind"] == "declaration"
        found["declaredRiskStays" if declared else "riskStays"].append(stay)
    return found


def stays_of(records: ResidentRecords, now: datetime) -> list[Stay]:
    """Where the resident stayed, from travel manifests and declared trips.

    After each arrival the resident stays at the arrival station's division
    until the next departure (or until now, if there is none). Before the
    first known departure the resident was at its station for an unknown time,
    which counts from whenever the risk area began. Stations that a train or
    plane only passed through are kept as ``via`` for the explanation and are
    never stays.
    """
    stays: list[Stay] = []
    segments = sorted(records.travel, key=lambda row: row[8])
    for index, row in enumerate(segments):
        (
            _rid,
            department,
            source_id,
            _mode,
            _carrier,
            _number,
            dep_station,
            dep_code,
            dep_at,
            arr_station,
            arr_code,
            arr_at,
            stops,
        ) = row
        ref = _ref("travel", department, source_id)
        via = tuple(stop.get("code", "") for stop in stops or ())
        if index == 0:
            stays.append(Stay(dep_code, dep_station, None, dep_at, ref))
        following = segments[index + 1][8] if index + 1 < len(segments) else now
        stays.append(
            Stay(arr_code, arr_station, arr_at, max(following, arr_at), ref, via)
        )
    for row in records.declarations:
        _rid, department, source_id, declared_at = row[:4]
        visited_code, visited_place, visited_from, visited_to = row[6:10]
        if visited_code:
            stays.append(
                Stay(
                    visited_code,
                    visited_place,
                    visited_from,
                    visited_to or declared_at,
                    _ref("declaration", department, source_id),
                )
            )
    return stays


def risk_stays(
    stays: Iterable[Stay], areas: Sequence[Area], now: datetime
) -> list[dict[str, Any]]:
    """The overlaps of stays with risk areas while the areas held their level."""
    found = []
    for stay in stays:
        for area in areas:
            if not area.covers(stay.code, stay.place):
                continue
            start = (
                area.starts_at
                if stay.start is None
                else max(stay.start, area.starts_at)
            )
            end = min(stay.end, area.ends_at or now, now)
            if end <= start:
                continue
            found.append(
                {
                    "level": area.level,
                    "areaCode": area.code,
                    "areaName": area.name,
                    "from": start,
                    "to": end,
                    "minutes": int((end - start).total_seconds() // 60),
                    "via": list(stay.via),
                    "ref": stay.ref,
                    "areaRef": _ref("risk-area", area.department, area.source_id),
                }
            )
    return found
