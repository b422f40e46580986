"""Residents, keyed by the identity document they carry."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthcode.db import Base, UTCDateTime


class Resident(Base):
    __tablename__ = "residents"
    __table_args__ = (
        sa.UniqueConstraint("doc_kind", "doc_country", "doc_number"),
        {"comment": "One row per person, keyed by identity document."},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    doc_kind: Mapped[str] = mapped_column(
        sa.String(24), comment="Document kind, see identity.documents.DocumentKind."
    )
    doc_country: Mapped[str] = mapped_column(
        sa.String(3),
        default="",
        comment="ISO 3166 alpha-3 issuing country for passports, else empty.",
    )
    doc_number: Mapped[str] = mapped_column(
        sa.String(32), comment="Normalised number (mainland cards in 18-digit form)."
    )
    name: Mapped[str] = mapped_column(sa.Text, comment="Full name in NFC.")
    birth_date: Mapped[date | None] = mapped_column(sa.Date)
    region_code: Mapped[str | None] = mapped_column(
        sa.String(6), comment="GB/T 2260 county-level code of residence."
    )
    street: Mapped[str | None] = mapped_column(
        sa.Text, comment="Street (jiedao) or township name under region_code."
    )
    identity_state: Mapped[str] = mapped_column(
        sa.String(12),
        default="pending",
        comment="pending until the identity registry confirms; confirmed; rejected.",
    )
    identity_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
