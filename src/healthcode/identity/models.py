"""Residents, keyed by the identity document they carry.

The document number and the name are sealed (AES-GCM, keys outside the
database) and found through keyed blind indexes: ``doc_number_index`` for
the number, ``name_index`` for the name's search key, and
``name_year_index`` for its first letter with the birth year (see
:func:`healthcode.identity.names.name_year_key`). The ORM attributes
``doc_number`` and ``name`` read and write the value in clear; setting them
sets the indexes too. A bulk insert that bypasses the ORM takes its values
from :func:`personal_values` (through the table, whose column types seal
and index) or :func:`stored_personal_values` (for a raw ``COPY``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, validates

from healthcode.db import Base, UTCDateTime
from healthcode.identity.names import name_year_key, search_key
from healthcode.privacy.types import BlindIndex, Sealed

#: The personal columns: what each holds, by column name.
PERSONAL_COLUMNS = (
    "doc_number_sealed",
    "doc_number_index",
    "name_sealed",
    "name_index",
    "name_year_index",
)


class Resident(Base):
    __tablename__ = "residents"
    __table_args__ = (
        sa.UniqueConstraint("doc_kind", "doc_country", "doc_number_index"),
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
        "doc_number_sealed",
        Sealed("residents.doc_number"),
        comment="Normalised number (mainland cards in 18-digit form), sealed.",
    )
    doc_number_index: Mapped[str] = mapped_column(
        BlindIndex("residents.doc_number"),
        comment="Keyed HMAC of the normalised number, to find it.",
    )
    name: Mapped[str] = mapped_column(
        "name_sealed", Sealed("residents.name"), comment="Full name in NFC, sealed."
    )
    name_index: Mapped[str] = mapped_column(
        BlindIndex("residents.name"),
        index=True,
        comment="Keyed HMAC of the name's search key, to find it by full name.",
    )
    name_year_index: Mapped[str | None] = mapped_column(
        BlindIndex("residents.name_year"),
        index=True,
        comment="Keyed HMAC of the name's first letter and the birth year.",
    )
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

    @validates("doc_number")
    def _index_number(self, _key: str, number: str) -> str:
        self.doc_number_index = number
        return number

    @validates("name")
    def _index_name(self, _key: str, name: str) -> str:
        self.name_index = search_key(name)
        self.name_year_index = name_year_key(name, self.birth_date)
        return name

    @validates("birth_date")
    def _index_year(self, _key: str, born: date | None) -> date | None:
        if self.name is not None:
            self.name_year_index = name_year_key(self.name, born)
        return born


def personal_values(number: str, name: str, born: date | None) -> dict[str, Any]:
    """The personal columns of one resident, in clear, for an insert or update
    through the table: its column types seal and index them."""
    return {
        "doc_number_sealed": number,
        "doc_number_index": number,
        **name_values(name, born),
    }


def name_values(name: str, born: date | None) -> dict[str, Any]:
    """The name's columns, in clear, for an insert or update through the table."""
    key = search_key(name)
    return {
        "name_sealed": name,
        "name_index": key,
        # name_year_key, from the search key already made.
        "name_year_index": None if born is None else f"{key[0]}:{born.year:04d}",
    }


def stored_personal_values(number: str, name: str, born: date | None) -> dict[str, Any]:
    """What the personal columns store for one resident: sealed and indexed.

    For writers that bypass the column types, such as a ``COPY``.
    """
    return {
        key: _STORE[key](value)
        for key, value in personal_values(number, name, born).items()
    }


def _storing(column: str) -> Any:
    process = Resident.__table__.c[column].type.process_bind_param
    return lambda value: process(value, None)


_STORE = {column: _storing(column) for column in PERSONAL_COLUMNS}
