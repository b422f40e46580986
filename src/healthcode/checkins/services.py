"""Venues and check-ins: registering a venue, recording uploads, counting, purging.

Uploads come from devices in batches, each scan with the device's own
idempotency key. :func:`record_checkins` decides for every scan one of four
outcomes: it opens a visit (``accepted``), it is one already recorded
(``duplicates``: the same key again, or the same resident at the same venue
at the same instant, whatever offset the time was written in), it falls into
a visit of the same resident at the same venue that was still going on and
extends it (``extended``), or it is refused with a reason. One bad scan does
not spoil the batch, so a device never retries a whole queue forever because
of one broken entry. The caller commits; a device is told the outcome only
after that, so whatever it was told was accepted is durable.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from healthcode.checkins.config import MAX_VISIT, get_checkin_settings
from healthcode.checkins.errors import (
    CheckinError,
    InvalidCheckin,
    InvalidVenue,
    UnknownVenue,
)
from healthcode.checkins.models import Checkin, CheckinRescan, Exposure, Venue
from healthcode.codes.errors import InvalidCode
from healthcode.codes.format import KeyResolver
from healthcode.config import get_settings
from healthcode.db import UTCDateTime
from healthcode.identity import divisions
from healthcode.identity.errors import UnknownDivision
from healthcode.identity.models import Resident

log = structlog.get_logger(__name__)

SOURCES = ("resident-scan", "checkpoint-scan")
DEFAULT_RETENTION = timedelta(days=21)
DEFAULT_FUTURE_SKEW = timedelta(minutes=5)
MAX_NAME = 200
MAX_ADDRESS = 500
# SQLite allows 32766 bound parameters per statement; lists of ids are sent
# in slices well below that.
ID_SLICE = 900

_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


# Venues


def venue_stays() -> dict[str, int]:
    """The configured venue types and their default stays in minutes."""
    return dict(get_checkin_settings().venue_stays)


def register_venue(
    session: Session,
    *,
    name: str,
    address: str,
    region_code: str,
    venue_type: str,
    now: datetime,
    default_stay_minutes: int | None = None,
) -> Venue:
    """Register a venue; its default stay comes from its type unless given.

    The region must be a GB/T 2260 county-level division still in use: a
    venue stands in one district, and risk areas are declared by district.
    """
    stays = venue_stays()
    if venue_type not in stays:
        known = ", ".join(sorted(stays))
        raise InvalidVenue(
            f"The venue type {venue_type!r} is not one of the configured types"
            f" ({known})."
        )
    name = _text(name, "name", MAX_NAME)
    address = _text(address, "address", MAX_ADDRESS)
    _check_region(region_code)
    stay = stays[venue_type] if default_stay_minutes is None else default_stay_minutes
    limit = int(MAX_VISIT.total_seconds() // 60)
    if isinstance(stay, bool) or not isinstance(stay, int) or not 1 <= stay <= limit:
        raise InvalidVenue(
            f"A default stay of {stay!r} minutes is not between 1 and {limit}."
        )
    venue = Venue(
        name=name,
        address=address,
        region_code=region_code,
        venue_type=venue_type,
        default_stay_minutes=stay,
        created_at=_utc(now, "registration time"),
    )
    session.add(venue)
    session.flush()
    log.info("venue_registered", venue_id=venue.id, region=region_code)
    return venue


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidVenue(f"The venue {what} must be text.")
    value = unicodedata.normalize("NFC", value).strip()
    if not value or len(value) > limit:
        raise InvalidVenue(f"The venue {what} must be 1 to {limit} characters long.")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise InvalidVenue(f"The venue {what} holds a control character.")
    return value


def _check_region(code: object) -> None:
    try:
        found = divisions.division(code)  # type: ignore[arg-type]
    except (UnknownDivision, TypeError):
        found = None
    if found is None or found.level != "county" or not found.current:
        raise InvalidVenue(
            f"The venue region {code!r} is not a GB/T 2260 county-level division"
            " in use."
        )


# Check-ins


@dataclass(frozen=True, slots=True)
class CheckinItem:
    """One scan as a device uploads it.

    Times are aware datetimes or ISO 8601 text with an offset; a time
    without one is refused rather than guessed. ``venue_code`` is the poster
    text a resident's phone scanned; when present it is verified, at the
    scan's own time, before the scan counts.
    """

    idempotency_key: str
    venue_id: int
    resident_id: int
    checked_in_at: datetime | str
    source: str = "resident-scan"
    checked_out_at: datetime | str | None = None
    device_id: str | None = None
    venue_code: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A scan that was not recorded, by its place in the upload."""

    index: int
    idempotency_key: str | None
    code: str
    message: str


