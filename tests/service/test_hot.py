"""Code ingredients kept between refreshes."""

from __future__ import annotations

from typing import Any

from healthcode.accounts.stores import MemoryStore
from healthcode.service.hot import CodeIngredients


class CountingCodes:
    """A stand-in for the code service that counts database reads."""

    def __init__(self) -> None:
        self.reads = 0

    def ingredients(self, session: Any, resident_id: int) -> tuple[str, str]:
        self.reads += 1
        return f"王*{resident_id}", "610100"


def test_ingredients_are_read_once_then_kept() -> None:
    codes = CountingCodes()
    kept = CodeIngredients(MemoryStore(), codes)  # type: ignore[arg-type]

    first = kept.of(None, 7)  # type: ignore[arg-type]
    second = kept.of(None, 7)  # type: ignore[arg-type]

    assert first == second == ("王*7", "610100")
    assert codes.reads == 1


def test_ingredients_expire_after_their_ttl() -> None:
    clock = [0.0]
    codes = CountingCodes()
    kept = CodeIngredients(
        MemoryStore(monotonic=lambda: clock[0]),
        codes,  # type: ignore[arg-type]
        ttl_seconds=60,
    )
    kept.of(None, 7)  # type: ignore[arg-type]

    clock[0] = 61.0
    kept.of(None, 7)  # type: ignore[arg-type]

    assert codes.reads == 2
