"""Database engine, metadata and migrations.

SQLite in a file is the embedded default; ``HEALTHCODE_DATABASE_URL`` selects
PostgreSQL (``postgresql+psycopg://...``). The schema is owned by Alembic: the
migrations under ``healthcode/migrations`` are the only way it changes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from healthcode.errors import ConfigurationError

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, stored as UTC and always read back timezone-aware.

    PostgreSQL keeps it in ``timestamptz``. SQLite has no time type; there it
    is text in one fixed-width form (``YYYY-MM-DD HH:MM:SS.ffffff``), so that
    comparing the text compares the instants, and reading it back is one call
    to :meth:`datetime.fromisoformat` rather than a pattern match per value,
    which matters when a recolour reads millions of them. A naive datetime
    handed to the database is refused rather than guessed at.
    """

    impl = sa.DateTime
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__(timezone=True)

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(26))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError("an instant must be a datetime")
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an instant is stored")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return sqlite_instant_text(value)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def sqlite_instant_text(value: datetime) -> str:
    """The fixed-width UTC text that SQLite stores for an aware instant."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``, tuned for the backend it names."""
    try:
        sa_url = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(
            "HEALTHCODE_DATABASE_URL is not a database URL."
        ) from exc
    if sa_url.get_backend_name() == "postgresql" and sa_url.drivername == "postgresql":
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    if sa_url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"HEALTHCODE_DATABASE_URL names backend {sa_url.get_backend_name()!r};"
            " only sqlite and postgresql are supported."
        )
    # JSON columns (reasons, evidence) are written and read millions of times
    # by a recolour; orjson does both several times faster than the standard
    # library and gives the same text for the same value.
    kwargs.setdefault("json_serializer", _json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    engine = sa.create_engine(sa_url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets the demo's status reads run beside an import; NORMAL sync is
    # durable across application crashes, which is what an embedded,
    # single-machine deployment needs.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-200000")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest migration of every domain.

    Each domain's migrations form a branch from the initial schema, so that
    domains can grow their tables independently; "heads" applies them all.
    """
    from alembic import command
    from alembic.config import Config

    # The models must be imported so that autogenerate and the migrations
    # see one and the same metadata.
    import healthcode.models  # noqa: F401

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("healthcode") / "migrations")
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_database(url: str | None = None, *, must_exist: bool = False) -> Engine:
    """Engine for ``url`` (default: the configured one), schema brought up to date.

    With ``must_exist``, a SQLite file that is not there is an error rather
    than a new empty database: a command that only reads would otherwise
    answer "nobody is registered" from a file it has just created.
    """
    configured = url is None
    if url is None:
        from healthcode.config import get_settings

        url = get_settings().database_url
    if must_exist:
        parsed = sa.make_url(url)
        database = parsed.database or ""
        if (
            parsed.get_backend_name() == "sqlite"
            and database not in ("", ":memory:")
            and not Path(database).exists()
        ):
            raise ConfigurationError(
                f"HEALTHCODE_DATABASE_URL names the SQLite file {database},"
                " which does not exist; run the demo or an import first, or set"
                " the variable to the database to read."
            )
    engine = make_engine(url)
    migrate(engine)
    from healthcode.privacy.keycheck import check_data_keys
    from healthcode.privacy.types import data_keys

    try:
        check_data_keys(engine, data_keys())
    except Exception:
        engine.dispose()
        raise
    if configured:
        _attach_configured_store(engine)
    return engine


def _attach_configured_store(engine: Engine) -> None:
    """Let this process's status writes and revocations reach the service's store.

    A command that recolours or revokes tells the store before it commits
    (:mod:`healthcode.status.fence`), so the service's hot reads see the
    change at once rather than at the service's next look, a second later.
    """
    from healthcode.accounts.errors import StoreUnavailable
    from healthcode.accounts.stores import RedisStore, attach_store
    from healthcode.config import get_settings

    settings = get_settings()
    if not settings.redis_url:
        return
    named = (settings.redis_url, settings.redis_prefix)
    store = _configured_stores.get(named)
    if store is None:
        try:
            store = RedisStore.from_url(*named)
        except StoreUnavailable:
            # The store is a copy, never the record: the service's watch
            # brings it level within a second of the store answering again.
            return
        _configured_stores[named] = store
    attach_store(engine, store)


# One store per configured Redis, however many engines a process opens.
_configured_stores: dict[tuple[str, str], Any] = {}


def _sqlite_instant(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _converter(column_type: Any, dialect_name: str) -> Any:
    """How to turn one raw driver value of ``column_type`` into its Python value."""
    if isinstance(column_type, UTCDateTime):
        if dialect_name == "sqlite":
            return _sqlite_instant
        return lambda value: value.astimezone(UTC)
    if dialect_name != "sqlite":
        return None
    if isinstance(column_type, sa.JSON):
        return orjson.loads
    if isinstance(column_type, sa.Boolean):
        return bool
    if isinstance(column_type, sa.Date):
        return date.fromisoformat
    return None


_PLAIN_CACHE: dict[tuple[int, str], tuple[str, tuple[tuple[int, Any], ...]]] = {}


def fetch_plain(connection: Any, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Run a SELECT on the raw driver cursor and convert only what needs it.

    Bulk jobs read millions of rows; SQLAlchemy's per-row result processing
    costs about as much as the query itself. This path compiles the statement
    once, hands it to the driver, and converts just the columns whose stored
    form differs from their Python form (instants, and on SQLite JSON,
    booleans and dates). The statement's bound values must be plain integers
    or strings (they are rendered inline, which for those types is exact).
    """
    dialect = connection.dialect
    sql = str(
        statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    )
    key = (hash(sql), dialect.name)
    cached = _PLAIN_CACHE.get(key)
    if cached is None or cached[0] != sql:
        converters = tuple(
            (index, converter)
            for index, column in enumerate(statement.selected_columns)
            if (converter := _converter(column.type, dialect.name)) is not None
        )
        if len(_PLAIN_CACHE) > 512:
            _PLAIN_CACHE.clear()
        _PLAIN_CACHE[key] = cached = (sql, converters)
    converters = cached[1]
    raw = connection.connection.driver_connection
    cursor = raw.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not converters:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        values = list(row)
        for index, converter in converters:
            value = values[index]
            if value is not None:
                values[index] = converter(value)
        out.append(tuple(values))
    return out


def postgres_reachable(url: str) -> bool:
    """Whether a PostgreSQL server answers at ``url`` within two seconds."""
    try:
        engine = make_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


@contextmanager
def throwaway_postgres(server_url: str) -> Iterator[str]:
    """A database of its own on ``server_url``'s server, dropped afterwards.

    Benchmarks measure in it so that they never empty a database that
    someone else uses.
    """
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"healthcode_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        admin.dispose()
