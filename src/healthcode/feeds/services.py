"""Importing a department's feed file: validate, match, write, recolour.

One file is one transaction. The file is read front to back in rounds of
:data:`ROUND` rows; each round is validated, its residents are looked up in a
few ``IN`` queries, its records are compared with what the department sent
before (by the department's own record id and a hash of the row's content)
and then written with executemany inserts and updates. Memory therefore grows
with the number of record ids in the file, not with the size of its rows.

In the default all-or-nothing mode, the first bad row stops all writing; the
rest of the file is still read and checked, so that the sender learns of
every fault at once, and then the transaction is rolled back. With
``skip_bad`` the good rows are written and the bad ones reported.
"""

from __future__ import annotations

import gc
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from healthcode.feeds.errors import ConcurrentImport, FeedError
from healthcode.feeds.formats import (
    MODE_DEPARTMENTS,
    FeedKind,
    FeedRow,
    IdentityRow,
    ResidentRow,
    RiskAreaRow,
    feed_kind,
    validation_context,
)
from healthcode.feeds.models import (
    CaseReport,
    Declaration,
    FeedImport,
    IdentityRecord,
    LabResult,
    QuarantineOrder,
    RiskArea,
    TravelSegment,
    Vaccination,
)
from healthcode.feeds.readers import BadLine, FeedFile, RawRow, column_like
from healthcode.identity import divisions
from healthcode.identity.documents import Document, parse_document
from healthcode.identity.errors import InvalidDocument
from healthcode.identity.models import Resident, name_values, personal_values
from healthcode.privacy.types import data_keys

__all__ = [
    "NOT_REGISTERED",
    "ImportReport",
    "Progress",
    "Recolor",
    "RowError",
    "import_feed",
]

log = structlog.get_logger(__name__)

# Rows per round. Big enough that the per-query cost of a round vanishes,
# small enough that a round stays a few megabytes.
ROUND = 5000
# SQLite allows 32766 bound parameters per statement; lists of keys are sent
# in slices well below that.
KEY_SLICE = 900
# A risk area reaches back this far before its start: anyone who travelled
# or declared a visit there in that time may need a new colour.
RISK_LOOKBACK = timedelta(days=14)

NOT_REGISTERED = "The row refers to a resident who is not registered."

# How a sending department may be named: as the built-in ones are.
_DEPARTMENT = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")

Recolor = Callable[[Session, set[int], datetime, str], int]
# Called as progress(bytes_read, file_size) after each round.
Progress = Callable[[int, int], None]

_TABLES: dict[str, sa.Table] = {
    "identities": IdentityRecord.__table__,
    "lab-results": LabResult.__table__,
    "vaccinations": Vaccination.__table__,
    "cases": CaseReport.__table__,
    "orders": QuarantineOrder.__table__,
    "travel": TravelSegment.__table__,
    "risk-areas": RiskArea.__table__,
    "declarations": Declaration.__table__,
}

_DOCUMENT_FIELDS = frozenset({"record_id", "doc_kind", "doc_number", "doc_country"})
# What an identity row writes to its own table; the rest goes to the resident.
_IDENTITY_RECORD_FIELDS = ("confirmed_at", "outcome")


@dataclass
class RowError:
    """One fault in one row: the file line it starts on, the field, a sentence."""

    line: int
    field: str | None
    reason: str


@dataclass
class ImportReport:
    """What an import read, wrote and refused."""

    kind: str
    file_name: str
    department: str
    mode: str
    read: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    statuses_changed: int = 0
    errors: list[RowError] = field(default_factory=list)
    committed: bool = False
    affected_residents: set[int] = field(default_factory=set)
    import_id: int | None = None


@dataclass(slots=True)
class _Candidate:
    """A row that passed validation, on its way to the database."""

    line: int
    row: FeedRow
    # The row's values without its record id and document fields.
    values: dict[str, Any]
    document: Document | None
    key: tuple[str, str, str] | None
    digest: str
    resident_id: int | None = None
    existing_id: int | None = None
    unchanged: bool = False


def _digest(values: dict[str, Any], key: tuple[str, str, str] | None) -> str:
    """The first 32 hex digits of the SHA-256 of the row's canonical JSON.

    The document enters in its normal form, so that a number sent once with
    a lowercase x and once with an uppercase X hashes alike; times enter in
    UTC, so that one instant written in two zones does too.
    """
    canonical = orjson.dumps(
        {"values": values, "document": key}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()[:32]


def _slices(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), KEY_SLICE):
        yield items[start : start + KEY_SLICE]


