"""Appeals, overrides and bulk overrides awaiting a second official."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthcode.db import Base, UTCDateTime


class Override(Base):
    """An official's setting of a resident's colour, with reason and expiry.

    It is a record the rules read like any other (the ``overrides`` facts),
    so the status shows it first among its reasons, with who set it and
    when it ends, and the colour returns to the computed one by itself.
    """

    __tablename__ = "overrides"
    __table_args__ = {"comment": "Officials' overrides of a resident's colour."}

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"), index=True)
    colour: Mapped[str] = mapped_column(sa.String(8))
    reason: Mapped[str] = mapped_column(sa.Text, comment="Shown to the resident.")
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("officials.id"))
    author_role: Mapped[str] = mapped_column(sa.String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    legal_basis: Mapped[str | None] = mapped_column(sa.Text)
    bulk_id: Mapped[int | None] = mapped_column(sa.ForeignKey("bulk_overrides.id"))
    ended_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, comment="Set when an official ends the override early."
    )
    ended_by: Mapped[int | None] = mapped_column(sa.ForeignKey("officials.id"))


class BulkOverride(Base):
    """An override of many residents at once, waiting for a second official."""

    __tablename__ = "bulk_overrides"
    __table_args__ = {"comment": "Overrides of many residents in one action."}

    id: Mapped[int] = mapped_column(primary_key=True)
    colour: Mapped[str] = mapped_column(sa.String(8))
    reason: Mapped[str] = mapped_column(sa.Text)
    legal_basis: Mapped[str] = mapped_column(sa.Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resident_ids: Mapped[list[int]] = mapped_column(sa.JSON)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("officials.id"))
    author_role: Mapped[str] = mapped_column(sa.String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(
        sa.String(12), comment="pending, approved or rejected."
    )
    decided_by: Mapped[int | None] = mapped_column(sa.ForeignKey("officials.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(sa.Text)


class Appeal(Base):
    """A resident's (or guardian's) appeal of a colour, and its review."""

    __tablename__ = "appeals"
    __table_args__ = {"comment": "Appeals of a colour and their reviews."}

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"), index=True)
    account_id: Mapped[int] = mapped_column(
        sa.ForeignKey("accounts.id"),
        comment="Who filed it: the resident or a guardian.",
    )
    colour: Mapped[str] = mapped_column(
        sa.String(8), comment="The colour appealed against."
    )
    rules: Mapped[list[str]] = mapped_column(
        sa.JSON, comment="The rules behind that colour when the appeal was filed."
    )
    message: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(
        sa.String(12), index=True, comment="open, upheld or corrected."
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[int | None] = mapped_column(sa.ForeignKey("officials.id"))
    review_note: Mapped[str | None] = mapped_column(sa.Text)
    override_id: Mapped[int | None] = mapped_column(sa.ForeignKey("overrides.id"))
