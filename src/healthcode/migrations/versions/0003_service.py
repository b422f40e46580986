"""accounts, families, officials' work and the audit log

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-05 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import healthcode.db

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

_APPEND_ONLY = "the audit log is append-only"


def _append_only() -> None:
    # Entries may be added, never changed or removed, whoever connects. A
    # database owner can still drop the triggers; the hash chain is what
    # tells afterwards that the log was touched.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_entries_append_only() RETURNS trigger"
            " LANGUAGE plpgsql AS $$ BEGIN"
            f" RAISE EXCEPTION '{_APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_entries_append_only"
            " BEFORE UPDATE OR DELETE ON audit_entries"
            " FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_entries_no_{event.lower()}"
            f" BEFORE {event} ON audit_entries"
            f" BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
        )


def _drop_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_entries_append_only ON audit_entries")
        op.execute("DROP FUNCTION audit_entries_append_only()")
        return
    for event in ("update", "delete"):
        op.execute(f"DROP TRIGGER audit_entries_no_{event}")


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
            comment="Sequence number, without gaps, from 1.",
        ),
        sa.Column("at", healthcode.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "actor",
            sa.String(length=48),
            nullable=False,
            comment="official:<id>, account:<id>, api-key:<id> or system.",
        ),
        sa.Column("actor_role", sa.String(length=24), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column(
            "subject",
            sa.String(length=48),
            nullable=True,
            comment="What the act concerns, e.g. resident:12.",
        ),
        sa.Column(
            "purpose",
            sa.Text(),
            nullable=True,
            comment="The purpose or legal basis the actor stated.",
        ),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
        comment="Append-only, hash-chained record of acts.",
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_entries_action"), ["action"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_entries_subject"), ["subject"], unique=False
        )

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    # The single row every append to the audit log updates; see AuditHead.
    op.execute(
        f"INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '{'0' * 64}')"
    )
    _append_only()
    op.create_table(
        "officials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column(
            "role",
            sa.String(length=24),
            nullable=False,
            comment="health-official, community-worker or administrator.",
        ),
        sa.Column("password_hash", sa.Text(), nullable=False, comment="argon2id."),
        sa.Column(
            "totp_secret",
            sa.String(length=64),
            nullable=False,
            comment="Base32 TOTP secret (RFC 6238).",
        ),
        sa.Column(
            "totp_last_step",
            sa.BigInteger(),
            nullable=True,
            comment="The last TOTP time step accepted; an older one is a replay.",
        ),
        sa.Column(
            "created_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "disabled_at", healthcode.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_officials")),
        sa.UniqueConstraint("username", name=op.f("uq_officials_username")),
        comment="Staff who sign in with a password and TOTP.",
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "phone",
            sa.String(length=20),
            nullable=False,
            comment="E.164 form. Personal data: never logged, never in a message.",
        ),
        sa.Column(
            "resident_id",
            sa.Integer(),
            nullable=True,
            comment="The resident this phone belongs to, once they registered.",
        ),
        sa.Column(
            "created_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "last_sign_in_at", healthcode.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_accounts_resident_id_residents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("phone", name=op.f("uq_accounts_phone")),
        sa.UniqueConstraint("resident_id", name=op.f("uq_accounts_resident_id")),
        comment="One row per phone number that has signed in.",
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "key_hash",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of the key, hex.",
        ),
        sa.Column(
            "kind",
            sa.String(length=16),
            nullable=False,
            comment="venue, checkpoint or department.",
        ),
        sa.Column(
            "scope",
            sa.String(length=64),
            nullable=False,
            comment="The venue id, the checkpoint id, or the department's name.",
        ),
        sa.Column(
            "feed_kinds",
            sa.JSON(),
            nullable=False,
            comment="Feed kinds a department key may send.",
        ),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column(
            "created_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "revoked_at", healthcode.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["officials.id"],
            name=op.f("fk_api_keys_created_by_officials"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        comment="Keys of systems and devices, stored hashed.",
    )
    op.create_table(
        "bulk_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("colour", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column(
            "expires_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("resident_ids", sa.JSON(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("author_role", sa.String(length=24), nullable=False),
        sa.Column(
            "created_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "state",
            sa.String(length=12),
            nullable=False,
            comment="pending, approved or rejected.",
        ),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column(
            "decided_at", healthcode.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["officials.id"],
            name=op.f("fk_bulk_overrides_author_id_officials"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["officials.id"],
            name=op.f("fk_bulk_overrides_decided_by_officials"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_overrides")),
        comment="Overrides of many residents in one action.",
    )
    op.create_table(
        "guardianships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guardian_id", sa.Integer(), nullable=False),
        sa.Column("dependent_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.String(length=12),
            nullable=False,
            comment="active, pending or removed.",
        ),
        sa.Column(
            "basis",
            sa.String(length=24),
            nullable=False,
            comment="child, elder, or approval when an official must approve.",
        ),
        sa.Column(
            "created_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "approved_at", healthcode.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("approved_by", sa.Integer(), nullable=True),
        sa.Column(
            "removed_at", healthcode.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "removed_by",
            sa.String(length=48),
            nullable=True,
            comment="account:<id> or official:<id>.",
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"],
            ["officials.id"],
            name=op.f("fk_guardianships_approved_by_officials"),
        ),
        sa.ForeignKeyConstraint(
            ["dependent_id"],
            ["residents.id"],
            name=op.f("fk_guardianships_dependent_id_residents"),
        ),
        sa.ForeignKeyConstraint(
            ["guardian_id"],
            ["accounts.id"],
            name=op.f("fk_guardianships_guardian_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guardianships")),
        comment="Guardians and the dependents they hold codes for.",
    )
    with op.batch_alter_table("guardianships", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guardianships_dependent_id"), ["dependent_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_guardianships_guardian_id"), ["guardian_id"], unique=False
        )

    op.create_table(
        "overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("colour", sa.String(length=8), nullable=False),
        sa.Column(
            "reason", sa.Text(), nullable=False, comment="Shown to the resident."
        ),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("author_role", sa.String(length=24), nullable=False),
        sa.Column(
            "created_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "expires_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("legal_basis", sa.Text(), nullable=True),
        sa.Column("bulk_id", sa.Integer(), nullable=True),
        sa.Column(
            "ended_at",
            healthcode.db.UTCDateTime(timezone=True),
            nullable=True,
            comment="Set when an official ends the override early.",
        ),
        sa.Column("ended_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["officials.id"],
            name=op.f("fk_overrides_author_id_officials"),
        ),
        sa.ForeignKeyConstraint(
            ["bulk_id"],
            ["bulk_overrides.id"],
            name=op.f("fk_overrides_bulk_id_bulk_overrides"),
        ),
        sa.ForeignKeyConstraint(
            ["ended_by"], ["officials.id"], name=op.f("fk_overrides_ended_by_officials")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_overrides_resident_id_residents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overrides")),
        comment="Officials' overrides of a resident's colour.",
    )
    with op.batch_alter_table("overrides", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_overrides_resident_id"), ["resident_id"], unique=False
        )

    op.create_table(
        "appeals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column(
            "account_id",
            sa.Integer(),
            nullable=False,
            comment="Who filed it: the resident or a guardian.",
        ),
        sa.Column(
            "colour",
            sa.String(length=8),
            nullable=False,
            comment="The colour appealed against.",
        ),
        sa.Column(
            "rules",
            sa.JSON(),
            nullable=False,
            comment="The rules behind that colour when the appeal was filed.",
        ),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.String(length=12),
            nullable=False,
            comment="open, upheld or corrected.",
        ),
        sa.Column(
            "created_at", healthcode.db.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "reviewed_at", healthcode.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("override_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_appeals_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["override_id"],
            ["overrides.id"],
            name=op.f("fk_appeals_override_id_overrides"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_appeals_resident_id_residents"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"],
            ["officials.id"],
            name=op.f("fk_appeals_reviewed_by_officials"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
        comment="Appeals of a colour and their reviews.",
    )
    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appeals_resident_id"), ["resident_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_appeals_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appeals_state"))
        batch_op.drop_index(batch_op.f("ix_appeals_resident_id"))

    op.drop_table("appeals")
    with op.batch_alter_table("overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_overrides_resident_id"))

    op.drop_table("overrides")
    with op.batch_alter_table("guardianships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guardianships_guardian_id"))
        batch_op.drop_index(batch_op.f("ix_guardianships_dependent_id"))

    op.drop_table("guardianships")
    op.drop_table("bulk_overrides")
    op.drop_table("api_keys")
    op.drop_table("accounts")
    op.drop_table("officials")
    _drop_append_only()
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_subject"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_action"))

    op.drop_table("audit_entries")