class _Import:
    """The state of one import while its file is read round by round."""

    def __init__(
        self,
        session: Session,
        spec: FeedKind,
        report: ImportReport,
        *,
        now: datetime,
        zone: ZoneInfo,
        future_skew: timedelta,
        skip_bad: bool,
        department: str | None,
    ) -> None:
        self.session = session
        self.spec = spec
        self.report = report
        self.now = now
        self.zone = zone
        self.today = now.astimezone(zone).date()
        self.context = validation_context(zone, now, future_skew)
        self.skip_bad = skip_bad
        self.department = department or spec.department
        self.table = _TABLES[spec.name]
        # record id -> (line, digest) of every good row so far in this file.
        self.seen: dict[str, tuple[int, str]] = {}
        self.bad_lines: set[int] = set()
        # Each document asked for, read once: its normal form, or the reason
        # it was refused. The reason is kept as text and a fresh error raised
        # each time, because raising one exception object again and again
        # chains every traceback (and the frames and rows they hold) to it.
        self.documents: dict[tuple[str, str, str], Document | str] = {}
        self.refused = False
        self.import_id: int | None = None
        self.started = time.monotonic()

    # Faults.

    def fail(self, line: int, field_name: str | None, reason: str) -> None:
        self.report.errors.append(RowError(line, field_name, reason))
        self.bad_lines.add(line)
        if not self.skip_bad:
            self.refused = True

    def _validation_faults(self, line: int, exc: ValidationError) -> None:
        sensitive = self.spec.row.sensitive
        for error in exc.errors(include_url=False, include_input=False):
            loc = error["loc"]
            name = str(loc[0]) if loc else None
            kind = error["type"]
            if kind == "missing":
                reason = "A value is required."
            elif kind == "extra_forbidden":
                reason = f"The {self.spec.name} feed has no such field."
                if name is not None and not column_like(name):
                    # The key itself may be a value, such as an identity
                    # number that a file is keyed by.
                    name = None
                    reason = (
                        f"The row has a key that the {self.spec.name} feed does"
                        " not have."
                    )
            elif kind.startswith("feed_"):
                reason = error["msg"]
            elif name in sensitive:
                reason = "The value is not valid."
            else:
                reason = error["msg"].rstrip(".") + "."
                reason = reason[0].upper() + reason[1:]
            self.fail(line, name, reason)

    # Round by round.

    def round(self, items: list[RawRow | BadLine]) -> None:
        candidates: list[_Candidate] = []
        for item in items:
            self.report.read += 1
            if isinstance(item, BadLine):
                self.fail(item.line, item.field, item.reason)
                continue
            candidate = self._validate(item)
            if candidate is not None:
                candidates.append(candidate)
        if self.spec.has_resident:
            candidates = self._resolve(candidates)
        if self.spec.name == "travel":
            candidates = self._same_department(candidates)
        candidates = self._deduplicate(candidates)
        if self.refused or not candidates:
            return
        self._classify(candidates)
        self._write(candidates)

    def _validate(self, item: RawRow) -> _Candidate | None:
        try:
            row = self.spec.row.model_validate(item.values, context=self.context)
        except ValidationError as exc:
            self._validation_faults(item.line, exc)
            return None
        faults = row.problems()
        document = None
        if isinstance(row, ResidentRow):
            try:
                document = self._document(row)
            except InvalidDocument as exc:
                faults.append(self._document_fault(row, exc))
            else:
                if (
                    isinstance(row, IdentityRow)
                    and row.birth_date is not None
                    and document.birth_date is not None
                    and row.birth_date != document.birth_date
                ):
                    faults.append(
                        (
                            "birth_date",
                            "The birth date differs from the one the identity"
                            " number carries.",
                        )
                    )
        if faults:
            for name, reason in faults:
                self.fail(item.line, name, reason)
            return None
        values = row.model_dump(exclude=_DOCUMENT_FIELDS)
        key = document.key if document is not None else None
        return _Candidate(item.line, row, values, document, key, _digest(values, key))

    def _document(self, row: ResidentRow) -> Document:
        # The same person often appears on many rows of one file (a manifest,
        # daily declarations); each document is read once per import.
        ask = (row.doc_kind, row.doc_number, row.doc_country or "")
        known = self.documents.get(ask)
        if known is None:
            try:
                known = parse_document(*ask, today=self.today)
            except InvalidDocument as exc:
                known = str(exc)
            self.documents[ask] = known
        if isinstance(known, str):
            raise InvalidDocument(known)
        return known

    @staticmethod
    def _document_fault(row: ResidentRow, exc: InvalidDocument) -> tuple[str, str]:
        reason = str(exc)
        # The identity module promises never to repeat a number; this guard
        # keeps that promise here too should a message ever slip.
        if row.doc_number in reason:
            reason = "The document number is not valid for its kind."
        if "country" in reason:
            return ("doc_country", reason)
        if "document kind" in reason:
            return ("doc_kind", reason)
        return ("doc_number", reason)

    def _same_department(self, candidates: list[_Candidate]) -> list[_Candidate]:
        # Only a row that is good in every other way may say which carrier
        # department the file comes from; a rejected first row must not
        # turn every good row after it away.
        kept = []
        for candidate in candidates:
            faults = self._travel_department(candidate.row)
            for name, reason in faults:
                self.fail(candidate.line, name, reason)
            if not faults:
                kept.append(candidate)
        return kept

    def _travel_department(self, row: Any) -> list[tuple[str, str]]:
        department = MODE_DEPARTMENTS[row.mode]
        if self.department is None:
            # A travel file comes from one carrier department; its first good
            # row tells which.
            self.department = department
            self.report.department = department
        if (
            self.department in MODE_DEPARTMENTS.values()
            and department != self.department
        ):
            return [
                (
                    "mode",
                    f"Mode {row.mode} is sent by {department}, but this file comes"
                    f" from {self.department}; send it in a file of its own.",
                )
            ]
        return []

    def _resolve(self, candidates: list[_Candidate]) -> list[_Candidate]:
        known = residents_by_key(
            self.session, (c.key for c in candidates if c.key is not None)
        )
        kept = []
        for candidate in candidates:
            if candidate.document is not None:
                candidate.resident_id = known.get(candidate.key)
            if candidate.resident_id is None and self.spec.name != "identities":
                self.fail(candidate.line, "doc_number", NOT_REGISTERED)
                continue
            kept.append(candidate)
        return kept

    def _deduplicate(self, candidates: list[_Candidate]) -> list[_Candidate]:
        kept = []
        for candidate in candidates:
            record_id = candidate.row.record_id
            earlier = self.seen.get(record_id)
            if earlier is None:
                self.seen[record_id] = (candidate.line, candidate.digest)
                kept.append(candidate)
            elif earlier[1] == candidate.digest:
                # The same record twice in one file is a resend, not a fault.
                self.report.unchanged += 1
            else:
                self.fail(
                    candidate.line,
                    "record_id",
                    f"The record id was used on line {earlier[0]} for a record"
                    " with different content.",
                )
        return kept

    def _classify(self, candidates: list[_Candidate]) -> None:
        table = self.table
        stored: dict[str, tuple[int, str]] = {}
        found = _matching(
            self.session,
            (table.c.source_id, table.c.id, table.c.content_hash),
            [table.c.department == self.department],
            table.c.source_id,
            [c.row.record_id for c in candidates],
        )
        for source_id, record_id, digest in found:
            stored[source_id] = (record_id, digest)
        for candidate in candidates:
            held = stored.get(candidate.row.record_id)
            if held is not None:
                candidate.existing_id = held[0]
                candidate.unchanged = held[1] == candidate.digest

    # Writing.

    def ensure_import_row(self) -> int:
        """The id of this import's row in ``feed_imports``, inserted on first need."""
        if self.import_id is None:
            result = self.session.execute(
                sa.insert(FeedImport.__table__).returning(FeedImport.__table__.c.id),
                {
                    "kind": self.spec.name,
                    "department": self.department or MODE_DEPARTMENTS["rail"],
                    "file_name": self.report.file_name,
                    "sha256": "",
                    "zone": self.zone.key,
                    "mode": self.report.mode,
                    "started_at": self.now,
                    "finished_at": None,
                    "rows_read": 0,
                    "rows_imported": 0,
                    "rows_updated": 0,
                    "rows_unchanged": 0,
                    "rows_rejected": 0,
                    "statuses_changed": 0,
                },
            )
            self.import_id = result.scalar_one()
            self.report.import_id = self.import_id
        return self.import_id

    def _values(self, candidate: _Candidate) -> dict[str, Any]:
        row = candidate.row
        if isinstance(row, IdentityRow):
            values = {name: getattr(row, name) for name in _IDENTITY_RECORD_FIELDS}
        else:
            values = dict(candidate.values)
            if "stops" in values:
                values["stops"] = list(values["stops"])
        values["department"] = self.department
        values["source_id"] = row.record_id
        values["content_hash"] = candidate.digest
        values["import_id"] = self.import_id
        if self.spec.has_resident:
            values["resident_id"] = candidate.resident_id
        return values

    def _write(self, candidates: list[_Candidate]) -> None:
        self.ensure_import_row()
        changed = [c for c in candidates if not c.unchanged]
        self.report.unchanged += len(candidates) - len(changed)
        if not changed:
            return
        created: set[int] = set()
        if self.spec.name == "identities":
            created = self._create_residents(changed)
        table = self.table
        fresh = [c for c in changed if c.existing_id is None]
        corrected = [c for c in changed if c.existing_id is not None]
        old_versions: list[Any] = []
        if corrected:
            old_versions = self._old_versions([c.existing_id for c in corrected])
        if fresh:
            self.session.execute(sa.insert(table), [self._values(c) for c in fresh])
        if corrected:
            updates = []
            for candidate in corrected:
                values = self._values(candidate)
                values["_record"] = candidate.existing_id
                updates.append(values)
            statement = sa.update(table).where(table.c.id == sa.bindparam("_record"))
            self.session.execute(statement, updates)
        self.report.imported += len(fresh)
        self.report.updated += len(corrected)

        affected = self.report.affected_residents
        if self.spec.has_resident:
            affected.update(c.resident_id for c in changed if c.resident_id)
            affected.update(old.resident_id for old in old_versions)
        if self.spec.name == "identities":
            # A resident created just now already carries the answer of the
            # newest of this round's rows about them.
            settle = {c.resident_id for c in changed if c.resident_id is not None}
            settle.update(old.resident_id for old in old_versions)
            self._settle_identities(settle - created, changed)
        if self.spec.name == "risk-areas":
            areas = [
                (c.row.code, c.row.starts_at, c.row.ends_at)
                for c in changed
                if isinstance(c.row, RiskAreaRow)
            ]
            areas += [(old.code, old.starts_at, old.ends_at) for old in old_versions]
            affected.update(self._residents_near(areas))

    def _old_versions(self, record_ids: list[int]) -> list[Any]:
        table = self.table
        if self.spec.name == "risk-areas":
            columns = [table.c.code, table.c.starts_at, table.c.ends_at]
        else:
            columns = [table.c.resident_id]
        found = []
        for chunk in _slices(record_ids):
            query = sa.select(*columns).where(table.c.id.in_(chunk))
            found.extend(self.session.execute(query))
        return found

    def _create_residents(self, changed: list[_Candidate]) -> set[int]:
        """Register the residents these rows name who are not yet known."""
        newest: dict[tuple[str, str, str], _Candidate] = {}
        for candidate in changed:
            if candidate.resident_id is not None or candidate.document is None:
                continue
            key = candidate.key
            assert key is not None
            held = newest.get(key)
            if (
                held is None
                or _identity(candidate).confirmed_at >= _identity(held).confirmed_at
            ):
                newest[key] = candidate
        if not newest:
            return set()
        rows = []
        for key, candidate in newest.items():
            row = _identity(candidate)
            document = candidate.document
            assert document is not None
            born = row.birth_date or document.birth_date
            rows.append(
                {
                    "doc_kind": key[0],
                    "doc_country": key[1],
                    **personal_values(key[2], row.name, born),
                    "birth_date": born,
                    "region_code": row.region_code,
                    "street": row.street,
                    "identity_state": row.outcome,
                    "identity_confirmed_at": row.confirmed_at,
                    "registered_at": self.now,
                }
            )
        residents = Resident.__table__
        statement = sa.insert(residents).returning(
            residents.c.id, sort_by_parameter_order=True
        )
        ids = self.session.execute(statement, rows).scalars().all()
        created = dict(zip(newest, ids, strict=True))
        for candidate in changed:
            if candidate.resident_id is None and candidate.key is not None:
                candidate.resident_id = created[candidate.key]
        return set(ids)

    def _settle_identities(
        self, resident_ids: set[int], changed: list[_Candidate]
    ) -> None:
        """Give each touched resident the outcome of their newest identity record.

        The newest record by ``confirmed_at`` decides, whichever file brought
        it, so that a resend or a late correction of an old answer never
        overrides a newer one. The registry's name, birth date and region
        are taken over only from a confirming record in this file.
        """
        if not resident_ids:
            return
        written = {c.row.record_id: c for c in changed}
        records = self.table
        newest: dict[int, tuple[datetime, int, str, str, str]] = {}
        for chunk in _slices(sorted(resident_ids)):
            query = sa.select(
                records.c.resident_id,
                records.c.confirmed_at,
                records.c.id,
                records.c.outcome,
                records.c.source_id,
                records.c.department,
            ).where(records.c.resident_id.in_(chunk))
            for (
                rid,
                confirmed_at,
                record_id,
                outcome,
                source_id,
                dept,
            ) in self.session.execute(query):
                held = newest.get(rid)
                if held is None or (confirmed_at, record_id) > held[:2]:
                    newest[rid] = (confirmed_at, record_id, outcome, source_id, dept)
        plain: list[dict[str, Any]] = []
        confirming: list[dict[str, Any]] = []
        # A resident whose only answer was corrected to be about another
        # document has no answer left: their identity is being confirmed
        # again, not confirmed by a record that no longer names them.
        for rid in sorted(resident_ids - newest.keys()):
            plain.append(
                {
                    "_resident": rid,
                    "identity_state": "pending",
                    "identity_confirmed_at": None,
                }
            )
        for rid, (confirmed_at, _, outcome, source_id, dept) in newest.items():
            values: dict[str, Any] = {
                "_resident": rid,
                "identity_state": outcome,
                "identity_confirmed_at": confirmed_at,
            }
            candidate = written.get(source_id) if dept == self.department else None
            if candidate is None or outcome != "confirmed":
                plain.append(values)
                continue
            row = _identity(candidate)
            assert candidate.document is not None
            values["region_code"] = row.region_code
            values["_birth_date"] = row.birth_date or candidate.document.birth_date
            values["_street"] = row.street
            values["_name"] = row.name
            confirming.append(values)
        self._name_with_birth_date(confirming)
        residents = Resident.__table__
        statement = sa.update(residents).where(
            residents.c.id == sa.bindparam("_resident")
        )
        if plain:
            self.session.execute(statement, plain)
        if confirming:
            # A confirming record without a birth date or a street keeps what
            # the resident already has.
            statement = statement.values(
                birth_date=sa.func.coalesce(
                    sa.bindparam("_birth_date", type_=sa.Date), residents.c.birth_date
                ),
                street=sa.func.coalesce(
                    sa.bindparam("_street", type_=sa.Text), residents.c.street
                ),
            )
            self.session.execute(statement, confirming)

    def _name_with_birth_date(self, confirming: list[dict[str, Any]]) -> None:
        # The partial name key holds the birth year, and a confirming record
        # without a birth date keeps the one the resident has.
        residents = Resident.__table__
        missing = [v["_resident"] for v in confirming if v["_birth_date"] is None]
        held: dict[int, date | None] = {}
        for chunk in _slices(missing):
            query = sa.select(residents.c.id, residents.c.birth_date).where(
                residents.c.id.in_(chunk)
            )
            held.update((rid, born) for rid, born in self.session.execute(query))
        for values in confirming:
            born = values["_birth_date"] or held.get(values["_resident"])
            values.update(name_values(values.pop("_name"), born))

    def _residents_near(
        self, areas: list[tuple[str, datetime, datetime | None]]
    ) -> set[int]:
        """Residents who travelled through or declared a visit to these areas."""
        found: set[int] = set()
        segments = TravelSegment.__table__
        declarations = Declaration.__table__
        for code, starts_at, ends_at in areas:
            prefix = _area_prefix(code)
            since = starts_at - RISK_LOOKBACK
            until = ends_at or self.now
            query = sa.select(
                segments.c.resident_id,
                segments.c.dep_code,
                segments.c.arr_code,
                segments.c.stops,
            ).where(
                segments.c.dep_at <= until,
                segments.c.arr_at >= since,
                sa.or_(
                    segments.c.dep_code.startswith(prefix),
                    segments.c.arr_code.startswith(prefix),
                    # The stops are JSON; their text holds each code in quotes.
                    # The match is loose on purpose and checked exactly below.
                    sa.cast(segments.c.stops, sa.Text).contains(f'"{prefix}'),
                ),
            )
            for rid, dep_code, arr_code, stops in self.session.execute(query):
                codes = [dep_code, arr_code, *(stop["code"] for stop in stops or ())]
                if any(divisions.within(c, code) for c in codes if _well_formed(c)):
                    found.add(rid)
            start = sa.func.coalesce(
                declarations.c.visited_from, declarations.c.declared_at
            )
            end = sa.func.coalesce(
                declarations.c.visited_to, declarations.c.declared_at
            )
            query = sa.select(declarations.c.resident_id).where(
                declarations.c.visited_code.startswith(prefix),
                start <= until,
                end >= since,
            )
            found.update(self.session.execute(query).scalars())
        return found

    def finish(self, sha256: str) -> None:
        """Record the file's digest and the counts on the import's row."""
        import_id = self.ensure_import_row()
        report = self.report
        elapsed = timedelta(seconds=time.monotonic() - self.started)
        self.session.execute(
            sa.update(FeedImport.__table__)
            .where(FeedImport.__table__.c.id == import_id)
            .values(
                sha256=sha256,
                finished_at=self.now + elapsed,
                rows_read=report.read,
                rows_imported=report.imported,
                rows_updated=report.updated,
                rows_unchanged=report.unchanged,
                rows_rejected=report.rejected,
                statuses_changed=report.statuses_changed,
            )
        )


