"""Key rotation: every sealed value re-encrypted with the current key.

:func:`rotate_keys` makes a new seal key current (new values use it at
once, old ones still open with theirs), then walks every column of type
:class:`~healthcode.privacy.types.Sealed` in primary-key order, a batch per
transaction, opening each value sealed with an older key and sealing it
again. A value changed by someone else meanwhile is left alone: the update
names the old sealed text, and a row that no longer holds it is skipped
(it was sealed with the current key by whoever changed it). When no value
uses an old key any more, the key is deleted. Interrupted, it goes on from
where it stopped when run with ``new_key=False``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from healthcode.db import Base
from healthcode.privacy.crypto import RECHECK_SECONDS, DataKeys
from healthcode.privacy.types import Sealed, using_keys

__all__ = [
    "RotationReport",
    "SealedColumn",
    "reindex",
    "rotate_keys",
    "sealed_columns",
]

log = structlog.get_logger(__name__)

#: How long after a new key became current an old one may be deleted: each
#: process reads which key is current again after this long at most.
SETTLE_SECONDS = RECHECK_SECONDS + 1.0

#: Called with (column name, values done, values to do).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SealedColumn:
    """A sealed column and the single-column primary key of its table."""

    table: sa.Table
    column: sa.Column  # type: ignore[type-arg]
    key: sa.Column  # type: ignore[type-arg]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    @property
    def context(self) -> str:
        return self.column.type.context  # type: ignore[attr-defined, no-any-return]


def sealed_columns(metadata: sa.MetaData = Base.metadata) -> list[SealedColumn]:
    """Every sealed column of ``metadata``, by table and column name."""
    found = []
    for table in metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        for column in table.columns:
            if isinstance(column.type, Sealed):
                if len(keys) != 1:
                    raise ValueError(f"{table.name} needs a one-column primary key")
                found.append(SealedColumn(table, column, keys[0]))
    return sorted(found, key=lambda item: item.name)


@dataclass
class RotationReport:
    """What a rotation did: the key it sealed with, values done, keys retired."""

    version: int
    resealed: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    retired: list[int] = field(default_factory=list)


def _raw(column: sa.Column) -> sa.ColumnElement[str]:  # type: ignore[type-arg]
    # The stored text itself, without the column type opening it.
    return sa.type_coerce(column, sa.Text)


def _stale(item: SealedColumn, current: int) -> sa.ColumnElement[bool]:
    raw = _raw(item.column)
    return sa.and_(raw.is_not(None), sa.not_(raw.startswith(f"v{current}:")))


def _batches(
    engine: Engine, item: SealedColumn, current: int, batch: int
) -> Iterator[list[tuple[object, str]]]:
    last = None
    while True:
        query = sa.select(item.key, _raw(item.column)).where(_stale(item, current))
        if last is not None:
            query = query.where(item.key > last)
        with engine.connect() as connection:
            rows = connection.execute(query.order_by(item.key).limit(batch)).all()
        if not rows:
            return
        yield [(row[0], row[1]) for row in rows]
        last = rows[-1][0]


def rotate_keys(
    engine: Engine,
    keys: DataKeys,
    *,
    new_key: bool = True,
    columns: list[SealedColumn] | None = None,
    batch: int = 1000,
    progress: Progress | None = None,
    settle_seconds: float = SETTLE_SECONDS,
) -> RotationReport:
    """Rotate (unless ``new_key`` is false) and re-encrypt, as the module says."""
    if new_key:
        keys.rotate()
    current = keys.current
    chosen = sealed_columns() if columns is None else columns
    report = RotationReport(current)
    _reseal(engine, keys, chosen, current, batch, progress, report)
    # Other processes learn of the new key only when they next read which
    # one is current, and seal with the old one until then. Before an old
    # key may go, that moment must have passed and what they sealed
    # meanwhile must be sealed again.
    if keys.versions() != [current]:
        wait = keys.current_since().timestamp() + settle_seconds - time.time()
        if wait > 0:
            time.sleep(wait)
            _reseal(engine, keys, chosen, current, batch, progress, report)
    # An old key goes only when no sealed column still uses it: every column
    # the models declare, and every sealed column of the tables of this run.
    known = [*sealed_columns(), *chosen]
    keys_of = {item.table: item.key for item in chosen}
    for table, key in keys_of.items():
        known.extend(
            SealedColumn(table, column, key)
            for column in table.columns
            if isinstance(column.type, Sealed)
        )
    everything = {item.name: item for item in known}
    report.retired = _retire_unused(engine, keys, list(everything.values()), current)
    return report


def _reseal(
    engine: Engine,
    keys: DataKeys,
    chosen: list[SealedColumn],
    current: int,
    batch: int,
    progress: Progress | None,
    report: RotationReport,
) -> None:
    for item in chosen:
        with engine.connect() as connection:
            total = int(
                connection.scalar(
                    sa.select(sa.func.count())
                    .select_from(item.table)
                    .where(_stale(item, current))
                )
                or 0
            )
        done = 0
        for rows in _batches(engine, item, current, batch):
            with engine.begin() as connection:
                for key, token in rows:
                    fresh = keys.seal(keys.open(token, item.context), item.context)
                    changed = connection.execute(
                        sa.update(item.table)
                        .where(item.key == key, _raw(item.column) == token)
                        .values({item.column.name: sa.type_coerce(fresh, sa.Text)})
                    ).rowcount
                    if changed:
                        done += 1
                    else:
                        report.skipped += 1
            if progress is not None:
                progress(item.name, done, total)
        report.resealed[item.name] = report.resealed.get(item.name, 0) + done
        log.info("column_resealed", column=item.name, values=done, version=current)


def _retire_unused(
    engine: Engine, keys: DataKeys, columns: list[SealedColumn], current: int
) -> list[int]:
    retired = []
    for version in keys.versions():
        if version == current:
            continue
        with engine.connect() as connection:
            used = any(
                connection.scalar(
                    sa.select(sa.func.count())
                    .select_from(item.table)
                    .where(_raw(item.column).startswith(f"v{version}:"))
                )
                for item in columns
            )
        if not used:
            keys.retire(version)
            retired.append(version)
    return retired


def reindex(
    engine: Engine,
    keys: DataKeys,
    *,
    batch: int = 1000,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Compute every blind index again from the sealed values, with ``keys``.

    For a new index key (:meth:`DataKeys.new_index_key`): each resident's
    number and name and each account's phone are opened and indexed anew, a
    batch per transaction. Run it with the service stopped, since a look-up
    meanwhile misses the rows already changed; interrupted, run it again
    (an index is the same however often it is computed).
    """
    from healthcode.accounts.models import Account
    from healthcode.identity.models import Resident, stored_personal_values

    residents = Resident.__table__.c
    accounts = Account.__table__.c

    def resident_indexes(row: sa.Row[Any]) -> dict[str, Any]:
        number = keys.open(row.doc_number_sealed, "residents.doc_number")
        name = keys.open(row.name_sealed, "residents.name")
        stored = stored_personal_values(number, name, row.birth_date)
        return {key: value for key, value in stored.items() if key.endswith("_index")}

    def account_indexes(row: sa.Row[Any]) -> dict[str, Any]:
        phone = keys.open(row.phone_sealed, "accounts.phone")
        return {"phone_index": keys.index(phone, "accounts.phone")}

    walks = [
        (
            "residents",
            [
                residents.id,
                residents.doc_number_sealed,
                residents.name_sealed,
                residents.birth_date,
            ],
            ["doc_number_index", "name_index", "name_year_index"],
            resident_indexes,
        ),
        (
            "accounts",
            [accounts.id, accounts.phone_sealed],
            ["phone_index"],
            account_indexes,
        ),
    ]
    done: dict[str, int] = {}
    with using_keys(keys):
        for name, columns, indexes, compute in walks:
            done[name] = _reindex_table(
                engine, name, columns, indexes, compute, batch, progress
            )
            log.info("table_reindexed", table=name, rows=done[name])
    return done


