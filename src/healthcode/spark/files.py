"""Snapshots and results: the files a job reads and writes, and their codec.

A job never reads the database. Its driver (or ``healthcode spark export``)
writes a snapshot of the records the job needs as Parquet files plus a
``manifest.json`` of the job's parameters; the job writes its results as
Parquet; an import step loads them into the database in one transaction.
Where the files live is a *location*: a local folder for local mode, or any
URI that both pyarrow and Spark read (``hdfs://...``, or a folder mounted at
the same path on the driver and every executor).

Columns are stored by their SQLAlchemy type, so that a row read back from a
snapshot is equal, value for value, to the row the database gave:

* instants as int64 microseconds since the Unix epoch (UTC), which no time
  zone setting of Spark or of a Python worker can shift;
* dates as Parquet dates, booleans and integers as themselves;
* JSON as its text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
import sqlalchemy as sa

from healthcode.db import UTCDateTime
from healthcode.spark.errors import SnapshotError, SparkUnavailable

if TYPE_CHECKING:
    import pyarrow as pa

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
FORMAT = 1


# Values


def instant_to_stored(value: datetime | None) -> int | None:
    return None if value is None else (value - EPOCH) // _US


def instant_from_stored(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def json_to_stored(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def json_from_stored(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _same(value: Any) -> Any:
    return value


def _integer(value: Any) -> Any:
    return None if value is None else int(value)


def _boolean(value: Any) -> Any:
    return None if value is None else bool(value)


#: kind -> (encode, decode); the arrow type of each kind is in _arrow_type.
_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "instant": (instant_to_stored, instant_from_stored),
    "json": (json_to_stored, json_from_stored),
    "date": (_same, _same),
    "bool": (_boolean, _same),
    "int": (_integer, _same),
    "text": (_same, _same),
}


def kind_of(column_type: Any) -> str:
    """How a column of ``column_type`` is stored in a snapshot."""
    if isinstance(column_type, UTCDateTime):
        return "instant"
    if isinstance(column_type, sa.JSON):
        return "json"
    if isinstance(column_type, sa.Date):
        return "date"
    if isinstance(column_type, sa.Boolean):
        return "bool"
    if isinstance(column_type, sa.Integer):
        return "int"
    if isinstance(column_type, sa.String):
        return "text"
    raise SnapshotError(
        f"A column of type {type(column_type).__name__} cannot be put in a snapshot."
    )


class RowCodec:
    """Turns rows of some columns into their stored form and back."""

    def __init__(self, names: Sequence[str], kinds: Sequence[str]) -> None:
        if len(set(names)) != len(names):
            raise SnapshotError(f"The snapshot columns {list(names)} repeat a name.")
        self.names = tuple(names)
        self.kinds = tuple(kinds)
        self._encoders = tuple(_CODECS[kind][0] for kind in kinds)
        self._decoders = tuple(_CODECS[kind][1] for kind in kinds)

    @classmethod
    def of_columns(cls, columns: Iterable[Any]) -> RowCodec:
        columns = list(columns)
        return cls([c.name for c in columns], [kind_of(c.type) for c in columns])

    def encode(self, row: Sequence[Any]) -> dict[str, Any]:
        return {
            name: encode(value)
            for name, encode, value in zip(self.names, self._encoders, row, strict=True)
        }

    def encode_tuple(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            encode(value) for encode, value in zip(self._encoders, row, strict=True)
        )

    def decode(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            decode(value) for decode, value in zip(self._decoders, row, strict=True)
        )

    def arrow_struct(self) -> pa.StructType:
        pa = _pyarrow()
        return pa.struct(
            [
                pa.field(name, _arrow_type(kind))
                for name, kind in zip(self.names, self.kinds, strict=True)
            ]
        )

    def arrow_schema(self) -> pa.Schema:
        struct = self.arrow_struct()
        return _pyarrow().schema(
            [struct.field(index) for index in range(struct.num_fields)]
        )

    def spark_schema(self) -> Any:
        from pyspark.sql import types as T

        spark_types = {
            "instant": T.LongType(),
            "json": T.StringType(),
            "date": T.DateType(),
            "bool": T.BooleanType(),
            "int": T.LongType(),
            "text": T.StringType(),
        }
        return T.StructType(
            [
                T.StructField(name, spark_types[kind], True)
                for name, kind in zip(self.names, self.kinds, strict=True)
            ]
        )


def _arrow_type(kind: str) -> pa.DataType:
    pa = _pyarrow()
    return {
        "instant": pa.int64(),
        "json": pa.string(),
        "date": pa.date32(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "text": pa.string(),
    }[kind]


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise SparkUnavailable(
            "Snapshots are written with pyarrow; install healthcode with its"
            " 'spark' extra (pip install 'healthcode[spark]')."
        ) from exc
    return pyarrow


# Locations


def spark_uri(location: str) -> str:
    """``location`` as Spark reads it: a bare path is a local folder.

    On a cluster whose default file system is HDFS a bare path would name
    an HDFS folder, so local folders are always given as ``file://``.
    """
    if urlsplit(location).scheme:
        return location
    return Path(location).resolve().as_uri()


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts])


def _filesystem(location: str) -> tuple[Any, str]:
    from pyarrow import fs

    if urlsplit(location).scheme:
        return fs.FileSystem.from_uri(location)  # type: ignore[no-any-return]
    return fs.LocalFileSystem(), str(Path(location).resolve())


def write_json(location: str, document: dict[str, Any]) -> None:
    filesystem, path = _filesystem(location)
    filesystem.create_dir(os.path.dirname(path), recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def read_json(location: str, what: str) -> dict[str, Any]:
    filesystem, path = _filesystem(location)
    try:
        with filesystem.open_input_stream(path) as stream:
            document = orjson.loads(stream.read())
    except (FileNotFoundError, OSError) as exc:
        raise SnapshotError(f"The {what} at {location} cannot be read.") from exc
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"The {what} at {location} is not JSON.") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SnapshotError(
            f"The {what} at {location} is not of format {FORMAT} of this version."
        )
    return document


#: What each job's manifest and summary must hold for the steps that read them.
_MANIFEST_FIELDS = {
    "recolor": ("now", "cause", "rule_set", "areas", "records_version"),
    "trace": ("now", "cutoff", "policy", "windows"),
}
_SUMMARY_FIELDS = {
    "recolor": ("residents", "rule_failures"),
    "trace": ("seconds", "found"),
}


def _require(document: dict[str, Any], names: Sequence[str], what: str) -> None:
    for name in names:
        if name not in document:
            raise SnapshotError(
                f"The {what} has no {name!r}; it was not written whole by this"
                " version's export or job."
            )


def read_manifest(snapshot: str, job: str) -> dict[str, Any]:
    """The manifest of the snapshot at ``snapshot``, which must be ``job``'s."""
    manifest = read_json(join(snapshot, "manifest.json"), "snapshot manifest")
    if manifest.get("job") != job:
        raise SnapshotError(
            f"The snapshot at {snapshot} is for the {manifest.get('job')!r} job,"
            f" not {job!r}."
        )
    _require(manifest, _MANIFEST_FIELDS[job], f"snapshot manifest at {snapshot}")
    return manifest


