"""Fixtures shared by the code tests."""

from __future__ import annotations

import pytest

from healthcode.codes.format import Issuer
from healthcode.codes.keys import SigningKey
from healthcode.codes.trust import Verifier

from .support import code_key, seed


@pytest.fixture
def signing_key() -> SigningKey:
    return code_key()


@pytest.fixture
def issuer(signing_key: SigningKey) -> Issuer:
    return Issuer(signing_key, seed("subject 310000"))


@pytest.fixture
def verifier(signing_key: SigningKey) -> Verifier:
    return Verifier([signing_key.record])
