"""Fixed keys, a fixed clock and small helpers for the code tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from healthcode.codes.keys import KeyRole, SigningKey

KEY_START = datetime(2026, 1, 1, tzinfo=UTC)
# 09:15 in Shanghai on a Monday.
NOW = datetime(2026, 3, 2, 1, 15, 0, tzinfo=UTC)


def seed(label: str) -> bytes:
    return hashlib.sha256(f"healthcode tests {label}".encode()).digest()


def code_key(region: str = "310000", label: str = "") -> SigningKey:
    return SigningKey.from_seed(seed(f"code {region} {label}"), region, KEY_START)


def trust_key(region: str = "100000") -> SigningKey:
    return SigningKey.from_seed(
        seed(f"trust {region}"), region, KEY_START, KeyRole.TRUST_LIST
    )


def counter_bytes() -> Callable[[int], bytes]:
    """Return a random_bytes stand-in that yields 0, 1, 2, ... as big-endian."""
    state = {"next": 0}

    def random_bytes(size: int) -> bytes:
        value = state["next"]
        state["next"] += 1
        return value.to_bytes(size, "big")

    return random_bytes