@dataclass(slots=True)
class CheckinResult:
    accepted: int = 0
    duplicates: int = 0
    extended: int = 0
    refused: list[Refusal] = field(default_factory=list)


@dataclass(slots=True)
class _Scan:
    index: int
    key: str
    venue_id: int
    resident_id: int
    at: datetime
    out: datetime | None
    source: str
    device_id: str | None


@dataclass(slots=True)
class _Visit:
    id: int | None
    start: datetime
    out: datetime | None
    last: datetime | None
    key: str
    source: str
    device_id: str | None
    scans: set[datetime]
    stored: bool = False
    dirty: bool = False
    rescans: list[tuple[str, datetime]] = field(default_factory=list)

    def end(self, stay: timedelta) -> datetime:
        return visit_end(self.start, self.out, self.last, stay)


def visit_end(
    checked_in_at: datetime,
    checked_out_at: datetime | None,
    last_scan_at: datetime | None,
    default_stay: timedelta,
) -> datetime:
    """When a visit ended: its check-out, else its latest scan plus the stay."""
    if checked_out_at is not None:
        return checked_out_at
    return (last_scan_at or checked_in_at) + default_stay


def record_checkins(
    session: Session,
    items: Iterable[CheckinItem],
    *,
    now: datetime,
    venue_keys: KeyResolver | None = None,
    future_skew: timedelta = DEFAULT_FUTURE_SKEW,
    retention: timedelta | None = None,
    zone: ZoneInfo | None = None,
) -> CheckinResult:
    """Record an upload of scans inside ``session``'s transaction.

    ``now`` is the server's clock: a scan dated more than ``future_skew``
    after it, or older than the retention period (which would be purged at
    once), is refused. ``venue_keys`` verifies the venue codes that scans
    carry; a scan that carries one when none are held is a configuration
    mistake and raises :class:`CheckinError`.
    """
    now = _utc(now, "time of upload")
    settings = get_checkin_settings()
    cutoff = retention_cutoff(
        now,
        settings.retention if retention is None else retention,
        zone or get_settings().tz,
    )
    result = CheckinResult()
    scans: list[_Scan] = []
    for index, item in enumerate(items):
        try:
            scans.append(_scan_of(index, item, now, future_skew, cutoff, venue_keys))
        except (InvalidCheckin, InvalidCode) as exc:
            key = getattr(item, "idempotency_key", None)
            shown = key if isinstance(key, str) and _KEY.fullmatch(key) else None
            result.refused.append(Refusal(index, shown, exc.code, str(exc)))
    scans, stays = _known_parties(session, scans, result)
    scans = _new_keys(session, scans, result)
    if scans:
        _apply(session, scans, stays, result)
    log.info(
        "checkins_recorded",
        accepted=result.accepted,
        duplicates=result.duplicates,
        extended=result.extended,
        refused=len(result.refused),
    )
    return result


