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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from healthcode.db import Base
from healthcode.privacy.crypto import DataKeys
from healthcode.privacy.types import Sealed

__all__ = ["RotationReport", "SealedColumn", "rotate_keys", "sealed_columns"]

log = structlog.get_logger(__name__)

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
) -> RotationReport:
    """Rotate (unless ``new_key`` is false) and re-encrypt, as the module says."""
    if new_key:
        keys.rotate()
    current = keys.current
    chosen = sealed_columns() if columns is None else columns
    report = RotationReport(current)
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
        report.resealed[item.name] = done
        log.info("column_resealed", column=item.name, values=done, version=current)
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