def _identity(candidate: _Candidate) -> IdentityRow:
    row = candidate.row
    assert isinstance(row, IdentityRow)
    return row


def _area_prefix(code: str) -> str:
    level = divisions.division(code).level
    return code[: {"province": 2, "prefecture": 4, "county": 6}[level]]


def _well_formed(code: Any) -> bool:
    return isinstance(code, str) and len(code) == 6 and code.isdigit()


def import_feed(
    engine: Engine,
    kind: str,
    path: Path,
    *,
    now: datetime,
    zone: ZoneInfo,
    future_skew: timedelta,
    skip_bad: bool = False,
    department: str | None = None,
    recolor: Recolor | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one feed file of ``kind`` in one transaction and report on it.

    ``now`` is the import's clock: rows dated more than ``future_skew``
    after it are refused, and it stamps the import. Naive timestamps in the
    file are read in ``zone``. With ``skip_bad`` false (all-or-nothing), one
    bad row means nothing is written and ``committed`` is false. ``recolor``
    is called inside the transaction, after the records are written, with
    the residents whose records changed; its result is ``statuses_changed``.

    Raises :class:`~healthcode.feeds.errors.FeedError` or its subclasses
    for an unknown kind, a department name that cannot be stored, an
    unknown file format, an unreadable file, or a clash with another import
    writing the same records at the same moment.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC)
    spec = feed_kind(kind)
    if department and not _DEPARTMENT.fullmatch(department):
        # It keys every record the file brings and is stored in a column of
        # 32 characters; PostgreSQL would refuse a longer one only at the
        # first insert, halfway through the import.
        raise FeedError(
            "The department must be named by 1 to 32 lower-case letters, digits"
            " and hyphens, such as health or lab-xian-3."
        )
    report = ImportReport(
        kind=spec.name,
        file_name=path.name,
        department=department or spec.department or MODE_DEPARTMENTS["rail"],
        mode="skip-bad" if skip_bad else "all-or-nothing",
    )
    with (
        FeedFile(path, spec.columns, spec.required) as feed,
        Session(engine) as session,
    ):
        transaction = session.begin()
        try:
            state = _Import(
                session,
                spec,
                report,
                now=now,
                zone=zone,
                future_skew=future_skew,
                skip_bad=skip_bad,
                department=department,
            )
            if feed.problems:
                # A broken header spoils every row under it, whatever the mode.
                for problem in feed.problems:
                    report.errors.append(
                        RowError(problem.line, problem.field, problem.reason)
                    )
                state.refused = True
            else:
                with _collector_paused():
                    _read_rounds(state, feed, progress)
            report.rejected = len(state.bad_lines)
            report.errors.sort(key=lambda error: error.line)
            if state.refused:
                transaction.rollback()
                _refused(report)
                return report
            affected = report.affected_residents
            if recolor is not None and affected:
                cause = f"import:{state.ensure_import_row()}"
                report.statuses_changed = recolor(session, set(affected), now, cause)
            state.finish(feed.sha256)
            transaction.commit()
        except IntegrityError:
            transaction.rollback()
            raise ConcurrentImport(
                f"Another import wrote records of {report.department} with the same"
                f" record ids while {path.name} was being imported; import it again."
            ) from None
        except BaseException:
            transaction.rollback()
            raise
    report.committed = True
    log.info(
        "feed_imported",
        import_id=report.import_id,
        kind=report.kind,
        department=report.department,
        mode=report.mode,
        read=report.read,
        imported=report.imported,
        updated=report.updated,
        unchanged=report.unchanged,
        rejected=report.rejected,
        statuses_changed=report.statuses_changed,
    )
    return report