def _scan_of(
    index: int,
    item: CheckinItem,
    now: datetime,
    skew: timedelta,
    cutoff: datetime,
    venue_keys: KeyResolver | None,
) -> _Scan:
    if not isinstance(item, CheckinItem):
        raise InvalidCheckin(f"Entry {index} of the upload is not a check-in.")
    key = item.idempotency_key
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidCheckin(
            f"Entry {index} has an idempotency key that is not 1 to 64 letters,"
            " digits or . _ : -."
        )
    for what, value in (("venue", item.venue_id), ("resident", item.resident_id)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidCheckin(f"Entry {index} has no valid {what} id.")
    if item.source not in SOURCES:
        raise InvalidCheckin(
            f"Entry {index} has source {item.source!r}; it must be one of"
            f" {', '.join(SOURCES)}."
        )
    device = item.device_id
    if device is not None and (
        not isinstance(device, str) or not 1 <= len(device) <= 64
    ):
        raise InvalidCheckin(
            f"Entry {index} has a device id that is not 1 to 64 characters."
        )
    at = _instant(item.checked_in_at, index, "check-in time")
    out = None
    if item.checked_out_at is not None:
        out = _instant(item.checked_out_at, index, "check-out time")
        if out <= at:
            raise InvalidCheckin(
                f"Entry {index} has a check-out time that is not after its check-in."
            )
        if out - at > MAX_VISIT:
            raise InvalidCheckin(
                f"Entry {index} records a stay longer than {_hours(MAX_VISIT)} hours,"
                " the longest one visit may last."
            )
    for what, moment in (("check-in", at), ("check-out", out)):
        if moment is not None and moment > now + skew:
            raise InvalidCheckin(
                f"Entry {index} has a {what} time in the future; the device clock"
                " may be wrong."
            )
    if at < cutoff:
        raise InvalidCheckin(
            f"Entry {index} is older than the check-in retention period and would"
            " be purged at once."
        )
    if item.venue_code is not None:
        if venue_keys is None:
            raise CheckinError(
                "An upload carries venue codes but no venue keys were given to"
                " verify them."
            )
        from healthcode.checkins.venue_codes import read_venue_code

        code = read_venue_code(item.venue_code, venue_keys, at)
        if code.venue_id != item.venue_id:
            raise InvalidCheckin(
                f"Entry {index} carries the code of another venue than it names."
            )
    return _Scan(
        index, key, item.venue_id, item.resident_id, at, out, item.source, device
    )


def _instant(value: object, index: int, what: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidCheckin(
                f"Entry {index} has a {what} that is not an ISO 8601 time."
            ) from None
    if not isinstance(value, datetime):
        raise InvalidCheckin(f"Entry {index} has a {what} that is not a time.")
    if value.utcoffset() is None:
        raise InvalidCheckin(
            f"Entry {index} has a {what} without a UTC offset; devices must send one."
        )
    return value.astimezone(UTC)


def _known_parties(
    session: Session, scans: list[_Scan], result: CheckinResult
) -> tuple[list[_Scan], dict[int, timedelta]]:
    """Refuse scans that name a venue or a resident nobody registered.

    Returns the scans kept and the default stay of each venue they name,
    read in the same query that finds the venues.
    """
    venues = {
        venue_id: timedelta(minutes=minutes)
        for venue_id, minutes in session.execute(
            sa.select(Venue.id, Venue.default_stay_minutes).where(
                Venue.id.in_(sorted({scan.venue_id for scan in scans}))
            )
        )
    }
    residents = _existing(session, Resident.id, {scan.resident_id for scan in scans})
    kept = []
    for scan in scans:
        if scan.venue_id not in venues:
            message = f"Entry {scan.index} names venue {scan.venue_id}, not registered."
        elif scan.resident_id not in residents:
            message = f"Entry {scan.index} names a resident who is not registered."
        else:
            kept.append(scan)
            continue
        result.refused.append(
            Refusal(scan.index, scan.key, InvalidCheckin.code, message)
        )
    return kept, venues


def _on_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _any(column: Any, values: Iterable[int | str]) -> Any:
    """``column IN (SELECT unnest(:array))``: a whole batch's values at once.

    PostgreSQL only. One array parameter keeps the statement's text the same
    whatever the batch holds, so it is parsed once per connection rather
    than once per upload. The array goes as the text of an array literal,
    which the server reads in one pass; handing the driver a list would
    have it dump every element through a Python call.

    The values are a set to join with, not a list to test each row against:
    ``column = ANY(:array)`` lets the planner pick a scan that compares every
    row with every value, which it does for a table it thinks small. This
    serves tables of settled size whose statistics the planner holds, such
    as the residents; the check-ins, whose day partitions start empty and
    fill during the day, are probed per value instead (see _SEEN_KEYS_PG).
    """
    from sqlalchemy.dialects.postgresql import ARRAY

    literal = sa.bindparam(None, _array_literal(values), type_=sa.Text)
    return column.in_(sa.select(sa.func.unnest(sa.cast(literal, ARRAY(column.type)))))


def _array_literal(values: Iterable[int | str]) -> str:
    # Inside double quotes an array element is read literally except for a
    # backslash, which escapes the next character; so escaping backslashes
    # and quotes is all any text needs, and a quoted number is read as one.
    items = [value if isinstance(value, str) else str(value) for value in values]
    if any("\\" in item or '"' in item for item in items):
        items = [item.replace("\\", "\\\\").replace('"', '\\"') for item in items]
    return '{"' + '","'.join(items) + '"}' if items else "{}"


def _existing(session: Session, column: Any, ids: set[int]) -> set[int]:
    if _on_postgres(session):
        return set(session.scalars(sa.select(column).where(_any(column, ids))))
    found: set[int] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), ID_SLICE):
        chunk = ordered[start : start + ID_SLICE]
        found.update(session.scalars(sa.select(column).where(column.in_(chunk))))
    return found


