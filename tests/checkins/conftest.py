"""Fixtures shared by the check-in and tracing tests."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from .support import World


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)
