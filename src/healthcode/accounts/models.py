"""Accounts that sign in: residents' phones, officials, and API keys.

Sign-in codes and sessions are short-lived and live in a store (see
:mod:`healthcode.accounts.stores`), not here.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthcode.db import Base, UTCDateTime


class Account(Base):
    """A phone that signs in: a resident, a guardian, or both."""

    __tablename__ = "accounts"
    __table_args__ = {"comment": "One row per phone number that has signed in."}

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(
        sa.String(20),
        unique=True,
        comment="E.164 form. Personal data: never logged, never in a message.",
    )
    resident_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("residents.id"),
        unique=True,
        comment="The resident this phone belongs to, once they registered.",
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
