"""Computed statuses and the history of their changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthcode.db import Base, UTCDateTime


class Status(Base):
    __tablename__ = "statuses"
    __table_args__ = {"comment": "The current colour of each resident."}

    resident_id: Mapped[int] = mapped_column(
        sa.ForeignKey("residents.id"), primary_key=True
    )
    colour: Mapped[str] = mapped_column(sa.String(8))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    changes_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, comment="When the colour changes if no new record arrives."
    )
    changes_to: Mapped[str | None] = mapped_column(sa.String(8))
    recheck_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        index=True,
        comment="Earliest instant at which any reason starts or stops applying.",
    )
    rule_set: Mapped[str] = mapped_column(sa.String(64))


class StatusEvent(Base):
    __tablename__ = "status_events"
    __table_args__ = {"comment": "Every change of colour, with its reasons."}

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    old_colour: Mapped[str | None] = mapped_column(sa.String(8))
    new_colour: Mapped[str] = mapped_column(sa.String(8))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    cause: Mapped[str] = mapped_column(
        sa.String(32), comment="import:<id>, recolor, or time."
    )


class RecolorGuard(Base):
    """One row that orders every writer of statuses.

    Whoever writes statuses first updates this row, which takes its lock
    until commit (a row lock in PostgreSQL, the write lock in SQLite), so
    status writers queue. ``records_version`` is raised by every writer that
    changed records; a recolour batch that evaluated on an older version
    re-reads before it writes, so a status is never computed from records
    that a concurrent import has since replaced.
    """

    __tablename__ = "recolor_guard"

    id: Mapped[int] = mapped_column(primary_key=True)
    records_version: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    writes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
