"""check-ins and status events partitioned by local day on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 17:30:00

Each table is rebuilt as a range-partitioned table of the same columns,
defaults, checks and comments, with a partition for every local day its
rows cover, the days ahead that the daily job would have made, and a default
partition; the rows are copied over and the old table dropped, all in the
migration's one transaction. The id sequence is kept, so ids go on from
where they were.

What partitioning changes: a primary key or unique index must include the
partition key, so the primary keys become ``(id, checked_in_at)`` and
``(id, at)``, and a check-in's idempotency key is unique together with its
scan instant. The upload path looks a key up on its own before inserting,
and a device retries a scan with the same key and the same instant, which
this index still refuses twice; the visit index ``(resident_id,
checked_in_at, venue_id)`` already held the partition key. A rescan can no
longer hold a foreign key to its visit's id alone; purge deletes a visit's
rescans before the visit.

SQLite has no partitions: there this migration does nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
# The check-in tables come from 0002; status events from the initial schema.
depends_on = "0002"

_CHECKIN_INDEXES = {
    "ix_checkins_idempotency_key": "UNIQUE INDEX {name} ON checkins"
    " (idempotency_key, checked_in_at)",
    "ix_checkins_resident_time": "UNIQUE INDEX {name} ON checkins"
    " (resident_id, checked_in_at, venue_id)",
    "ix_checkins_venue_time": "INDEX {name} ON checkins (venue_id, checked_in_at)",
}
_EVENT_INDEXES = {
    "ix_status_events_resident_id": "INDEX {name} ON status_events (resident_id)",
}
_FOREIGN_KEYS = {
    "checkins": [
        ("fk_checkins_resident_id_residents", "resident_id", "residents"),
        ("fk_checkins_venue_id_venues", "venue_id", "venues"),
    ],
    "status_events": [
        ("fk_status_events_resident_id_residents", "resident_id", "residents"),
    ],
}
_RESCAN_FK = "fk_checkin_rescans_checkin_id_checkins"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _rebuild(table: str, indexes: dict[str, str], key: str | None) -> None:
    """Replace ``table`` by a copy, partitioned on ``key`` or plain when None."""
    bind = op.get_bind()
    sequence = bind.execute(
        sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}
    ).scalar_one()
    comment = bind.execute(
        sa.text("SELECT obj_description(to_regclass(:table), 'pg_class')"),
        {"table": table},
    ).scalar_one()
    old = f"{table}_before_0007"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    # Index names are unique in a schema; the old ones step aside.
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    for name in indexes:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_before_0007")
    partitioning = f" PARTITION BY RANGE ({key})" if key else ""
    op.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING"
        f" CONSTRAINTS INCLUDING COMMENTS){partitioning}"
    )
    primary = f"id, {key}" if key else "id"
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({primary})")
    for name, definition in indexes.items():
        op.execute("CREATE " + definition.format(name=name))
    for name, column, target in _FOREIGN_KEYS[table]:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column})"
            f" REFERENCES {target} (id)"
        )
    if comment:
        op.execute(sa.text(f"COMMENT ON TABLE {table} IS {_literal(bind, comment)}"))
    if key:
        _partitions(table, old, key)
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    # The sequence belongs to the old table's column and would go with it.
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
    op.execute(f"DROP TABLE {old}")


def _literal(bind: sa.engine.Connection, text: str) -> str:
    return bind.execute(
        sa.text("SELECT quote_literal(:text)"), {"text": text}
    ).scalar_one()


def _partitions(table: str, old: str, key: str) -> None:
    from healthcode.config import get_settings
    from healthcode.partitions import create_day_partitions, days_between, upcoming_days

    bind = op.get_bind()
    zone = get_settings().tz
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    first, last = bind.execute(
        sa.text(f"SELECT min({key}), max({key}) FROM {old}")
    ).one()
    present = [] if first is None else days_between(first, last, zone)
    ahead = upcoming_days(datetime.now(UTC), zone)
    create_day_partitions(bind, table, present + ahead, zone)


def upgrade() -> None:
    if not _postgres():
        return
    op.execute(f"ALTER TABLE checkin_rescans DROP CONSTRAINT {_RESCAN_FK}")
    _rebuild("checkins", _CHECKIN_INDEXES, "checked_in_at")
    _rebuild("status_events", _EVENT_INDEXES, "at")


def downgrade() -> None:
    if not _postgres():
        return
    _rebuild("status_events", _EVENT_INDEXES, None)
    plain = dict(_CHECKIN_INDEXES)
    plain["ix_checkins_idempotency_key"] = (
        "UNIQUE INDEX {name} ON checkins (idempotency_key)"
    )
    _rebuild("checkins", plain, None)
    op.execute(
        f"ALTER TABLE checkin_rescans ADD CONSTRAINT {_RESCAN_FK} FOREIGN KEY"
        " (checkin_id) REFERENCES checkins (id) ON DELETE CASCADE"
    )