def _new_keys(
    session: Session, scans: list[_Scan], result: CheckinResult
) -> list[_Scan]:
    """Drop the scans whose key was seen before, here or earlier in the batch."""
    keys = {scan.key for scan in scans}
    seen: set[str] = set()
    if _on_postgres(session):
        seen.update(
            session.scalars(_SEEN_KEYS_PG, {"keys": _array_literal(sorted(keys))})
        )
    else:
        ordered = sorted(keys)
        for start in range(0, len(ordered), ID_SLICE):
            chunk = ordered[start : start + ID_SLICE]
            for column in (Checkin.idempotency_key, CheckinRescan.idempotency_key):
                seen.update(session.scalars(sa.select(column).where(column.in_(chunk))))
    fresh = []
    for scan in scans:
        if scan.key in seen:
            result.duplicates += 1
            continue
        seen.add(scan.key)
        fresh.append(scan)
    return fresh


def _apply(
    session: Session,
    scans: list[_Scan],
    stays: dict[int, timedelta],
    result: CheckinResult,
) -> None:
    """Fold the scans into the visits around them, then write what changed.

    Known shortcoming: two uploads committed at the same moment that carry
    different scans of one resident at one venue each see the other's visit
    missing and may each open one, so the resident shows two overlapping
    visits there. Tracing then finds the same contact twice from different
    instants; nothing is lost, but the count of visits is one too high.
    Serialising uploads per resident (an advisory lock on PostgreSQL) would
    close it at the cost of a lock per upload.
    """
    visits = _visits_near(session, scans)
    created: list[_Visit] = []
    for scan in sorted(scans, key=_PAIR_AND_TIME):
        pair = visits[(scan.resident_id, scan.venue_id)]
        outcome = _fold(scan, pair, stays[scan.venue_id])
        if outcome == "new":
            visit = _Visit(
                None,
                scan.at,
                scan.out,
                None,
                scan.key,
                scan.source,
                scan.device_id,
                {scan.at},
            )
            pair.append(visit)
            if len(pair) > 1:
                pair.sort(key=_START)
            created.append(visit)
        elif outcome == "duplicate":
            result.duplicates += 1
        else:
            result.extended += 1
    ids = _insert_visits(session, created, result, visits)
    _update_visits(session, visits)
    _insert_rescans(session, visits, ids, result)


_VISIT_FIELDS = (
    Checkin.id,
    Checkin.resident_id,
    Checkin.venue_id,
    Checkin.checked_in_at,
    Checkin.checked_out_at,
    Checkin.last_scan_at,
    Checkin.idempotency_key,
    Checkin.source,
    Checkin.device_id,
)

# The batch's lookups on PostgreSQL probe the indexes once per value, from a
# lateral subquery the planner cannot fold into a join. Folded, it is free
# to hash the batch and scan the partitions whole, which it does while its
# estimate of a day's partition is still small (a new day's partition starts
# empty and is analysed only minutes later), at a cost that grows with every
# row the day adds: 7 ms a batch at 30,000 rows against 1 to 2.5 ms for the
# probes. The LIMIT keeps the key probe from being folded (one row is enough
# to know a key was seen), and OFFSET 0 does the same for the visits, all of
# which are wanted.
_SEEN_KEYS_PG = sa.text(
    "SELECT seen.idempotency_key FROM unnest(CAST(:keys AS text[])) AS k(key)"
    " CROSS JOIN LATERAL (SELECT idempotency_key FROM checkins"
    " WHERE idempotency_key = k.key LIMIT 1) AS seen"
    " UNION ALL"
    " SELECT seen.idempotency_key FROM unnest(CAST(:keys AS text[])) AS k(key)"
    " CROSS JOIN LATERAL (SELECT idempotency_key FROM checkin_rescans"
    " WHERE idempotency_key = k.key LIMIT 1) AS seen"
)
_VISITS_NEAR_PG = (
    sa.text(
        f"SELECT {', '.join(f'near.{field.key}' for field in _VISIT_FIELDS)}"
        " FROM unnest(CAST(:residents AS integer[])) AS r(id)"
        " CROSS JOIN LATERAL (SELECT * FROM checkins WHERE resident_id = r.id"
        " AND checked_in_at >= :low AND checked_in_at <= :high OFFSET 0) AS near"
    )
    .bindparams(
        sa.bindparam("low", type_=UTCDateTime()),
        sa.bindparam("high", type_=UTCDateTime()),
    )
    .columns(*_VISIT_FIELDS)
)

