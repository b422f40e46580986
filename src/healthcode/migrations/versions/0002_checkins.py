"""venues, check-ins and exposures

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import healthcode.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "venues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column(
            "region_code",
            sa.String(length=6),
            nullable=False,
            comment="GB/T 2260 county-level code of the venue.",
        ),
        sa.Column(
            "venue_type",
            sa.String(length=16),
            nullable=False,
            comment="shop, restaurant, office, ...; sets the default stay.",
        ),
        sa.Column(
            "default_stay_minutes",
            sa.Integer(),
            nullable=False,
            comment="The stay assumed for a visit without a check-out.",
        ),
        sa.Column(
            "created_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.CheckConstraint(
            "default_stay_minutes > 0 AND default_stay_minutes <= 1440",
            name=op.f("ck_venues_default_stay"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_venues")),
        comment="Places with a venue code poster at the door.",
    )
    op.create_table(
        "checkins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column(
            "checked_in_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "checked_out_at",
            healthcode.db.UTCDateTime(timezone=True),
            nullable=True,
            comment="Null when no check-out was recorded.",
        ),
        sa.Column(
            "last_scan_at",
            healthcode.db.UTCDateTime(timezone=True),
            nullable=True,
            comment="The latest rescan absorbed into this visit; null when none was.",
        ),
        sa.Column(
            "source",
            sa.String(length=16),
            nullable=False,
            comment="resident-scan or checkpoint-scan.",
        ),
        sa.Column(
            "idempotency_key",
            sa.String(length=64),
            nullable=False,
            comment="The uploading device's key of the opening scan.",
        ),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "source IN ('resident-scan', 'checkpoint-scan')",
            name=op.f("ck_checkins_source"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_checkins_resident_id_residents"),
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_checkins_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkins")),
        comment="One row per visit; purged after the retention period.",
    )
    op.create_index(
        "ix_checkins_idempotency_key", "checkins", ["idempotency_key"], unique=True
    )
    op.create_index(
        "ix_checkins_resident_time",
        "checkins",
        ["resident_id", "checked_in_at", "venue_id"],
        unique=True,
    )
    op.create_index("ix_checkins_venue_time", "checkins", ["venue_id", "checked_in_at"])
    op.create_table(
        "checkin_rescans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkin_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column(
            "scanned_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["checkin_id"],
            ["checkins.id"],
            name=op.f("fk_checkin_rescans_checkin_id_checkins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_rescans")),
        comment="Scans that extended a visit instead of opening one.",
    )
    op.create_index(
        "ix_checkin_rescans_idempotency_key",
        "checkin_rescans",
        ["idempotency_key"],
        unique=True,
    )
    op.create_index(
        op.f("ix_checkin_rescans_checkin_id"), "checkin_rescans", ["checkin_id"]
    )
    op.create_table(
        "exposures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("case_resident_id", sa.Integer(), nullable=False),
        sa.Column("case_report_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind", sa.String(length=8), nullable=False, comment="venue or travel."
        ),
        sa.Column(
            "place",
            sa.String(length=80),
            nullable=False,
            comment="venue:<id>, or <mode>:<carrier>:<service>:<date>[:<carriage>].",
        ),
        sa.Column(
            "place_label",
            sa.Text(),
            nullable=False,
            comment="What the resident is shown: a venue name or a train.",
        ),
        sa.Column("venue_id", sa.Integer(), nullable=True),
        sa.Column(
            "starts_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("ends_at", healthcode.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "overlap_minutes",
            sa.Integer(),
            nullable=False,
            comment="Whole minutes shared, counted down from the exact overlap.",
        ),
        sa.Column(
            "provenance",
            sa.JSON(),
            nullable=False,
            comment="Which visits or segments matched, and under what policy.",
        ),
        sa.Column("found_at", healthcode.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('venue', 'travel')", name=op.f("ck_exposures_kind")
        ),
        sa.ForeignKeyConstraint(
            ["case_report_id"],
            ["case_reports.id"],
            name=op.f("fk_exposures_case_report_id_case_reports"),
        ),
        sa.ForeignKeyConstraint(
            ["case_resident_id"],
            ["residents.id"],
            name=op.f("fk_exposures_case_resident_id_residents"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_exposures_resident_id_residents"),
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_exposures_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exposures")),
        comment="Times a resident shared a place or carriage with a case.",
    )
    op.create_index(
        "ix_exposures_identity",
        "exposures",
        ["resident_id", "case_resident_id", "kind", "place", "starts_at"],
        unique=True,
    )
    op.create_index("ix_exposures_case_report_id", "exposures", ["case_report_id"])
    # Travel co-presence looks up everyone on one service on one date.
    op.create_index(
        "ix_travel_segments_service",
        "travel_segments",
        ["service_date", "service_number"],
    )


def downgrade() -> None:
    op.drop_index("ix_travel_segments_service", table_name="travel_segments")
    op.drop_index("ix_exposures_case_report_id", table_name="exposures")
    op.drop_index("ix_exposures_identity", table_name="exposures")
    op.drop_table("exposures")
    op.drop_index(op.f("ix_checkin_rescans_checkin_id"), table_name="checkin_rescans")
    op.drop_index("ix_checkin_rescans_idempotency_key", table_name="checkin_rescans")
    op.drop_table("checkin_rescans")
    op.drop_index("ix_checkins_venue_time", table_name="checkins")
    op.drop_index("ix_checkins_resident_time", table_name="checkins")
    op.drop_index("ix_checkins_idempotency_key", table_name="checkins")
    op.drop_table("checkins")
    op.drop_table("venues")
