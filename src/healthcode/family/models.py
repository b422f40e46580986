"""Links between a guardian's account and the residents they hold codes for."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from healthcode.db import Base, UTCDateTime


class Guardianship(Base):
    """A guardian (an account) holding a dependent's (a resident's) code.

    A link is ``active``, ``pending`` an official's approval (the dependent
    is neither a child nor elderly), or ``removed``. Removed links are kept,
    so that who held whose code, and until when, can still be told.
    """

    __tablename__ = "guardianships"
    __table_args__ = {"comment": "Guardians and the dependents they hold codes for."}

    id: Mapped[int] = mapped_column(primary_key=True)
    guardian_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    dependent_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"), index=True)
    state: Mapped[str] = mapped_column(
        sa.String(12), comment="active, pending or removed."
    )
    basis: Mapped[str] = mapped_column(
        sa.String(24),
        comment="child, elder, or approval when an official must approve.",
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("officials.id"))
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by: Mapped[str | None] = mapped_column(
        sa.String(48), comment="account:<id> or official:<id>."
    )