_PAIR_AND_TIME = operator.attrgetter("resident_id", "venue_id", "at")
_START = operator.attrgetter("start")


def _visits_near(
    session: Session, scans: list[_Scan]
) -> defaultdict[tuple[int, int], list[_Visit]]:
    """The stored visits of the scans' residents that a scan could fall into."""
    visits: defaultdict[tuple[int, int], list[_Visit]] = defaultdict(list)
    low = min(scan.at for scan in scans) - MAX_VISIT
    high = max(scan.at for scan in scans) + MAX_VISIT
    residents = sorted({scan.resident_id for scan in scans})
    pairs = {(scan.resident_id, scan.venue_id) for scan in scans}
    if _on_postgres(session):
        # The whole batch's residents go in one array, one query.
        chunks = [
            session.execute(
                _VISITS_NEAR_PG,
                {"residents": _array_literal(residents), "low": low, "high": high},
            )
        ]
    else:
        chunks = [
            session.execute(
                sa.select(*_VISIT_FIELDS).where(
                    Checkin.resident_id.in_(residents[start : start + ID_SLICE]),
                    Checkin.checked_in_at >= low,
                    Checkin.checked_in_at <= high,
                )
            )
            for start in range(0, len(residents), ID_SLICE)
        ]
    for rows in chunks:
        for cid, rid, vid, start_at, out, last, key, source, device in rows:
            if (rid, vid) not in pairs:
                continue
            known = {start_at} if last is None else {start_at, last}
            visits[(rid, vid)].append(
                _Visit(cid, start_at, out, last, key, source, device, known, True)
            )
    for pair in visits.values():
        pair.sort(key=lambda visit: visit.start)
    return visits


def _fold(scan: _Scan, pair: list[_Visit], stay: timedelta) -> str:
    """Decide what ``scan`` is to the visits of its resident at its venue.

    A scan at an instant a visit already holds is a duplicate. A scan that
    falls inside a visit (the resident was still checked in) extends it; so
    does one shortly before a visit that would have run into it, which is
    how a late upload of the first scan meets a rescan sent earlier. A visit
    never grows past :data:`MAX_VISIT`; a scan that would stretch it further
    opens a visit of its own.
    """
    for visit in pair:
        if scan.at in visit.scans:
            return "duplicate"
    for visit in pair:
        end = visit.end(stay)
        own_end = scan.out or scan.at + stay
        if visit.start <= scan.at < end:
            start = visit.start
        elif scan.at < visit.start < own_end:
            start = scan.at
        else:
            continue
        out = visit.out
        if scan.out is not None:
            out = scan.out if out is None else max(out, scan.out)
        latest = max(visit.last or visit.start, visit.start, scan.at)
        last = latest if latest != start else None
        if visit_end(start, out, last, stay) - start > MAX_VISIT:
            continue
        visit.start, visit.out, visit.last = start, out, last
        visit.scans.add(scan.at)
        visit.dirty = True
        visit.rescans.append((scan.key, scan.at))
        return "extended"
    return "new"


