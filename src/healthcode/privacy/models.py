"""Signed seals of the audit log, and the counts that outlive the sunset."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthcode.db import Base, UTCDateTime


class AuditSeal(Base):
    """A signed statement that the audit log's entry ``last_id`` has ``last_hash``.

    A ``head`` seal is made every day and whenever a head is exported; one
    that is copied somewhere the database's owner cannot write makes a
    rewritten chain detectable. A ``purge`` seal is made just before the
    entries up to ``last_id`` are deleted by retention, so the chain that
    remains is verified from it as if from the beginning.
    """

    __tablename__ = "audit_seals"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('head', 'purge')", name="kind"),
        {"comment": "Signed heads of the audit log; append-only."},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8), comment="head or purge.")
    last_id: Mapped[int] = mapped_column(
        sa.BigInteger, comment="The newest entry sealed; 0 for an empty log."
    )
    last_hash: Mapped[str] = mapped_column(sa.String(64))
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(
        sa.String(16), comment="The seal key, in the data key directory."
    )
    signature: Mapped[str] = mapped_column(
        sa.String(128), comment="Ed25519 over the seal's canonical form, hex."
    )


class DailyCount(Base):
    """How many residents showed each colour in each district at a day's end.

    The only thing the sunset keeps: counts, never a person.
    """

    __tablename__ = "daily_counts"
    __table_args__ = {"comment": "Residents by day, colour and district."}

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    colour: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    region_code: Mapped[str] = mapped_column(
        sa.String(6),
        primary_key=True,
        comment="GB/T 2260 county code of residence; empty when unknown.",
    )
    residents: Mapped[int] = mapped_column(sa.Integer)
