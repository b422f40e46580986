"""The audit log's entries and the row that orders appends to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthcode.db import Base, UTCDateTime


class AuditEntry(Base):
    """One act: who did or read what, about whom, why, and the chain link.

    ``hash`` is the SHA-256 of the entry's canonical form, which includes
    ``prev_hash``, the hash of the entry before; changing, removing or
    reordering any entry breaks every link after it.
    """

    __tablename__ = "audit_entries"
    __table_args__ = {"comment": "Append-only, hash-chained record of acts."}

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
        comment="Sequence number, without gaps, from 1.",
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(
        sa.String(48), comment="official:<id>, account:<id>, api-key:<id> or system."
    )
    actor_role: Mapped[str | None] = mapped_column(sa.String(24))
    action: Mapped[str] = mapped_column(sa.String(48), index=True)
    subject: Mapped[str | None] = mapped_column(
        sa.String(48), index=True, comment="What the act concerns, e.g. resident:12."
    )
    purpose: Mapped[str | None] = mapped_column(
        sa.Text, comment="The purpose or legal basis the actor stated."
    )
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditHead(Base):
    """The single row every append updates first.

    Updating it takes its lock until commit, so appends queue and each one
    links to the entry committed before it; it also holds the newest hash,
    so that removing entries from the end of the log is noticed.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(sa.String(64))