def _insert_visits(
    session: Session,
    created: list[_Visit],
    result: CheckinResult,
    visits: defaultdict[tuple[int, int], list[_Visit]],
) -> dict[str, int]:
    """Insert the new visits; return their ids by opening key.

    A visit that another upload inserted a moment ago (same key, or same
    resident, venue and instant) is skipped by the database rather than
    failing the batch, and its scan counts as a duplicate.
    """
    if not created:
        return {}
    owners = {id(visit): pair for pair, group in visits.items() for visit in group}
    rows = []
    for visit in created:
        resident_id, venue_id = owners[id(visit)]
        rows.append(
            {
                "venue_id": venue_id,
                "resident_id": resident_id,
                "checked_in_at": visit.start,
                "checked_out_at": visit.out,
                "last_scan_at": visit.last,
                "source": visit.source,
                "idempotency_key": visit.key,
                "device_id": visit.device_id,
            }
        )
    if _on_postgres(session):
        found = session.execute(
            _INSERT_VISITS_PG, {"rows": orjson.dumps(rows).decode("utf-8")}
        )
    else:
        statement = (
            _insert(session, Checkin)
            .on_conflict_do_nothing()
            .returning(Checkin.id, Checkin.idempotency_key)
        )
        found = session.execute(statement, rows)
    ids = {key: cid for cid, key in found.all()}
    for visit in created:
        if visit.key in ids:
            visit.id = ids[visit.key]
            result.accepted += 1
        else:
            result.duplicates += 1
            visit.dirty = False
            result.extended -= len(visit.rescans)
            result.duplicates += len(visit.rescans)
            visit.rescans.clear()
    return ids


_VISIT_COLUMNS = {
    "venue_id": "integer",
    "resident_id": "integer",
    "checked_in_at": "timestamptz",
    "checked_out_at": "timestamptz",
    "last_scan_at": "timestamptz",
    "source": "text",
    "idempotency_key": "text",
    "device_id": "text",
}

# New visits go to PostgreSQL as one JSON document, read into rows by the
# server: a statement of fixed text, prepared once per connection, with one
# parameter that orjson writes in a single call. A multi-row VALUES list
# would send eight parameters per visit, its text (different for every
# batch size) rewritten by the driver and parsed by the server on every
# upload; arrays per column would have the driver dump each element through
# a Python call. Instants travel as RFC 3339 text with their offset, which
# timestamptz reads exactly. Conflicts are skipped as on the other path.
_INSERT_VISITS_PG = sa.text(
    f"INSERT INTO checkins ({', '.join(_VISIT_COLUMNS)})"
    f" SELECT {', '.join(_VISIT_COLUMNS)}"
    " FROM json_to_recordset(CAST(:rows AS json)) AS r("
    + ", ".join(f"{name} {kind}" for name, kind in _VISIT_COLUMNS.items())
    + ") ON CONFLICT DO NOTHING RETURNING id, idempotency_key"
)


def _update_visits(
    session: Session, visits: defaultdict[tuple[int, int], list[_Visit]]
) -> None:
    # Visits opened in this upload were inserted in their final state; only
    # stored ones that absorbed a scan are written back.
    changed = [
        {
            "id": visit.id,
            "checked_in_at": visit.start,
            "checked_out_at": visit.out,
            "last_scan_at": visit.last,
        }
        for group in visits.values()
        for visit in group
        if visit.dirty and visit.stored
    ]
    if changed:
        session.execute(sa.update(Checkin), changed)


def _insert_rescans(
    session: Session,
    visits: defaultdict[tuple[int, int], list[_Visit]],
    ids: dict[str, int],
    result: CheckinResult,
) -> None:
    rows = [
        {"checkin_id": visit.id, "idempotency_key": key, "scanned_at": at}
        for group in visits.values()
        for visit in group
        if visit.id is not None
        for key, at in visit.rescans
    ]
    if not rows:
        return
    statement = (
        _insert(session, CheckinRescan)
        .on_conflict_do_nothing()
        .returning(CheckinRescan.idempotency_key)
    )
    written = len(list(session.execute(statement, rows)))
    # A rescan key that another upload recorded a moment ago was that
    # upload's to count.
    result.extended -= len(rows) - written
    result.duplicates += len(rows) - written