@contextmanager
def _collector_paused() -> Iterator[None]:
    # An import keeps every record id of the file and a round of rows alive,
    # hundreds of thousands of objects that the cyclic garbage collector
    # would walk again and again for nothing: they hold no cycles and all go
    # at the end. Pausing it makes a big import about a fifth faster.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_rounds(state: _Import, feed: FeedFile, progress: Progress | None) -> None:
    batch: list[RawRow | BadLine] = []
    for item in feed.rows():
        batch.append(item)
        if len(batch) >= ROUND:
            state.round(batch)
            batch = []
            if progress is not None:
                progress(feed.position, feed.size)
    if batch:
        state.round(batch)
    if progress is not None:
        progress(feed.size, feed.size)


def _refused(report: ImportReport) -> None:
    # Nothing was written, so no count of written rows may suggest otherwise.
    report.imported = report.updated = report.unchanged = 0
    report.statuses_changed = 0
    report.affected_residents = set()
    report.import_id = None
    report.committed = False
    log.info(
        "feed_refused",
        kind=report.kind,
        department=report.department,
        read=report.read,
        rejected=report.rejected,
        first_line=report.errors[0].line if report.errors else None,
    )


def residents_by_key(
    session: Session, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], int]:
    """Resident ids for (kind, country, number) keys; unknown keys are absent.

    Numbers are looked up by their blind index, computed here once for each,
    so that the index found tells which asked number it was.
    """
    # Grouped by kind and country so that every query can use the unique
    # index on (doc_kind, doc_country, doc_number_index) from its first column.
    groups: dict[tuple[str, str], dict[str, str]] = {}
    keys_now = data_keys()
    for key in keys:
        kind, country, number = key
        indexes = groups.setdefault((kind, country), {})
        indexes[keys_now.index(number, _DOC_INDEX.type.purpose)] = number
    residents = Resident.__table__
    found: dict[tuple[str, str, str], int] = {}
    for (kind, country), numbers in groups.items():
        rows = _matching(
            session,
            (residents.c.id, sa.type_coerce(_DOC_INDEX, sa.String(64))),
            [residents.c.doc_kind == kind, residents.c.doc_country == country],
            sa.type_coerce(_DOC_INDEX, sa.String(64)),
            sorted(numbers),
            table=residents,
        )
        for rid, index in rows:
            found[(kind, country, numbers[index])] = rid
    return found


