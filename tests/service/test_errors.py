"""Every domain error is mapped to an HTTP answer, and the answers keep their form."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import healthcode
from healthcode.errors import HealthcodeError
from healthcode.service.errors import ERROR_ANSWERS, answer_for, install_error_handlers

# The migration environment runs only inside Alembic.
NOT_IMPORTABLE = {"healthcode.migrations.env"}


def every_error_class() -> list[type[HealthcodeError]]:
    for module in pkgutil.walk_packages(healthcode.__path__, "healthcode."):
        if module.name not in NOT_IMPORTABLE:
            importlib.import_module(module.name)
    found: set[type[HealthcodeError]] = {HealthcodeError}
    pending = [HealthcodeError]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


ERRORS = every_error_class()


def make(cls: type[HealthcodeError]) -> HealthcodeError:
    parameters = inspect.signature(cls.__init__).parameters
    if "retry_after" in parameters:
        return cls("Too many tries; wait a minute.", retry_after=60)  # type: ignore[call-arg]
    return cls("The thing given is wrong in a way this sentence explains.")


def test_the_walk_finds_every_domain() -> None:
    modules = {
        cls.__module__.split(".")[1]
        for cls in ERRORS
        if cls.__module__ != "healthcode.errors"
    }

    assert {"accounts", "audit", "codes", "family", "feeds", "identity"} <= modules
    assert {"officials", "rules", "status"} <= modules


@pytest.mark.parametrize(
    "cls", ERRORS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}"
)
def test_every_error_has_its_own_code_and_an_answer(cls: type[HealthcodeError]) -> None:
    own_code = cls.__dict__.get("code")

    assert isinstance(own_code, str) and own_code, f"{cls.__name__} sets no code"
    assert own_code in ERROR_ANSWERS, f"{cls.__name__} ({own_code}) is not mapped"


@pytest.mark.parametrize(
    "cls", ERRORS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}"
)
def test_every_error_is_answered_with_its_status_code_and_a_sentence(
    cls: type[HealthcodeError],
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    def fail() -> None:
        raise make(cls)

    response = TestClient(app).get("/fail")

    expected = ERROR_ANSWERS[cls.code]
    body = response.json()
    assert response.status_code == expected.status
    assert body["code"] == cls.code
    assert body["message"].endswith(".")
    assert body["problems"] == []
    if expected.status >= 500:
        assert "explains" not in body["message"]


def test_a_client_error_keeps_its_message_and_adds_the_hint() -> None:
    from healthcode.identity.errors import InvalidDocument

    status, code, message = answer_for(InvalidDocument("The number is too short."))

    assert (status, code) == (422, "invalid_document")
    assert (
        message
        == "The number is too short. Correct the value and send the request again."
    )


def test_a_fault_of_ours_hides_its_message() -> None:
    from healthcode.codes.errors import KeyConfigurationError

    status, code, message = answer_for(
        KeyConfigurationError("Key 610100-abcd1234 at /srv/keys is readable by others.")
    )

    assert (status, code) == (503, "key_configuration_error")
    assert "/srv/keys" not in message


def test_an_unmapped_code_falls_back_to_its_nearest_mapped_ancestor() -> None:
    from healthcode.feeds.errors import FeedError

    class Stray(FeedError):
        code = "stray_for_this_test"

    status, code, _ = answer_for(Stray("A stray error."))

    assert (status, code) == (422, "stray_for_this_test")


def test_the_retry_after_header_comes_with_rate_limits() -> None:
    from healthcode.accounts.errors import RateLimited

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    def fail() -> None:
        raise RateLimited("At most 5 per hour; wait 30 seconds.", retry_after=30)

    response = TestClient(app).get("/fail")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"


def test_an_unexpected_exception_is_a_500_that_says_nothing() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret path /srv/x")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "/srv/x" not in response.text


def test_a_database_that_does_not_answer_is_a_retryable_503() -> None:
    import sqlalchemy as sa

    app = FastAPI()
    install_error_handlers(app)
    app.state.retry_after = 3

    @app.get("/down")
    def down() -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())

    @app.get("/broken")
    def broken() -> None:
        raise sa.exc.IntegrityError("INSERT", {}, ValueError("duplicate"))

    client = TestClient(app, raise_server_exceptions=False)
    unavailable = client.get("/down")
    ours = client.get("/broken")

    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "3"
    assert unavailable.json()["code"] == "database_unavailable"
    assert "send it again" in unavailable.json()["message"]
    assert ours.status_code == 500
    assert ours.json()["code"] == "internal_error"
