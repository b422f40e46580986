"""residents' document numbers and names, accounts' phones: sealed and indexed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 12:00:00

Each clear column is renamed to its sealed column and its rows are sealed in
place, a batch at a time, beside new blind-index columns: a database copied
after this revision names nobody. The keys are the configured data keys
(``HEALTHCODE_DATA_KEY_DIR``), so the migration must run where the service
will. Run from a terminal, it shows a progress bar per table.

On SQLite the unique constraints of the old clear columns stay, over the
sealed columns they were renamed to: SQLite cannot drop a constraint without
rebuilding the table, which the foreign keys onto ``residents`` and
``accounts`` forbid inside the migration's transaction. Every sealing of a
value is different, so those constraints never refuse a row; uniqueness is
kept by the new unique indexes over the blind indexes. Old clear values may
remain in free pages of the SQLite file until it is vacuumed: ``secure_delete``
is switched on for the conversion, so the pages it rewrites are zeroed, and
``VACUUM`` after the upgrade removes what earlier deletions left.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
# The accounts table comes from 0003.
depends_on = "0003"

BATCH = 2000

_residents = sa.table(
    "residents",
    sa.column("id"),
    sa.column("birth_date", sa.Date),
    sa.column("doc_number_sealed"),
    sa.column("doc_number_index"),
    sa.column("name_sealed"),
    sa.column("name_index"),
    sa.column("name_year_index"),
)
_accounts = sa.table(
    "accounts", sa.column("id"), sa.column("phone_sealed"), sa.column("phone_index")
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.advance(task, done)


def _convert(
    table: Any,
    label: str,
    pending: Any,
    columns: list[Any],
    values: Callable[[Any], dict[str, Any]],
) -> None:
    """Rewrite every row that ``pending`` selects with ``values(row)``, by id."""
    bind = op.get_bind()
    total = int(bind.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
    update = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("_id"))
        .values({c.name: sa.bindparam(c.name) for c in columns})
    )
    last = 0
    with _progress(label, total) as advance:
        while True:
            rows = bind.execute(
                sa.select(table)
                .where(pending, table.c.id > last)
                .order_by(table.c.id)
                .limit(BATCH)
            ).all()
            if not rows:
                return
            bind.execute(update, [{"_id": row.id, **values(row)} for row in rows])
            last = rows[-1].id
            advance(len(rows))


def _seal_residents() -> None:
    from healthcode.identity.models import PERSONAL_COLUMNS, stored_personal_values

    def values(row: Any) -> dict[str, Any]:
        # Before the conversion the sealed columns still hold the clear values.
        return stored_personal_values(
            row.doc_number_sealed, row.name_sealed, row.birth_date
        )

    _convert(
        _residents,
        "sealing residents",
        _residents.c.doc_number_index.is_(None),
        [_residents.c[name] for name in PERSONAL_COLUMNS],
        values,
    )


def _seal_accounts() -> None:
    from healthcode.accounts.models import Account

    types = Account.__table__.c

    def values(row: Any) -> dict[str, Any]:
        return {
            "phone_sealed": types.phone_sealed.type.process_bind_param(
                row.phone_sealed, None
            ),
            "phone_index": types.phone_index.type.process_bind_param(
                row.phone_sealed, None
            ),
        }

    _convert(
        _accounts,
        "sealing accounts",
        _accounts.c.phone_index.is_(None),
        [_accounts.c.phone_sealed, _accounts.c.phone_index],
        values,
    )


_REQUIRED_INDEXES = (
    ("residents", "doc_number_index"),
    ("residents", "name_index"),
    ("accounts", "phone_index"),
)


def _index_column(table: str, name: str, comment: str) -> None:
    op.add_column(table, sa.Column(name, sa.String(64), nullable=True, comment=comment))


def upgrade() -> None:
    if not _postgres():
        op.execute("PRAGMA secure_delete = ON")
    op.execute("ALTER TABLE residents RENAME COLUMN doc_number TO doc_number_sealed")
    op.execute("ALTER TABLE residents RENAME COLUMN name TO name_sealed")
    op.execute("ALTER TABLE accounts RENAME COLUMN phone TO phone_sealed")
    if _postgres():
        op.drop_constraint("uq_residents_doc_kind", "residents", type_="unique")
        op.drop_constraint("uq_accounts_phone", "accounts", type_="unique")
        for table, column in (
            ("residents", "doc_number_sealed"),
            ("accounts", "phone_sealed"),
        ):
            op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String())
    _index_column(
        "residents",
        "doc_number_index",
        "Keyed HMAC of the normalised number, to find it.",
    )
    _index_column(
        "residents",
        "name_index",
        "Keyed HMAC of the name's search key, to find it by full name.",
    )
    _index_column(
        "residents",
        "name_year_index",
        "Keyed HMAC of the name's first letter and the birth year.",
    )
    _index_column(
        "accounts",
        "phone_index",
        "Keyed HMAC of the E.164 number, to find the account by phone.",
    )

    _seal_residents()
    _seal_accounts()

    if _postgres():
        for table, column in _REQUIRED_INDEXES:
            op.alter_column(table, column, nullable=False, existing_type=sa.String(64))
        op.create_unique_constraint(
            "uq_residents_doc_kind",
            "residents",
            ["doc_kind", "doc_country", "doc_number_index"],
        )
        op.create_unique_constraint(
            "uq_accounts_phone_index", "accounts", ["phone_index"]
        )
    else:
        op.create_index(
            "uq_residents_doc_number_index",
            "residents",
            ["doc_kind", "doc_country", "doc_number_index"],
            unique=True,
        )
        op.create_index(
            "uq_accounts_phone_index", "accounts", ["phone_index"], unique=True
        )
    op.create_index("ix_residents_name_index", "residents", ["name_index"])
    op.create_index("ix_residents_name_year_index", "residents", ["name_year_index"])


def _open_residents() -> None:
    from healthcode.identity.models import Resident

    types = Resident.__table__.c

    def values(row: Any) -> dict[str, Any]:
        return {
            "doc_number_sealed": types.doc_number_sealed.type.process_result_value(
                row.doc_number_sealed, None
            ),
            "name_sealed": types.name_sealed.type.process_result_value(
                row.name_sealed, None
            ),
            "doc_number_index": None,
        }

    _convert(
        _residents,
        "opening residents",
        _residents.c.doc_number_index.is_not(None),
        [
            _residents.c.doc_number_sealed,
            _residents.c.name_sealed,
            _residents.c.doc_number_index,
        ],
        values,
    )


def _open_accounts() -> None:
    from healthcode.accounts.models import Account

    types = Account.__table__.c

    def values(row: Any) -> dict[str, Any]:
        return {
            "phone_sealed": types.phone_sealed.type.process_result_value(
                row.phone_sealed, None
            ),
            "phone_index": None,
        }

    _convert(
        _accounts,
        "opening accounts",
        _accounts.c.phone_index.is_not(None),
        [_accounts.c.phone_sealed, _accounts.c.phone_index],
        values,
    )


def downgrade() -> None:
    op.drop_index("ix_residents_name_year_index", "residents")
    op.drop_index("ix_residents_name_index", "residents")
    if _postgres():
        op.drop_constraint("uq_residents_doc_kind", "residents", type_="unique")
        op.drop_constraint("uq_accounts_phone_index", "accounts", type_="unique")
        # The walk below marks a row opened by clearing its index.
        for table, column in _REQUIRED_INDEXES:
            op.alter_column(table, column, nullable=True, existing_type=sa.String(64))
    else:
        op.drop_index("uq_residents_doc_number_index", "residents")
        op.drop_index("uq_accounts_phone_index", "accounts")
    _open_residents()
    _open_accounts()
    for table, column in (
        ("residents", "doc_number_index"),
        ("residents", "name_index"),
        ("residents", "name_year_index"),
        ("accounts", "phone_index"),
    ):
        op.drop_column(table, column)
    op.execute("ALTER TABLE residents RENAME COLUMN doc_number_sealed TO doc_number")
    op.execute("ALTER TABLE residents RENAME COLUMN name_sealed TO name")
    op.execute("ALTER TABLE accounts RENAME COLUMN phone_sealed TO phone")
    if _postgres():
        op.alter_column(
            "residents", "doc_number", type_=sa.String(32), existing_type=sa.Text()
        )
        op.alter_column(
            "accounts", "phone", type_=sa.String(20), existing_type=sa.Text()
        )
        op.create_unique_constraint(
            "uq_residents_doc_kind",
            "residents",
            ["doc_kind", "doc_country", "doc_number"],
        )
        op.create_unique_constraint("uq_accounts_phone", "accounts", ["phone"])