def _insert(session: Session, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


# Reading


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit as its resident is shown it, in local time, never rounded."""

    checkin_id: int
    venue_id: int
    venue_name: str
    checked_in_at: datetime
    checked_out_at: datetime | None
    ends_at: datetime
    duration: timedelta

    @property
    def estimated_end(self) -> bool:
        """True when the end is the venue's default stay, not a check-out."""
        return self.checked_out_at is None

    @property
    def minutes(self) -> float:
        return self.duration.total_seconds() / 60


def resident_visits(
    session: Session, resident_id: int, *, zone: ZoneInfo | None = None
) -> list[Visit]:
    """A resident's own visits, oldest first, with times in ``zone``."""
    zone = zone or get_settings().tz
    rows = session.execute(
        sa.select(
            Checkin.id,
            Checkin.venue_id,
            Venue.name,
            Checkin.checked_in_at,
            Checkin.checked_out_at,
            Checkin.last_scan_at,
            Venue.default_stay_minutes,
        )
        .join(Venue, Venue.id == Checkin.venue_id)
        .where(Checkin.resident_id == resident_id)
        .order_by(Checkin.checked_in_at, Checkin.id)
    )
    visits = []
    for cid, vid, name, start, out, last, stay in rows:
        end = visit_end(start, out, last, timedelta(minutes=stay))
        visits.append(
            Visit(
                cid,
                vid,
                name,
                start.astimezone(zone),
                out.astimezone(zone) if out else None,
                end.astimezone(zone),
                end - start,
            )
        )
    return visits


def checkin_counts(
    session: Session, venue_id: int, day: date, zone: ZoneInfo
) -> list[tuple[int, int]]:
    """How many visits began in each local hour of ``day``; never who.

    Every hour from 0 to 23 is listed, empty ones with zero, so a venue
    operator's chart has no gaps that hint at anything.
    """
    if session.get(Venue, venue_id) is None:
        raise UnknownVenue(f"No venue has the id {venue_id}.")
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(
        UTC
    )
    counts = [0] * 24
    for (moment,) in session.execute(
        sa.select(Checkin.checked_in_at).where(
            Checkin.venue_id == venue_id,
            Checkin.checked_in_at >= start,
            Checkin.checked_in_at < end,
        )
    ):
        counts[moment.astimezone(zone).hour] += 1
    return list(enumerate(counts))


# Retention


def retention_cutoff(now: datetime, retention: timedelta, zone: ZoneInfo) -> datetime:
    """The first instant still kept: local midnight ``retention`` days back.

    Retention is counted in whole local days, so a visit is kept on the day
    it happened and the ``retention`` days after it, and purged on the next.
    """
    local_day = _utc(now, "time").astimezone(zone).date()
    days = max(0, retention // timedelta(days=1))
    first_kept = local_day - timedelta(days=days)
    return datetime.combine(first_kept, time(0), tzinfo=zone).astimezone(UTC)


def purge_checkins(
    session: Session,
    now: datetime,
    retention: timedelta = DEFAULT_RETENTION,
    *,
    zone: ZoneInfo | None = None,
) -> int:
    """Delete visits older than the retention period; return how many went.

    Their rescans go with them, and so do the venue exposures that ended
    before the same cutoff. On PostgreSQL, where check-ins are partitioned
    by local day, the partitions of whole expired days are dropped and only
    older rows elsewhere (the default partition, a partition that straddles
    the cutoff) are deleted one by one.
    """
    from healthcode.partitions import drop_partitions_before

    cutoff = retention_cutoff(now, retention, zone or get_settings().tz)
    old = sa.select(Checkin.id).where(Checkin.checked_in_at < cutoff)
    session.execute(
        sa.delete(CheckinRescan).where(CheckinRescan.checkin_id.in_(old)),
        execution_options={"synchronize_session": False},
    )
    dropped = drop_partitions_before(session.connection(), "checkins", cutoff)
    deleted = (
        dropped
        + session.execute(
            sa.delete(Checkin).where(Checkin.checked_in_at < cutoff),
            execution_options={"synchronize_session": False},
        ).rowcount
    )
    # An exposure at a venue is a trace of two visits; it goes with them.
    # Journeys come from carriers' manifests, whose keeping is not ours.
    exposures = session.execute(
        sa.delete(Exposure).where(Exposure.kind == "venue", Exposure.ends_at < cutoff),
        execution_options={"synchronize_session": False},
    ).rowcount
    log.info(
        "checkins_purged",
        deleted=deleted,
        in_dropped_partitions=dropped,
        exposures=exposures,
        cutoff=cutoff.isoformat(),
    )
    return int(deleted or 0)


# Helpers


def _utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise CheckinError(f"The {what} must be a timezone-aware datetime.")
    return value.astimezone(UTC)


def _hours(span: timedelta) -> int:
    return int(span.total_seconds() // 3600)
