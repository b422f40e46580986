"""The app as a whole: schema, docs, error bodies, headers, start-up checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from healthcode.config import Settings
from healthcode.errors import ConfigurationError
from healthcode.service.app import create_app


def test_health_answers_with_the_version(client: TestClient) -> None:
    response = client.get("/v1/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.1.0"}
    assert response.headers["cache-control"] == "no-store"
    assert len(response.headers["x-request-id"]) == 16


def test_the_schema_and_the_docs_are_served(client: TestClient) -> None:
    schema = client.get("/openapi.json")
    docs = client.get("/docs")

    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "healthcode"
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_every_operation_declares_the_error_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]

    assert operations
    for path, method, operation in operations:
        responses = operation["responses"]
        assert "4XX" in responses, f"{method} {path}"
        assert "422" not in responses, f"{method} {path} keeps FastAPI's own 422"


def test_an_unknown_path_has_the_error_body(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "There is nothing at this path; the endpoints are listed at /docs.",
        "problems": [],
    }


def test_a_wrong_method_has_the_error_body(client: TestClient) -> None:
    response = client.delete("/v1/health")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_a_missing_database_is_named_at_start_up(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/absent/x.db")

    with pytest.raises(ConfigurationError, match="HEALTHCODE_DATABASE_URL"):
        create_app(settings)


def test_an_unmigrated_database_is_named_at_start_up(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/empty.db")

    with pytest.raises(ConfigurationError, match="not migrated"):
        create_app(settings)


def test_an_unreachable_redis_is_named_at_start_up(engine: Engine) -> None:
    # Port 1 on the loopback: nothing listens there.
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        redis_url="redis://127.0.0.1:1/0",
    )

    with pytest.raises(ConfigurationError, match="HEALTHCODE_REDIS_URL"):
        create_app(settings, engine=engine)


def test_a_cluster_url_serves_from_the_cluster(
    engine: Engine, redis_cluster_url: str, tmp_path: Path
) -> None:
    from healthcode.service.runtime import build_runtime

    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        redis_url=redis_cluster_url,
        redis_prefix="healthcode-test-app:",
        key_dir=str(tmp_path / "keys"),
    )

    runtime = build_runtime(settings, engine=engine)
    runtime.store.set("probe", b"1", 5)

    assert runtime.store.clustered  # type: ignore[attr-defined]
    assert runtime.store.get("probe") == b"1"
    runtime.store.clear()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("redis_url", "redis+cluster://127.0.0.1/", "is not host:port"),
        ("redis_url", "memcached://127.0.0.1:11211", "redis+cluster://"),
        ("redis_prefix", "hc{x}:", "must not hold a brace"),
    ],
)
def test_a_bad_redis_setting_is_named(
    monkeypatch, name: str, value: str, problem: str
) -> None:
    from healthcode.config import get_settings

    monkeypatch.setenv(f"HEALTHCODE_{name.upper()}", value)
    get_settings.cache_clear()

    with pytest.raises(
        ConfigurationError, match=f"HEALTHCODE_{name.upper()}.*{re.escape(problem)}"
    ):
        get_settings()
    get_settings.cache_clear()


def test_a_sign_in_file_in_a_missing_folder_is_named(
    engine: Engine, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        sign_in_sender="file",
        sign_in_file=str(tmp_path / "absent" / "codes.ndjson"),
    )

    with pytest.raises(ConfigurationError, match="HEALTHCODE_SIGN_IN_FILE"):
        create_app(settings, engine=engine)


def test_a_body_that_cannot_be_read_has_the_error_body(client: TestClient) -> None:
    answer = client.post(
        "/v1/sign-in/code",
        content=b"\xff\xfe not json",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code in (400, 422)
    assert answer.json()["code"] in ("bad_request", "invalid_request")
    assert answer.json()["message"].endswith(".")


def test_an_upload_past_the_limit_is_a_413(
    settings: Settings, engine: Engine, clock, outbox, store
) -> None:
    from .conftest import NOW
    from .support import api_key

    app = create_app(
        settings.model_copy(update={"max_upload_bytes": 64}),
        clock=clock,
        store=store,
        sender=outbox,
        engine=engine,
    )
    headers = {
        **api_key(engine, "department", "health", NOW, ["lab-results"]),
        "Content-Type": "text/csv",
    }

    with TestClient(app, base_url="https://testserver") as client:
        answer = client.post("/v1/feeds/lab-results", content="x" * 65, headers=headers)

    assert answer.status_code == 413
    assert answer.json()["code"] == "upload_too_large"
    assert "64 bytes" in answer.json()["message"]


def _serve(engine: Engine, monkeypatch, *args: str, **env: str) -> Any:
    import typer
    from typer.testing import CliRunner

    from healthcode.config import get_settings
    from healthcode.service.cli import serve_command

    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.delenv("HEALTHCODE_REDIS_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The command line."""

    app.command("serve")(serve_command)

    result = CliRunner().invoke(app, ["serve", *args])
    get_settings.cache_clear()
    return result


def test_serve_refuses_several_workers_without_redis(
    engine: Engine, monkeypatch
) -> None:
    result = _serve(engine, monkeypatch, "--workers", "2")

    assert result.exit_code == 2
    assert "HEALTHCODE_REDIS_URL" in result.output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEALTHCODE_MAX_IN_FLIGHT", "-1"),
        ("HEALTHCODE_MAX_IN_FLIGHT", "lots"),
        ("HEALTHCODE_MAX_IN_FLIGHT", "1000001"),
        ("HEALTHCODE_RETRY_AFTER_SECONDS", "0"),
        ("HEALTHCODE_RETRY_AFTER_SECONDS", "2.5"),
    ],
)
def test_serve_refuses_a_nonsense_shedding_bound_before_it_starts(
    engine: Engine, monkeypatch, name: str, value: str
) -> None:
    result = _serve(engine, monkeypatch, **{name: value})

    assert result.exit_code == 2
    assert f"{name} must be a whole number" in result.output
    assert repr(value) in result.output


def test_an_oversized_peer_query_is_refused_before_it_is_read_whole(
    client: TestClient,
) -> None:
    # Anyone may send to the peer route, before any signature is checked.
    answer = client.post(
        "/v1/peers/status",
        content=b"{" + b" " * 1_000_000 + b"}",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 413
    assert answer.json()["code"] == "upload_too_large"
    assert "65536 bytes" in answer.json()["message"]


def _matched_in_order(routes: list[Any]) -> list[tuple[str, str]]:
    """Every API route as (method, path), in the order requests meet them."""
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found += _matched_in_order(inner.routes)
        elif hasattr(route, "methods") and route.path.startswith("/v1/"):
            found += [(method, route.path) for method in sorted(route.methods)]
    return found


def test_the_hot_paths_are_matched_right_after_health(client: TestClient) -> None:
    # Each route a request passes over costs a few microseconds of matching;
    # a phone's refresh and a door's verify are one request each.
    order = _matched_in_order(client.app.routes)  # type: ignore[attr-defined]

    first = order[:5]

    assert first[0] == ("GET", "/v1/health")
    for hot in (
        ("POST", "/v1/checkpoints/verify"),
        ("GET", "/v1/residents/me/code"),
    ):
        assert hot in first, f"{hot} is matched at place {order.index(hot)}"