def read_summary(result: str, snapshot: str, manifest: dict[str, Any]) -> dict:
    """The summary of the job result at ``result``, made from ``snapshot``."""
    summary = read_json(join(result, "summary.json"), "job summary")
    if (
        summary.get("job") != manifest["job"]
        or summary.get("snapshot_now") != manifest["now"]
    ):
        raise SnapshotError(
            f"The job result at {result} was not made from the snapshot at {snapshot}."
        )
    _require(summary, _SUMMARY_FIELDS[manifest["job"]], f"job summary at {result}")
    return summary


class PartWriter:
    """Parquet files ``part-00000.parquet``, ... in one folder, one per batch."""

    def __init__(self, location: str, schema: pa.Schema) -> None:
        self.location = location
        self.schema = schema
        self.parts = 0
        self.rows = 0
        self._filesystem, self._path = _filesystem(location)
        self._filesystem.create_dir(self._path, recursive=True)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """One file of ``rows``; an empty batch writes a file only when none
        exists yet, so a reader always finds the schema."""
        if not rows and self.parts:
            return
        pa = _pyarrow()
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows, schema=self.schema)
        name = f"{self._path}/part-{self.parts:05d}.parquet"
        pq.write_table(table, name, filesystem=self._filesystem)
        self.parts += 1
        self.rows += len(rows)

    def close(self) -> None:
        self.write([])


def read_parts(
    location: str, columns: Sequence[str] | None = None, what: int | None = None
) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet folder, batch by batch, as dictionaries; with
    ``what``, only the rows whose ``what`` column holds it.

    Files whose names start with ``_`` or ``.`` (Spark's ``_SUCCESS``) are
    not data and are passed over.
    """
    import pyarrow.dataset as ds

    filesystem, path = _filesystem(location)
    try:
        dataset = ds.dataset(path, format="parquet", filesystem=filesystem)
    except (FileNotFoundError, OSError) as exc:
        raise SnapshotError(f"The job result at {location} cannot be read.") from exc
    chosen = None if what is None else ds.field("what") == what
    for batch in dataset.to_batches(
        columns=list(columns) if columns else None, filter=chosen
    ):
        yield from batch.to_pylist()


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
