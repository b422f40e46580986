"""Accounts that sign in: residents' phones, officials, and API keys.

The phone number is sealed and found through its keyed blind index
``phone_index`` (see :mod:`healthcode.privacy.types`); setting ``phone``
sets the index too.

Sign-in codes and sessions are short-lived and live in a store (see
:mod:`healthcode.accounts.stores`), not here.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, validates

from healthcode.db import Base, UTCDateTime
from healthcode.privacy.types import BlindIndex, Sealed


class Account(Base):
    """A phone that signs in: a resident, a guardian, or both."""

    __tablename__ = "accounts"
    __table_args__ = {"comment": "One row per phone number that has signed in."}

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(
        "phone_sealed",
        Sealed("accounts.phone"),
        comment="E.164 form, sealed. Personal data: never logged, never in a message.",
    )
    phone_index: Mapped[str] = mapped_column(
        BlindIndex("accounts.phone"),
        unique=True,
        comment="Keyed HMAC of the E.164 number, to find the account by phone.",
    )
    resident_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("residents.id"),
        unique=True,
        comment="The resident this phone belongs to, once they registered.",
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @validates("phone")
    def _index_phone(self, _key: str, phone: str) -> str:
        self.phone_index = phone
        return phone


class Official(Base):
    """A health official, community worker or administrator."""

    __tablename__ = "officials"
    __table_args__ = {"comment": "Staff who sign in with a password and TOTP."}

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[str] = mapped_column(
        sa.String(24), comment="health-official, community-worker or administrator."
    )
    password_hash: Mapped[str] = mapped_column(sa.Text, comment="argon2id.")
    totp_secret: Mapped[str] = mapped_column(
        sa.String(64), comment="Base32 TOTP secret (RFC 6238)."
    )
    totp_last_step: Mapped[int | None] = mapped_column(
        sa.BigInteger,
        comment="The last TOTP time step accepted; an older one is a replay.",
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A key for a venue operator, a checkpoint device or a department system."""

    __tablename__ = "api_keys"
    __table_args__ = {"comment": "Keys of systems and devices, stored hashed."}

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(
        sa.String(64), unique=True, comment="SHA-256 of the key, hex."
    )
    kind: Mapped[str] = mapped_column(
        sa.String(16), comment="venue, checkpoint or department."
    )
    scope: Mapped[str] = mapped_column(
        sa.String(64),
        comment="The venue id, the checkpoint id, or the department's name.",
    )
    feed_kinds: Mapped[list[str]] = mapped_column(
        sa.JSON, default=list, comment="Feed kinds a department key may send."
    )
    label: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("officials.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
