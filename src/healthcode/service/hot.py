"""The code refresh, the hot path: what it needs, kept between refreshes.

A resident refreshes their screen code every few minutes all day, and the
masked name and issuing region on it almost never change. Reading them from
the database on every refresh cost more than signing the code, so they are
kept in the shared store for a while (:class:`CodeIngredients`).

A corrected name or region of residence reaches new codes only when its
entry expires, up to ``ttl_seconds`` later; the colour, which decides entry
at the door, never comes from here.

:class:`HotPaths` answers a refresh whose status and ingredients are both
in the store with one query (the account's resident and the status cache's
fence, in one statement) and one store read of both; an online verify with
one read of the fence and one of the store.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.errors import NotSignedIn, OutOfScope, StoreUnavailable
from healthcode.accounts.models import Account
from healthcode.accounts.services import Principal
from healthcode.accounts.stores import Store, resident_key
from healthcode.codes.format import Colour, VerifiedCode
from healthcode.codes.services import CodeService, IssuedCode, local_verifier
from healthcode.family.errors import NotRegistered
from healthcode.service.cache import StatusCache
from healthcode.status.models import RecolorGuard
from healthcode.status.services import StatusView

__all__ = ["CodeIngredients", "HotPaths"]


class CodeIngredients:
    """Masked names and issuing regions by resident id, in a store."""

    def __init__(self, store: Store, codes: CodeService, ttl_seconds: float = 600):
        self.store = store
        self.codes = codes
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def key(resident_id: int) -> str:
        """The store key of a resident's ingredients."""
        return resident_key("code-ingredients", resident_id)

    @staticmethod
    def decode(raw: bytes) -> tuple[str, str]:
        name, region = orjson.loads(raw)
        return str(name), str(region)

    def of(self, session: Session, resident_id: int) -> tuple[str, str]:
        """The resident's masked name and issuing region."""
        key = self.key(resident_id)
        try:
            raw = self.store.get(key)
        except StoreUnavailable:
            # Redis is a shortcut here, never the record: without it the
            # ingredients come from the database.
            return self.codes.ingredients(session, resident_id)
        if raw is not None:
            return self.decode(raw)
        name, region = self.codes.ingredients(session, resident_id)
        with contextlib.suppress(StoreUnavailable):
            self.store.set(key, orjson.dumps([name, region]), self.ttl_seconds)
        return name, region


# The fence row may be missing on a database no status was ever written to;
# it counts as 0, as in the status cache.
_FENCE = (
    sa.select(RecolorGuard.writes)
    .where(RecolorGuard.id == 1)
    .scalar_subquery()
    .label("fence")
)
# The account's resident and the fence in one round trip.
_ACCOUNT_AND_FENCE = sa.select(Account.resident_id, _FENCE).where(
    Account.id == sa.bindparam("account_id")
)


class _Lookup:
    """One SELECT of a single row, run on a pooled driver connection.

    A refresh's one read went through SQLAlchemy's Connection, whose
    checkout, execution and result handling cost several times the round
    trip itself. The statement is compiled once for the engine's dialect and
    run on the driver's cursor, in autocommit for the duration (a single
    read needs no transaction of its own: one round trip instead of BEGIN,
    SELECT, ROLLBACK, seeing what was committed before it).
    """

    def __init__(self, engine: Engine, statement: sa.Select[Any]) -> None:
        self.engine = engine
        compiled = statement.compile(dialect=engine.dialect)
        self.compiled = compiled
        self.sql = compiled.string
        self.order = list(compiled.positiontup or ()) if compiled.positional else None

    def one(self, **values: object) -> tuple[Any, ...] | None:
        bound = self.compiled.construct_params(values)
        params: Any = bound if self.order is None else [bound[n] for n in self.order]
        dialect = self.engine.dialect
        connection = self.engine.raw_connection()
        driver = connection.dbapi_connection
        try:
            dialect.set_isolation_level(driver, "AUTOCOMMIT")
            try:
                cursor = connection.cursor()
                cursor.execute(self.sql, params)
                row = cursor.fetchone()
                cursor.close()
            finally:
                dialect.reset_isolation_level(driver)
        except dialect.loaded_dbapi.Error as exc:
            # Raised as SQLAlchemy would have, parameters hidden; a lost
            # connection leaves the pool instead of failing the next request.
            if dialect.is_disconnect(exc, driver, None):
                connection.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                self.sql,
                params,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=dialect,
            ) from exc
        finally:
            connection.close()
        return None if row is None else tuple(row)


class HotPaths:
    """The code refresh and the online verify, from the store when they can be.

    Each runs in one trip to the thread pool and reads the database once,
    through a :class:`_Lookup`. A status the store does not hold, or holds
    under another fence, is read through :meth:`StatusCache.status` in a
    transaction, as everywhere else.
    """

    def __init__(
        self,
        engine: Engine,
        store: Store,
        cache: StatusCache,
        ingredients: CodeIngredients,
        codes: CodeService,
    ) -> None:
        self.engine = engine
        self._account = _Lookup(engine, _ACCOUNT_AND_FENCE)
        self._fence = _Lookup(engine, sa.select(_FENCE))
        self.store = store
        self.cache = cache
        self.ingredients = ingredients
        self.codes = codes

    def _stored(self, keys: list[str]) -> list[bytes | None]:
        try:
            return self.store.get_many(keys)
        except StoreUnavailable:
            return [None] * len(keys)

    def refresh(self, principal: Principal, now: datetime) -> IssuedCode:
        """Sign a screen code for the resident who registered this phone."""
        if principal.kind != "account":
            raise OutOfScope("This is for residents and guardians signed in by phone.")
        row = self._account.one(account_id=principal.id)
        if row is None:
            raise NotSignedIn("The session's account no longer exists.")
        resident_id, fence = row
        if resident_id is None:
            raise NotRegistered("This phone has not registered as a resident yet.")
        status, ingredients = self._stored(
            [self.cache.key(resident_id), self.ingredients.key(resident_id)]
        )
        view = self.cache.current(resident_id, status, int(fence or 0), now)
        if view is not None and ingredients is not None:
            self.cache.hits += 1
            name, region = self.ingredients.decode(ingredients)
        else:
            with (
                Session(self.engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                name, region = self.ingredients.of(session, resident_id)
                view = self.cache.status(session, resident_id, now)
        return self.codes.screen_code_with(
            resident_id, name, region, Colour(view.colour), now
        )

    def verify(self, code: str, now: datetime) -> tuple[VerifiedCode, StatusView]:
        """Verify ``code`` and read its holder's status now."""
        verified = local_verifier(self.codes.store).verify(code, now)
        resident_id = self.codes.holder(verified.content)
        row = self._fence.one()
        fence = int(row[0] or 0) if row is not None else 0
        (status,) = self._stored([self.cache.key(resident_id)])
        view = self.cache.current(resident_id, status, fence, now)
        if view is not None:
            self.cache.hits += 1
            return verified, view
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            return verified, self.cache.status(session, resident_id, now)
