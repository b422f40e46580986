"""What every page shares: security headers, the CSRF check, language and text size."""

from __future__ import annotations

from typing import Any

import pytest
from tests.web.conftest import csrf_of

from healthcode.web.pages import CSRF_COOKIE, safe_next


def test_pages_carry_the_security_headers(client: Any) -> None:
    page = client.get("/app/sign-in")

    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert "nosniff" in page.headers["x-content-type-options"]
    assert page.headers["permissions-policy"].startswith("camera=()")


def test_a_form_without_its_token_is_refused(client: Any, outbox: Any) -> None:
    client.get("/app/sign-in")

    answer = client.post("/app/sign-in/code", data={"phone": "13800138000"})

    assert answer.status_code == 403
    assert outbox.sent == {}


def test_a_token_that_differs_from_the_cookie_is_refused(
    client: Any, outbox: Any
) -> None:
    client.get("/app/sign-in")

    answer = client.post(
        "/app/sign-in/code",
        data={"phone": "13800138000", "csrf_token": "A" * 43},
    )

    assert answer.status_code == 403
    assert outbox.sent == {}


def test_a_form_from_another_origin_is_refused(client: Any, outbox: Any) -> None:
    token = csrf_of(client.get("/app/sign-in").text)

    answer = client.post(
        "/app/sign-in/code",
        data={"phone": "13800138000", "csrf_token": token},
        headers={"Origin": "http://attacker.example"},
    )

    assert answer.status_code == 403
    assert outbox.sent == {}


def test_the_token_is_kept_in_an_http_only_strict_cookie(client: Any) -> None:
    page = client.get("/app/sign-in")

    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


def test_the_language_follows_the_browser_then_the_choice(client: Any) -> None:
    english = client.get("/app/sign-in", headers={"Accept-Language": "en-GB"})
    token = csrf_of(english.text)

    client.post(
        "/prefs",
        data={"lang": "zh", "next": "/app/sign-in", "csrf_token": token},
        follow_redirects=False,
    )
    chinese = client.get("/app/sign-in", headers={"Accept-Language": "en-GB"})

    assert "Sign in with your phone" in english.text
    assert '<html lang="en">' in english.text
    assert "手机号登录" in chinese.text


def test_large_text_is_kept_as_a_class_on_the_page(client: Any) -> None:
    token = csrf_of(client.get("/app/sign-in").text)

    answer = client.post(
        "/prefs",
        data={"text": "large", "next": "/app/sign-in", "csrf_token": token},
        follow_redirects=False,
    )
    page = client.get("/app/sign-in")

    assert answer.headers["location"] == "/app/sign-in"
    assert 'class="large-text"' in page.text


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/app/family", "/app/family"),
        ("//evil.example/", "/app"),
        ("https://evil.example/", "/app"),
        ("/\\evil.example", "/app"),
        ("", "/app"),
        (None, "/app"),
    ],
)
def test_only_paths_of_this_site_are_followed(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_static_files_are_served_and_nothing_outside_them(client: Any) -> None:
    css = client.get("/static/css/app.css")
    outside = client.get("/static/../pages.py")
    worker = client.get("/sw.js")

    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert outside.status_code == 404
    assert worker.headers["content-type"].startswith("text/javascript")
