"""audit seals, daily counts, and deletion of sealed audit entries

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-05 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import healthcode.db

revision = "0005"
down_revision = "0001"
branch_labels = None
# The audit log's table and its append-only triggers come from 0003.
depends_on = "0003"

_APPEND_ONLY = "the audit log is append-only"
_SEALS_ONLY = "audit seals are append-only"
# An entry may be deleted only when a purge seal vouches for the hash of the
# newest entry deleted with it: retention then leaves a chain that is
# checked from the seal. Any other change or deletion is still refused.
_SEALED = "SELECT COALESCE(MAX(last_id), 0) FROM audit_seals WHERE kind = 'purge'"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _entries_deletable_behind_seal() -> None:
    if _postgres():
        op.execute(
            "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger"
            " LANGUAGE plpgsql AS $$ BEGIN"
            f" IF TG_OP = 'DELETE' AND OLD.id <= ({_SEALED}) THEN RETURN OLD; END IF;"
            f" RAISE EXCEPTION '{_APPEND_ONLY}'; END $$"
        )
        return
    op.execute("DROP TRIGGER audit_entries_no_delete")
    op.execute(
        "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries"
        f" WHEN OLD.id > ({_SEALED})"
        f" BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    )


def _entries_append_only_again() -> None:
    if _postgres():
        op.execute(
            "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger"
            " LANGUAGE plpgsql AS $$ BEGIN"
            f" RAISE EXCEPTION '{_APPEND_ONLY}'; END $$"
        )
        return
    op.execute("DROP TRIGGER audit_entries_no_delete")
    op.execute(
        "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries"
        f" BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    )


def _seals_append_only() -> None:
    if _postgres():
        op.execute(
            "CREATE FUNCTION audit_seals_append_only() RETURNS trigger"
            " LANGUAGE plpgsql AS $$ BEGIN"
            f" RAISE EXCEPTION '{_SEALS_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_seals_append_only"
            " BEFORE UPDATE OR DELETE ON audit_seals"
            " FOR EACH ROW EXECUTE FUNCTION audit_seals_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_seals_no_{event.lower()}"
            f" BEFORE {event} ON audit_seals"
            f" BEGIN SELECT RAISE(ABORT, '{_SEALS_ONLY}'); END"
        )


def _drop_seals_append_only() -> None:
    if _postgres():
        op.execute("DROP TRIGGER audit_seals_append_only ON audit_seals")
        op.execute("DROP FUNCTION audit_seals_append_only()")
        return
    for event in ("update", "delete"):
        op.execute(f"DROP TRIGGER audit_seals_no_{event}")


def upgrade() -> None:
    op.create_table(
        "audit_seals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind", sa.String(length=8), nullable=False, comment="head or purge."
        ),
        sa.Column(
            "last_id",
            sa.BigInteger(),
            nullable=False,
            comment="The newest entry sealed; 0 for an empty log.",
        ),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "sealed_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "key_id",
            sa.String(length=16),
            nullable=False,
            comment="The seal key, in the data key directory.",
        ),
        sa.Column(
            "signature",
            sa.String(length=128),
            nullable=False,
            comment="Ed25519 over the seal's canonical form, hex.",
        ),
        sa.CheckConstraint(
            "kind IN ('head', 'purge')", name=op.f("ck_audit_seals_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_seals")),
        comment="Signed heads of the audit log; append-only.",
    )
    op.create_table(
        "daily_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("colour", sa.String(length=8), nullable=False),
        sa.Column(
            "region_code",
            sa.String(length=6),
            nullable=False,
            comment="GB/T 2260 county code of residence; empty when unknown.",
        ),
        sa.Column("residents", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "colour", "region_code", name=op.f("pk_daily_counts")
        ),
        comment="Residents by day, colour and district.",
    )
    _seals_append_only()
    _entries_deletable_behind_seal()


def downgrade() -> None:
    _entries_append_only_again()
    _drop_seals_append_only()
    op.drop_table("daily_counts")
    op.drop_table("audit_seals")
