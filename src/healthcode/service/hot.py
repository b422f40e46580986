"""What a code refresh needs besides the colour, kept between refreshes.

A resident refreshes their screen code every few minutes all day, and the
masked name and issuing region on it almost never change. Reading them from
the database on every refresh cost more than signing the code, so they are
kept in the shared store for a while.

A corrected name or region of residence reaches new codes only when its
entry expires, up to ``ttl_seconds`` later; the colour, which decides entry
at the door, never comes from here.
"""

from __future__ import annotations

import contextlib

import orjson
from sqlalchemy.orm import Session

from healthcode.accounts.errors import StoreUnavailable
from healthcode.accounts.stores import Store, resident_key
from healthcode.codes.services import CodeService

__all__ = ["CodeIngredients"]


class CodeIngredients:
    """Masked names and issuing regions by resident id, in a store."""

    def __init__(self, store: Store, codes: CodeService, ttl_seconds: float = 600):
        self.store = store
        self.codes = codes
        self.ttl_seconds = ttl_seconds

    def of(self, session: Session, resident_id: int) -> tuple[str, str]:
        """The resident's masked name and issuing region."""
        key = resident_key("code-ingredients", resident_id)
        try:
            raw = self.store.get(key)
        except StoreUnavailable:
            # Redis is a shortcut here, never the record: without it the
            # ingredients come from the database.
            return self.codes.ingredients(session, resident_id)
        if raw is not None:
            name, region = orjson.loads(raw)
            return str(name), str(region)
        name, region = self.codes.ingredients(session, resident_id)
        with contextlib.suppress(StoreUnavailable):
            self.store.set(key, orjson.dumps([name, region]), self.ttl_seconds)
        return name, region
