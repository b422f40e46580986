"""Reading feed files, CSV or NDJSON, into raw rows with their line numbers.

Readers know nothing of what a row means. They turn each record of the file
into a dictionary of the values it carries (an empty CSV cell or a JSON
``null`` is simply absent) and report the line on which the record starts,
counting the file's own lines from 1, so a sender can find it in an editor.
A line that cannot be read at all becomes a :class:`BadLine`; the reader then
goes on with the next one.

Both readers take the file as bytes, line by line, so that an invalid UTF-8
sequence spoils only its own line and so that the caller can follow progress
by file position.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from healthcode.feeds.errors import FeedFileUnreadable, UnknownFeedFormat

__all__ = [
    "BadLine",
    "FeedFile",
    "FileFormat",
    "RawRow",
    "column_like",
    "detect_format",
]

FileFormat = Literal["csv", "ndjson"]

_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class RawRow:
    """One record as read: its first line and its non-empty values."""

    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class BadLine:
    """A record that could not be read, or a fault in the CSV header."""

    line: int
    field: str | None
    reason: str


def detect_format(path: Path) -> FileFormat:
    """Tell the format from the file name: ``.csv``, or ``.ndjson``/``.jsonl``."""
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise UnknownFeedFormat(
            f"The file {path.name} does not end in .csv, .ndjson or .jsonl,"
            " so its format is unknown."
        ) from None


@dataclass
class _Progress:
    """What has been read so far, shared between the line source and its reader."""

    digest: Any = field(default_factory=hashlib.sha256)
    # The last line that was not valid UTF-8. Records are read front to
    # back, so a record holds such a line exactly when this is at or after
    # the record's first line; one number keeps that test constant in time.
    undecodable: int = 0
    line: int = 0


_COLUMN_LIKE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def column_like(name: str) -> bool:
    """Tell whether a header cell or JSON key may be shown as a field name.

    Column names are short lower-case words joined by underscores. Anything
    else may be a value put where a name belongs (a header left out, a file
    keyed by identity number) and is described by its position instead.
    """
    return bool(_COLUMN_LIKE.fullmatch(name))


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return found


_PAIRS_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs)


def _repeated_key(raw: bytes) -> str | None:
    """The first key that an object in the line gives twice, or None.

    orjson keeps the last of two equal keys without a word, so the line is
    read again, with the standard library's pairs hook, which sees them all.
    The line is known to be valid JSON by then, so only a key given twice
    (or nesting deeper than the standard library follows) can stop it.
    """
    try:
        _PAIRS_DECODER.decode(raw.decode("utf-8"))
    except _RepeatedKey as exc:
        return exc.key
    except (ValueError, RecursionError):
        return None
    return None


def _present(value: Any) -> bool:
    if value is None:
        return False
    return not (isinstance(value, str) and not value.strip())


class FeedFile:
    """An open feed file of one kind, read once, front to back.

    ``columns`` are the columns the kind has and ``required`` those a CSV
    header must name. For CSV, :attr:`problems` lists what is wrong with the
    header; a file with such problems has no usable rows. :attr:`sha256` and
    :attr:`position` grow as :meth:`rows` is consumed.
    """

    def __init__(
        self,
        path: Path,
        columns: Iterable[str],
        required: Iterable[str],
        file_format: FileFormat | None = None,
    ) -> None:
        self.path = path
        self.format: FileFormat = file_format or detect_format(path)
        self.columns = tuple(columns)
        self.required = frozenset(required)
        try:
            self._file: BinaryIO = path.open("rb")
            self.size = path.stat().st_size
        except OSError as exc:
            raise FeedFileUnreadable(
                f"The file {path.name} cannot be read: {exc.strerror or exc}."
            ) from None
        self._state = _Progress()
        self._header: list[str] | None = None
        self.problems: list[BadLine] = []
        self._reader: Any = None
        if self.format == "csv":
            self._open_csv()

    def __enter__(self) -> FeedFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def sha256(self) -> str:
        """The digest of the bytes read so far (of the whole file once read)."""
        return self._state.digest.hexdigest()

    @property
    def position(self) -> int:
        """How many bytes of the file have been read."""
        return self._file.tell()

    def _lines(self) -> Iterator[bytes]:
        state = self._state
        for raw in self._file:
            state.digest.update(raw)
            state.line += 1
            if state.line == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            yield raw

    def _decoded(self) -> Iterator[str]:
        for raw in self._lines():
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self._state.undecodable = self._state.line
                yield raw.decode("utf-8", errors="replace")

    def _open_csv(self) -> None:
        self._reader = csv.reader(self._decoded(), strict=True)
        try:
            header = next(self._reader, None)
        except csv.Error:
            self.problems.append(BadLine(1, None, "The header line is not valid CSV."))
            return
        if not header:
            self.problems.append(
                BadLine(
                    1,
                    None,
                    "The file has no header line; a CSV feed starts with a line"
                    " naming its columns.",
                )
            )
            return
        if self._state.undecodable:
            self.problems.append(
                BadLine(1, None, "The header line is not valid UTF-8.")
            )
            return
        names = [name.strip() for name in header]
        if not any(name in self.columns for name in names):
            # Most likely the header was left out and this is a data row,
            # whose cells (numbers, names) must not be repeated as column
            # names; nor is a list of every missing column any help.
            self.problems.append(
                BadLine(
                    1,
                    None,
                    "The first line names none of this feed kind's columns; a CSV"
                    " feed starts with a header line that names them.",
                )
            )
            return
        seen: set[str] = set()
        for position, name in enumerate(names, start=1):
            if not name:
                reason = "The header has a column without a name."
                self.problems.append(BadLine(1, None, reason))
            elif name in seen:
                reason = "The header names this column twice."
                self.problems.append(BadLine(1, name, reason))
            elif name not in self.columns:
                reason = "The header names a column this feed kind does not have"
                if column_like(name):
                    self.problems.append(BadLine(1, name, reason + "."))
                else:
                    reason += f" (column {position})."
                    self.problems.append(BadLine(1, None, reason))
            seen.add(name)
        for name in self.columns:
            if name in self.required and name not in seen:
                reason = "The header lacks this required column."
                self.problems.append(BadLine(1, name, reason))
        self._header = names

    def rows(self) -> Iterator[RawRow | BadLine]:
        """Yield each record, or a :class:`BadLine` where one cannot be read."""
        if self.problems:
            return
        if self.format == "csv":
            yield from self._csv_rows()
        else:
            yield from self._ndjson_rows()

    def _csv_rows(self) -> Iterator[RawRow | BadLine]:
        reader = self._reader
        header = self._header
        if header is None:
            return
        width = len(header)
        state = self._state
        while True:
            start = state.line + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # An unclosed quote takes the lines after it into its field,
                # so the sender must learn that those rows were lost too.
                if state.line > start:
                    where = f"The record from line {start} to line {state.line}"
                else:
                    where = "The line"
                yield BadLine(start, None, f"{where} is not valid CSV: {exc}.")
                continue
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if state.undecodable >= start:
                yield BadLine(start, None, "The line is not valid UTF-8.")
                continue
            if len(cells) != width:
                yield BadLine(
                    start,
                    None,
                    f"The row has {len(cells)} fields but the header names {width}.",
                )
                continue
            yield RawRow(
                start,
                {
                    name: cell
                    for name, cell in zip(header, cells, strict=True)
                    if cell.strip()
                },
            )

    def _ndjson_rows(self) -> Iterator[RawRow | BadLine]:
        state = self._state
        for raw in self._lines():
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                yield BadLine(state.line, None, "The line is not valid JSON in UTF-8.")
                continue
            if not isinstance(item, dict):
                yield BadLine(state.line, None, "The line is not a JSON object.")
                continue
            twice = _repeated_key(raw)
            if twice is not None:
                # Parsers differ in which of two values they keep, so neither
                # may be taken for the sender's meaning.
                shown = twice if column_like(twice) else None
                reason = "The line gives this key more than once."
                yield BadLine(state.line, shown, reason)
                continue
            yield RawRow(
                state.line,
                {key: value for key, value in item.items() if _present(value)},
            )
