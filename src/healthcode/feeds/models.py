"""Records that departments send, one table per feed kind.

Every record keeps the sending department and that department's own record
id; the pair is unique, which is what makes a second import of the same file
add nothing. ``content_hash`` tells a resent record (unchanged) from a
corrected one (updated).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from healthcode.db import Base, UTCDateTime


class FeedImport(Base):
    __tablename__ = "feed_imports"
    __table_args__ = {"comment": "One row per file handed to the importer."}

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(24))
    department: Mapped[str] = mapped_column(sa.String(32))
    file_name: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    zone: Mapped[str] = mapped_column(sa.String(64))
    mode: Mapped[str] = mapped_column(sa.String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_imported: Mapped[int] = mapped_column(default=0)
    rows_updated: Mapped[int] = mapped_column(default=0)
    rows_unchanged: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    statuses_changed: Mapped[int] = mapped_column(default=0)


class _DepartmentRecord:
    """Columns every department record has."""

    id: Mapped[int] = mapped_column(primary_key=True)
    department: Mapped[str] = mapped_column(sa.String(32))
    source_id: Mapped[str] = mapped_column(
        sa.String(64), comment="The sending department's own record id."
    )
    content_hash: Mapped[str] = mapped_column(sa.String(32))

    @declared_attr
    @classmethod
    def import_id(cls) -> Mapped[int]:
        return mapped_column(sa.ForeignKey("feed_imports.id"))

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Any, ...]:
        return (sa.UniqueConstraint("department", "source_id"),)


class _ResidentRecord(_DepartmentRecord):
    @declared_attr
    @classmethod
    def resident_id(cls) -> Mapped[int]:
        return mapped_column(sa.ForeignKey("residents.id"), index=True)


class IdentityRecord(_ResidentRecord, Base):
    __tablename__ = "identity_records"

    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(
        sa.String(12), comment="confirmed or rejected by the identity registry."
    )


class LabResult(_ResidentRecord, Base):
    __tablename__ = "lab_results"

    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(sa.String(12), comment="pcr or antigen.")
    result: Mapped[str] = mapped_column(sa.String(12), comment="negative or positive.")
    lab: Mapped[str | None] = mapped_column(sa.Text)


class Vaccination(_ResidentRecord, Base):
    __tablename__ = "vaccinations"

    administered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    product: Mapped[str] = mapped_column(sa.Text)
    dose_number: Mapped[int]


class CaseReport(_ResidentRecord, Base):
    __tablename__ = "case_reports"

    classification: Mapped[str] = mapped_column(
        sa.String(16), comment="confirmed or asymptomatic."
    )
    onset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    diagnosed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    isolated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QuarantineOrder(_ResidentRecord, Base):
    __tablename__ = "quarantine_orders"

    kind: Mapped[str] = mapped_column(
        sa.String(24), comment="central-quarantine or home-observation."
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TravelSegment(_ResidentRecord, Base):
    __tablename__ = "travel_segments"

    mode: Mapped[str] = mapped_column(sa.String(8), comment="rail or air.")
    carrier: Mapped[str] = mapped_column(sa.String(16))
    service_number: Mapped[str] = mapped_column(sa.String(16))
    service_date: Mapped[date]
    carriage: Mapped[str | None] = mapped_column(sa.String(8))
    seat: Mapped[str | None] = mapped_column(sa.String(8))
    dep_station: Mapped[str] = mapped_column(sa.Text)
    dep_code: Mapped[str] = mapped_column(sa.String(6))
    dep_at: Mapped[datetime] = mapped_column(UTCDateTime)
    arr_station: Mapped[str] = mapped_column(sa.Text)
    arr_code: Mapped[str] = mapped_column(sa.String(6))
    arr_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stops: Mapped[list[dict[str, str]]] = mapped_column(
        sa.JSON,
        default=list,
        comment="Stations passed through without leaving the train or plane.",
    )


class Declaration(_ResidentRecord, Base):
    __tablename__ = "declarations"

    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fever: Mapped[bool]
    respiratory: Mapped[bool]
    visited_code: Mapped[str | None] = mapped_column(sa.String(6))
    visited_place: Mapped[str | None] = mapped_column(sa.Text)
    visited_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    visited_to: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RiskArea(_DepartmentRecord, Base):
    __tablename__ = "risk_areas"

    code: Mapped[str] = mapped_column(sa.String(6), index=True)
    name: Mapped[str | None] = mapped_column(
        sa.Text, comment="A finer area (street, compound) under the county code."
    )
    level: Mapped[str] = mapped_column(sa.String(8), comment="high, medium or low.")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
