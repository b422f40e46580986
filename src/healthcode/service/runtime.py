"""What a running service holds: settings, database, store, sender, clock, codes.

:func:`build_runtime` checks the configuration as it builds each part and
raises :class:`~healthcode.errors.ConfigurationError` naming the variable
that is wrong, so that a bad setting stops the server at start-up instead
of failing the first request that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.accounts.errors import StoreUnavailable
from healthcode.accounts.senders import CodeSender, ConsoleSender, FileSender
from healthcode.accounts.services import RateLimiter, SignInPolicy
from healthcode.accounts.stores import MemoryStore, RedisStore, Store
from healthcode.codes.keys import KeyStore
from healthcode.codes.services import CodeService
from healthcode.config import Settings
from healthcode.db import make_engine, utcnow
from healthcode.errors import ConfigurationError, HealthcodeError
from healthcode.family.services import FamilyPolicy
from healthcode.officials.services import OverridePolicy
from healthcode.privacy.errors import DataKeyError
from healthcode.privacy.keycheck import check_data_keys
from healthcode.privacy.types import data_keys
from healthcode.regions.peers import PeerStore
from healthcode.regions.services import peer_store
from healthcode.service.cache import StatusCache
from healthcode.service.hot import CodeIngredients, HotPaths
from healthcode.status.fence import FenceWatch, forget, publish_to

__all__ = ["Runtime", "build_runtime"]

Clock = Callable[[], datetime]


@dataclass
class Runtime:
    """The parts every request uses; one per application."""

    settings: Settings
    engine: Engine
    store: Store
    sender: CodeSender
    clock: Clock
    codes: CodeService
    cache: StatusCache
    limiter: RateLimiter
    sign_in: SignInPolicy
    owns_engine: bool = True

    @property
    def session_ttl(self) -> timedelta:
        return timedelta(days=self.settings.session_days)

    @property
    def official_session_ttl(self) -> timedelta:
        return timedelta(hours=self.settings.official_session_hours)

    @property
    def family(self) -> FamilyPolicy:
        return FamilyPolicy(
            max_dependents=self.settings.max_dependents,
            max_guardians=self.settings.max_guardians,
            child_under=self.settings.dependent_child_under,
            elder_from=self.settings.dependent_elder_from,
            zone=self.settings.tz,
        )

    @property
    def overrides(self) -> OverridePolicy:
        return OverridePolicy(bulk_threshold=self.settings.bulk_override_threshold)

    @cached_property
    def ingredients(self) -> CodeIngredients:
        return CodeIngredients(self.store, self.codes)

    @cached_property
    def peers(self) -> PeerStore:
        return peer_store(self.codes.store.directory)

    @cached_property
    def reads(self) -> Engine:
        """The engine in autocommit, for lookups that are a single read.

        A single read needs no transaction of its own: in autocommit it is
        one round trip instead of three (BEGIN, SELECT, ROLLBACK) and sees
        what was committed before it, as a read in a transaction would.
        """
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @cached_property
    def hot(self) -> HotPaths:
        return HotPaths(
            self.engine,
            self.store,
            self.cache,
            self.ingredients,
            self.codes,
        )

    @cached_property
    def fence_watch(self) -> FenceWatch:
        return FenceWatch(self.engine, self.store)

    def close(self) -> None:
        forget(self.engine, self.store)
        if self.owns_engine:
            self.engine.dispose()


# Connections a worker keeps open to PostgreSQL, and how many more it may
# open for a moment. A request in flight holds one connection at a time, and
# a worker admits ``HEALTHCODE_MAX_IN_FLIGHT`` (32) of them, most of which
# wait on Redis or the thread pool rather than on the database. A pool that
# is too small for the requests in flight opens and closes a connection per
# request, and each costs PostgreSQL a process start: far more than the
# queries that connection then runs.
_POOL_SIZE = 12
_POOL_OVERFLOW = 8


def _engine(settings: Settings) -> Engine:
    options: dict[str, int] = {}
    if settings.database_url.startswith("postgresql"):
        options = {"pool_size": _POOL_SIZE, "max_overflow": _POOL_OVERFLOW}
    engine = make_engine(settings.database_url, **options)
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise ConfigurationError(
            "HEALTHCODE_DATABASE_URL names a database that cannot be opened"
            f" ({type(exc).__name__}); check the URL and that the server runs."
        ) from None
    missing = {"residents", "accounts", "audit_head", "overrides"} - tables
    if missing:
        engine.dispose()
        raise ConfigurationError(
            "The database that HEALTHCODE_DATABASE_URL names is not migrated"
            f" (no table {sorted(missing)[0]}); `healthcode serve` migrates it"
            " before it starts."
        )
    try:
        check_data_keys(engine, data_keys())
    except DataKeyError:
        engine.dispose()
        raise
    return engine


def _store(settings: Settings) -> Store:
    if settings.redis_url:
        try:
            return RedisStore.from_url(settings.redis_url, settings.redis_prefix)
        except StoreUnavailable as exc:
            raise ConfigurationError(str(exc)) from None
    return MemoryStore()


def _sender(settings: Settings) -> CodeSender:
    if settings.sign_in_sender == "file":
        path = Path(settings.sign_in_file)
        if not path.parent.is_dir():
            raise ConfigurationError(
                "HEALTHCODE_SIGN_IN_FILE names a file in a folder that does not"
                f" exist: {path.parent}."
            )
        return FileSender(path)
    return ConsoleSender()


def _codes(settings: Settings) -> CodeService:
    directory = Path(settings.key_dir)
    if directory.exists() and not directory.is_dir():
        raise ConfigurationError(
            f"HEALTHCODE_KEY_DIR names {directory}, which is not a directory."
        )
    return CodeService(KeyStore(directory), region=settings.region, zone=settings.tz)


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    sender: CodeSender | None = None,
    engine: Engine | None = None,
) -> Runtime:
    """Check the configuration and build the parts; the arguments replace parts."""
    from healthcode.status.services import active_rule_set

    try:
        active_rule_set()
    except HealthcodeError as exc:
        raise ConfigurationError(
            f"HEALTHCODE_RULE_SET names a rule set that cannot be used: {exc}"
        ) from None
    chosen_store = store if store is not None else _store(settings)
    chosen_engine = engine if engine is not None else _engine(settings)
    # Status writes made through this database raise the store's copy of the
    # status fence before they commit (healthcode.status.fence).
    publish_to(chosen_engine, chosen_store)
    return Runtime(
        settings=settings,
        engine=chosen_engine,
        store=chosen_store,
        sender=sender if sender is not None else _sender(settings),
        clock=clock or utcnow,
        codes=_codes(settings),
        cache=StatusCache(chosen_store, settings.tz),
        limiter=RateLimiter(chosen_store),
        sign_in=SignInPolicy(
            code_ttl=timedelta(minutes=settings.sign_in_code_minutes),
            max_attempts=settings.sign_in_attempts,
            lockout=timedelta(minutes=settings.sign_in_lockout_minutes),
        ),
        owns_engine=engine is None,
    )
