"""The code refresh, the hot path: what it needs, kept between refreshes.

A resident refreshes their screen code every few minutes all day, and the
masked name and issuing region on it almost never change. Reading them from
the database on every refresh cost more than signing the code, so they are
kept in the shared store for a while (:class:`CodeIngredients`).

A corrected name or region of residence reaches new codes only when its
entry expires, up to ``ttl_seconds`` later; the colour, which decides entry
at the door, never comes from here.

:class:`HotPaths` answers a refresh whose status and ingredients are both
in the store with one store read and no query, an online verify with one
store read; on a single Redis server those reads travel in the pipelines
that the store makes of each turn's reads.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from healthcode.accounts.errors import NotSignedIn, OutOfScope, StoreUnavailable
from healthcode.accounts.models import Account
from healthcode.accounts.services import (
    API_KEY_GENERATION,
    ApiKeyKind,
    LiveKey,
    Transport,
    api_key_entry,
    check_api_key,
    live_key_in,
    require_key_kind,
    session_in,
    session_key,
    session_with_resident,
)
from healthcode.accounts.stores import Store, resident_key, resident_key_pattern
from healthcode.codes.errors import InvalidCode, InvalidReference
from healthcode.codes.format import Colour, VerifiedCode, parse_code
from healthcode.codes.services import CodeService, IssuedCode, local_verifier
from healthcode.family.errors import NotRegistered
from healthcode.identity.models import Resident
from healthcode.service.cache import StatusCache
from healthcode.status.fence import FENCE_KEY, FENCE_TTL_SECONDS, stored_fence
from healthcode.status.models import RecolorGuard, Status
from healthcode.status.services import StatusView, is_current, status_view

__all__ = ["CodeIngredients", "HotPaths"]


class CodeIngredients:
    """Masked names and issuing regions by resident id, in a store."""

    def __init__(self, store: Store, codes: CodeService, ttl_seconds: float = 600):
        self.store = store
        self.codes = codes
        self.ttl_seconds = ttl_seconds

    KIND = "code-ingredients"

    @staticmethod
    def key(resident_id: int) -> str:
        """The store key of a resident's ingredients."""
        return resident_key(CodeIngredients.KIND, resident_id)

    def entry(
        self, resident_id: int, name: str, region: str
    ) -> tuple[str, bytes, float]:
        """The store key, value and lifetime of a resident's ingredients."""
        return self.key(resident_id), orjson.dumps([name, region]), self.ttl_seconds

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
            self.store.set(*self.entry(resident_id, name, region))
        return name, region


# The cold refresh's one read: the account's resident, the status fence, the
# resident and their status. The fence row may be missing on a database no
# status was ever written to; it counts as 0, as in the status cache.
_COLD = (
    sa.select(
        Account.resident_id,
        sa.select(RecolorGuard.writes)
        .where(RecolorGuard.id == 1)
        .scalar_subquery()
        .label("fence"),
        Resident,
        Status,
    )
    .select_from(Account)
    .outerjoin(Resident, Resident.id == Account.resident_id)
    .outerjoin(Status, Status.resident_id == Account.resident_id)
    .where(Account.id == sa.bindparam("account_id"))
)