# The stored index itself: the numbers are indexed above, once each.
_DOC_INDEX = Resident.__table__.c.doc_number_index


def _matching(
    session: Session,
    columns: Sequence[Any],
    conditions: list[Any],
    key: Any,
    values: Sequence[Any],
    *,
    table: Any = None,
) -> Iterator[Any]:
    """Rows whose ``key`` column holds one of ``values``, in few round trips.

    On PostgreSQL the values go as one array, joined through ``unnest``. A
    long ``IN`` list would do on a fresh connection, but psycopg prepares a
    statement it has run five times, and a generic plan made while a table
    was still small (the first import into a new database) scans it with
    the list as a filter: hundreds of milliseconds a query once the table
    has grown. A join stays a join in any plan. SQLite plans each statement
    anew and looks every listed value up in the index.
    """
    if session.get_bind().dialect.name == "postgresql":
        wanted = (
            sa.func.unnest(sa.bindparam("wanted", type_=ARRAY(key.type)))
            .table_valued("value")
            .render_derived()
        )
        query = (
            sa.select(*columns)
            .select_from(
                (key.table if table is None else table).join(
                    wanted, key == wanted.c.value
                )
            )
            .where(*conditions)
        )
        yield from session.execute(query, {"wanted": list(values)})
        return
    for chunk in _slices(values):
        yield from session.execute(
            sa.select(*columns).where(*conditions, key.in_(chunk))
        )