def _reindex_table(
    engine: Engine,
    name: str,
    columns: list[Any],
    indexes: list[str],
    compute: Callable[[sa.Row[Any]], dict[str, Any]],
    batch: int,
    progress: Progress | None,
) -> int:
    # Raw columns: the values are sealed and indexed already, by hand.
    raw = sa.table(name, sa.column("id"), *(sa.column(key) for key in indexes))
    key = columns[0]
    stored = [
        sa.type_coerce(c, sa.Text).label(c.name) if isinstance(c.type, Sealed) else c
        for c in columns
    ]
    with engine.connect() as connection:
        total = int(
            connection.scalar(sa.select(sa.func.count()).select_from(key.table)) or 0
        )
    update = (
        sa.update(raw)
        .where(raw.c.id == sa.bindparam("_id"))
        .values({k: sa.bindparam(k) for k in indexes})
    )
    done, last = 0, None
    while True:
        query = sa.select(*stored).order_by(key).limit(batch)
        if last is not None:
            query = query.where(key > last)
        with engine.begin() as connection:
            rows = connection.execute(query).all()
            if not rows:
                return done
            connection.execute(
                update, [{"_id": row.id, **compute(row)} for row in rows]
            )
        done += len(rows)
        last = rows[-1].id
        if progress is not None:
            progress(name, done, total)
