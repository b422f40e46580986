"""Venues, check-ins and the exposures that tracing finds.

A check-in is one visit: the scan that opened it, its check-out when one was
recorded, and the latest rescan that it absorbed. Its end is the check-out,
or else the latest scan plus the venue's default stay; no stay is rounded.
The uniqueness rules are what make uploads idempotent: a scan's idempotency
key is recorded once (on the visit it opened, or as a rescan of one), and a
resident has at most one visit starting at one instant at one venue, so the
same scan sent again with its time in another offset is still one visit.

Uniqueness is declared with unique indexes rather than constraints so that a
bulk load can drop and rebuild them on both backends.

On PostgreSQL ``checkins`` is partitioned by local day (migration 0007, see
:mod:`healthcode.partitions`), and an index there must hold the partition
key: its primary key is ``(id, checked_in_at)``, the idempotency index is
unique on ``(idempotency_key, checked_in_at)`` (the upload path checks a key
on its own before it inserts), and a rescan's ``checkin_id`` is kept without
a foreign key, its rows deleted by purge before their visit's. The models
here describe the unpartitioned tables SQLite has.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthcode.db import Base, UTCDateTime
from healthcode.feeds.models import TravelSegment


class Venue(Base):
    __tablename__ = "venues"
    __table_args__ = (
        sa.CheckConstraint(
            "default_stay_minutes > 0 AND default_stay_minutes <= 1440",
            name="default_stay",
        ),
        {"comment": "Places with a venue code poster at the door."},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    address: Mapped[str] = mapped_column(sa.Text)
    region_code: Mapped[str] = mapped_column(
        sa.String(6), comment="GB/T 2260 county-level code of the venue."
    )
    venue_type: Mapped[str] = mapped_column(
        sa.String(16), comment="shop, restaurant, office, ...; sets the default stay."
    )
    default_stay_minutes: Mapped[int] = mapped_column(
        comment="The stay assumed for a visit without a check-out."
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Checkin(Base):
    __tablename__ = "checkins"
    __table_args__ = (
        sa.Index("ix_checkins_idempotency_key", "idempotency_key", unique=True),
        # Serves both the "one visit per instant" rule and the lookup of one
        # resident's visits in a time window (tracing reads a case's visits).
        sa.Index(
            "ix_checkins_resident_time",
            "resident_id",
            "checked_in_at",
            "venue_id",
            unique=True,
        ),
        # Tracing reads the visits at one venue within a time range.
        sa.Index("ix_checkins_venue_time", "venue_id", "checked_in_at"),
        sa.CheckConstraint(
            "source IN ('resident-scan', 'checkpoint-scan')", name="source"
        ),
        {"comment": "One row per visit; purged after the retention period."},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[int] = mapped_column(sa.ForeignKey("venues.id"))
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"))
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked_out_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, comment="Null when no check-out was recorded."
    )
    last_scan_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        comment="The latest rescan absorbed into this visit; null when none was.",
    )
    source: Mapped[str] = mapped_column(
        sa.String(16), comment="resident-scan or checkpoint-scan."
    )
    idempotency_key: Mapped[str] = mapped_column(
        sa.String(64), comment="The uploading device's key of the opening scan."
    )
    device_id: Mapped[str | None] = mapped_column(sa.String(64))


class CheckinRescan(Base):
    """A scan absorbed into a visit that was still going on.

    Only its key and instant are kept, so that a retried upload of the
    rescan is recognised as a duplicate rather than absorbed a second time.
    """

    __tablename__ = "checkin_rescans"
    __table_args__ = (
        sa.Index("ix_checkin_rescans_idempotency_key", "idempotency_key", unique=True),
        {"comment": "Scans that extended a visit instead of opening one."},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    checkin_id: Mapped[int] = mapped_column(
        sa.ForeignKey("checkins.id", ondelete="CASCADE"), index=True
    )
    idempotency_key: Mapped[str] = mapped_column(sa.String(64))
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Exposure(Base):
    __tablename__ = "exposures"
    __table_args__ = (
        # Tracing the same data again finds the same rows and adds nothing.
        # The resident comes first, which also serves the status reads.
        sa.Index(
            "ix_exposures_identity",
            "resident_id",
            "case_resident_id",
            "kind",
            "place",
            "starts_at",
            unique=True,
        ),
        sa.Index("ix_exposures_case_report_id", "case_report_id"),
        sa.CheckConstraint("kind IN ('venue', 'travel')", name="kind"),
        {"comment": "Times a resident shared a place or carriage with a case."},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"))
    case_resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"))
    case_report_id: Mapped[int] = mapped_column(sa.ForeignKey("case_reports.id"))
    kind: Mapped[str] = mapped_column(sa.String(8), comment="venue or travel.")
    place: Mapped[str] = mapped_column(
        sa.String(80),
        comment="venue:<id>, or <mode>:<carrier>:<service>:<date>[:<carriage>].",
    )
    place_label: Mapped[str] = mapped_column(
        sa.Text, comment="What the resident is shown: a venue name or a train."
    )
    venue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("venues.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    overlap_minutes: Mapped[int] = mapped_column(
        comment="Whole minutes shared, counted down from the exact overlap."
    )
    provenance: Mapped[dict[str, Any]] = mapped_column(
        sa.JSON, comment="Which visits or segments matched, and under what policy."
    )
    found_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Travel co-presence looks up everyone on one service on one date; the
# manifests' own table has no index for that, so tracing adds one.
ix_travel_segments_service = sa.Index(
    "ix_travel_segments_service",
    TravelSegment.service_date,
    TravelSegment.service_number,
)