class HotPaths:
    """The code refresh and the online verify, from the store when they can be.

    Both run on the event loop and, when the store holds what they need,
    read nothing but the store, once: a refresh reads the session (which
    keeps the account's resident once known) with the status, the
    ingredients and the store's copy of the status fence, and signs; an
    online verify reads the device's checked key with the holder's status
    and the fence, then verifies the code. What the store does not hold, or
    holds under another fence, is read in a thread from the database. See
    :mod:`healthcode.status.fence` for why the store's copy of the fence
    retires a cached status as surely as the database's count would.
    """

    def __init__(
        self,
        engine: Engine,
        store: Store,
        cache: StatusCache,
        ingredients: CodeIngredients,
        codes: CodeService,
        sessions: Store | None = None,
    ) -> None:
        self.engine = engine
        self.reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.store = store
        # Sessions and hot entries share one store in a service; a session
        # is the record of a sign-in, which a lost store cannot stand in for.
        self.sessions = sessions if sessions is not None else store
        self._refresh_keys = [
            resident_key_pattern(StatusCache.KIND),
            resident_key_pattern(CodeIngredients.KIND),
            FENCE_KEY,
        ]
        self.cache = cache
        self.ingredients = ingredients
        self.codes = codes

    async def _stored(self, keys: list[str]) -> list[bytes | None]:
        try:
            return await self.store.read_many(keys)
        except StoreUnavailable:
            # Redis is a shortcut here, never the record: without it the
            # status comes from the database.
            return [None] * len(keys)

    def _served(
        self, resident_id: int, status: bytes | None, fence: bytes | None, now: datetime
    ) -> StatusView | None:
        held = stored_fence(fence)
        if held is None:
            return None
        view = self.cache.current(resident_id, status, held, now)
        if view is not None:
            self.cache.hits += 1
        return view

    async def refresh(
        self, token: str, transport: Transport, now: datetime
    ) -> IssuedCode:
        """Sign a screen code for the resident who registered this phone."""
        key = session_key(token)
        if self.sessions is self.store:
            # One round trip: the session and, once it holds its resident,
            # what the resident's code needs.
            raw, follows = await self.store.read_following(
                key, "resident", self._refresh_keys
            )
        else:
            (raw,) = await self.sessions.read_many([key])
            follows = None
        principal, resident_id = session_in(raw, transport, now)
        if principal.kind != "account":
            raise OutOfScope("This is for residents and guardians signed in by phone.")
        if resident_id is not None and follows is None:
            follows = await self._stored(
                [
                    self.cache.key(resident_id),
                    self.ingredients.key(resident_id),
                    FENCE_KEY,
                ]
            )
        if resident_id is not None and follows is not None:
            status, ingredients, fence = follows
            view = self._served(resident_id, status, fence, now)
            if view is not None and ingredients is not None:
                name, region = self.ingredients.decode(ingredients)
                return self.codes.screen_code_with(
                    resident_id, name, region, Colour(view.colour), now
                )
        return await run_in_threadpool(
            self._cold_refresh, principal.id, key, raw, resident_id, now
        )

    def _cold_refresh(
        self,
        account_id: int,
        key: str,
        raw: bytes | None,
        known: int | None,
        now: datetime,
    ) -> IssuedCode:
        """A refresh the store could not answer: one read and one write back.

        The account's resident, the fence, the resident and their status
        come in one statement, so the status is cached under the count of
        the same snapshot; the session, the status, the ingredients and the
        fence's copy go back to the store in one round trip. A status that
        is missing or due for a re-evaluation takes the transaction path.
        """
        with Session(self.reads) as session:
            row = session.execute(_COLD, {"account_id": account_id}).one_or_none()
        if row is None:
            raise NotSignedIn("The session's account no longer exists.")
        resident_id, fence, resident, status = row
        if resident_id is None:
            raise NotRegistered("This phone has not registered as a resident yet.")
        replaces = []
        if known is None and raw is not None:
            replaces.append((key, session_with_resident(raw, resident_id)))
        if resident is None or status is None or not is_current(status, now):
            self._write_back([], replaces, None)
            return self._refresh_from_database(resident_id, now)
        self.cache.misses += 1
        view = status_view(status)
        name, region = self.codes.ingredients_of(resident)
        sets = [self.ingredients.entry(resident_id, name, region)]
        entry = self.cache.entry(view, int(fence or 0), status.recheck_at, now)
        if entry is not None:
            sets.append(entry)
        self._write_back(sets, replaces, int(fence or 0))
        return self.codes.screen_code_with(
            resident_id, name, region, Colour(view.colour), now
        )

    def _write_back(
        self,
        sets: list[tuple[str, bytes, float]],
        replaces: list[tuple[str, bytes]],
        fence: int | None,
    ) -> None:
        raises = [] if fence is None else [(FENCE_KEY, fence, FENCE_TTL_SECONDS)]
        if self.sessions is not self.store:
            for name, value in replaces:
                with contextlib.suppress(StoreUnavailable):
                    self.sessions.replace(name, value)
            replaces = []
        if sets or replaces or raises:
            # The store is a copy: what it does not take now is read again
            # from the database next time.
            with contextlib.suppress(StoreUnavailable):
                self.store.write_many(sets, replaces, raises)

    def _refresh_from_database(self, resident_id: int, now: datetime) -> IssuedCode:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            name, region = self.ingredients.of(session, resident_id)
            view = self.cache.status(session, resident_id, now)
        return self.codes.screen_code_with(
            resident_id, name, region, Colour(view.colour), now
        )

    async def checkpoint_verify(
        self, key: str, code: str, now: datetime, *kinds: ApiKeyKind
    ) -> tuple[VerifiedCode, StatusView] | None:
        """Check the device's ``key``, verify ``code`` and read its holder's status.

        One store read serves both the key and the status: the holder is
        read from the code before its signature is checked, and nothing is
        answered from it until the key is found live and the code verified.
        None when the code names another region, which the caller verifies
        against its peers once this has checked the key.
        """
        names = [api_key_entry(key), API_KEY_GENERATION]
        verifier = local_verifier(self.codes.store)
        # A code that cannot be read is refused after the key is checked, so
        # that a caller without a live key learns nothing about codes.
        try:
            parsed = parse_code(code)
            claimed = parsed[0]
            local = claimed.region in verifier.regions
        except InvalidCode:
            parsed, claimed, local = None, None, True
        resident_id = None
        if claimed is not None and local:
            # A reference that does not open here is no more telling than
            # any other bad code: it is refused, if at all, by the verifier
            # after the key, never before.
            with contextlib.suppress(InvalidCode, InvalidReference):
                resident_id = self.codes.holder(claimed)
        if resident_id is not None:
            names += [self.cache.key(resident_id), FENCE_KEY]
        stored = await self._stored(names)
        live = await self._live_key(key, stored[0], stored[1], now)
        require_key_kind(live, *kinds)
        if not local:
            return None
        if parsed is None:
            raise InvalidCode()
        # The text was read above; it is checked without decoding it again.
        verified = verifier.verify_parsed(parsed, now)
        if verified.content is claimed and resident_id is not None:
            holder = resident_id
        else:
            holder = self.codes.holder(verified.content)
        if holder == resident_id:
            view = self._served(holder, stored[2], stored[3], now)
            if view is not None:
                return verified, view
        return verified, await run_in_threadpool(self._status, holder, now)

    async def api_key(self, key: str, now: datetime) -> LiveKey:
        """The live API key ``key``, from the store while its generation holds."""
        raw, generation = await self._stored([api_key_entry(key), API_KEY_GENERATION])
        return await self._live_key(key, raw, generation, now)

    async def _live_key(
        self, key: str, raw: bytes | None, generation: bytes | None, now: datetime
    ) -> LiveKey:
        # The stored entry while its generation holds, else the key's row.
        live = live_key_in(raw, generation, now)
        if live is not None:
            return live
        return await run_in_threadpool(self._api_key, key, generation, now)

    def _api_key(self, key: str, generation: bytes | None, now: datetime) -> LiveKey:
        with Session(self.reads) as session:
            return check_api_key(session, self.store, key, generation, now)

    def _status(self, resident_id: int, now: datetime) -> StatusView:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            return self.cache.status(session, resident_id, now)
