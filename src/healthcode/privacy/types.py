"""Column types that seal a field and index it, transparently to the code.

:class:`BlindIndex` stores the keyed HMAC of what is bound to it, so every
equality and ``IN`` look-up written against the column keeps working; what
it reads back is the index, never the value. :class:`Sealed` stores the
value sealed with AES-GCM and opens it on reading; it cannot be compared in
SQL (each sealing is different), only read. A personal field is then two
columns: the sealed value, to show, and its index, to find.

Both take their keys from :func:`data_keys`: the configured data key
directory, or the keys a caller installed with :func:`using_keys`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator

from healthcode.privacy.config import get_privacy_settings
from healthcode.privacy.crypto import DataKeys

__all__ = ["BlindIndex", "Sealed", "data_keys", "using_keys"]

_INSTALLED: list[DataKeys] = []


@functools.cache
def _in_directory(directory: str) -> DataKeys:
    return DataKeys(directory)


def data_keys() -> DataKeys:
    """The keys columns seal and index with now.

    The configured directory is looked up on every call (the settings are
    read once), so that a process whose settings are read again, as the
    commands' tests do, seals with the directory it is configured with.
    """
    if _INSTALLED:
        return _INSTALLED[-1]
    return _in_directory(get_privacy_settings().data_key_dir)


@contextmanager
def using_keys(keys: DataKeys) -> Iterator[DataKeys]:
    """Seal and index with ``keys`` inside the block (tools and tests)."""
    _INSTALLED.append(keys)
    try:
        yield keys
    finally:
        _INSTALLED.remove(keys)


class BlindIndex(TypeDecorator[str]):
    """The keyed HMAC of a value, for finding it; ``purpose`` names the field."""

    impl = sa.String(64)
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{self.purpose} is indexed as text")
        return data_keys().index(value, self.purpose)


_TEXT_MATCHES = frozenset(
    {
        operators.contains_op,
        operators.startswith_op,
        operators.endswith_op,
        operators.match_op,
    }
)


def _refuse_comparison(op: Any, other: tuple[Any, ...]) -> None:
    # Comparing with another column is left alone: SQLAlchemy itself compares
    # a column with its annotated copies when it maps result columns.
    if op in (operators.is_, operators.is_not):
        return
    if all(isinstance(item, ClauseElement) for item in other):
        return
    if operators.is_comparison(op) or op in _TEXT_MATCHES:
        raise TypeError(
            "A sealed column cannot be compared in SQL; look the value up"
            " through its blind index."
        )


class Sealed(TypeDecorator[str]):
    """A value sealed with AES-GCM, bound to ``context`` (its table and column).

    A sealed column refuses comparison in SQL: each sealing of a value is
    different, so ``sealed == value`` would quietly match nothing. A look-up
    goes through the column's blind index; only a test for null is allowed.
    """

    impl = sa.Text
    cache_ok = True

    class Comparator(TypeDecorator.Comparator[str]):  # type: ignore[name-defined]
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            _refuse_comparison(op, other)
            return super().operate(op, *other, **kwargs)

        def reverse_operate(self, op: Any, other: Any, **kwargs: Any) -> Any:
            _refuse_comparison(op, (other,))
            return super().reverse_operate(op, other, **kwargs)

    comparator_factory = Comparator

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{self.context} is sealed as text")
        return data_keys().seal(value, self.context)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return data_keys().open(value, self.context)
