"""What every page shares: templates, language, text size, CSRF, headers, errors.

Pages are routes of a :class:`PageRoute`, which wraps each handler so that

* every form and every script that changes something proves it came from
  our own page, by the double-submit token: a random token in a cookie that
  only this site can set, repeated in the form's ``csrf_token`` field or the
  ``X-CSRF-Token`` header, compared in constant time; a request with an
  ``Origin`` header from elsewhere is refused as well;
* every answer carries a strict Content-Security-Policy (scripts, styles and
  frames from this origin only; no page may frame ours), ``nosniff``, no
  referrer, and a Permissions-Policy that leaves the camera to the scanner;
* a domain error becomes a page in the person's language rather than JSON,
  and a caller who is not signed in, or not registered yet, is sent to the
  page that fixes it.

Endpoints that answer JSON to our own scripts keep the service's JSON error
bodies (:func:`page_options` with ``json=True``), and endpoints that devices
call with an API key, which no browser sends by itself, need no token
(``csrf=False``).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import jinja2
import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from markupsafe import Markup

from healthcode.codes import qr
from healthcode.codes.format import Colour
from healthcode.errors import HealthcodeError
from healthcode.service.errors import answer_for
from healthcode.web.i18n import LANGUAGES, choose_language, translations

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LANGUAGE_COOKIE",
    "TEXT_COOKIE",
    "PageRoute",
    "page_options",
    "qr_svg",
    "redirect",
    "render",
    "safe_next",
    "words",
]

log = structlog.get_logger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

CSRF_COOKIE = "hc_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LANGUAGE_COOKIE = "hc_lang"
TEXT_COOKIE = "hc_text"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_YEAR = 365 * 24 * 3600
# Where the "back" link of an error page leads, by the path that failed.
_BACK = ("/console", "/checkpoint", "/venue", "/app")

# 'self' only: every script and style is a file of ours, none inline, so an
# injected <script> or style attribute does nothing. Images may be data:
# URLs (the QR codes the scanner draws) and blob: (camera frames).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"
    " blob:; media-src 'self' blob: mediastream:; connect-src 'self';"
    " worker-src 'self'; manifest-src 'self'; font-src 'self'; object-src 'none';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)


def page_options(*, csrf: bool = True, json: bool = False) -> Callable[[F], F]:
    """Mark an endpoint: ``csrf=False`` for API-key calls, ``json`` for JSON errors."""

    def mark(function: F) -> F:
        function.csrf = csrf  # type: ignore[attr-defined]
        function.json_errors = json  # type: ignore[attr-defined]
        return function

    return mark


# Templates


def _environment(language: str) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html", "svg", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.install_gettext_translations(  # type: ignore[attr-defined]
        translations(language), newstyle=True
    )
    return environment


_ENVIRONMENTS = {language: _environment(language) for language in LANGUAGES}


def environment(language: str) -> jinja2.Environment:
    """The template environment whose gettext speaks ``language``."""
    return _ENVIRONMENTS[language]


def language_of(request: Request) -> str:
    return choose_language(
        request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


def _zone(request: Request) -> ZoneInfo:
    runtime = getattr(request.app.state, "runtime", None)
    return runtime.settings.tz if runtime is not None else ZoneInfo("Asia/Shanghai")


def render(
    request: Request,
    template: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` in the request's language with the shared context."""
    language = language_of(request)
    zone = _zone(request)

    def local(at: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
        return "" if at is None else at.astimezone(zone).strftime(pattern)

    shared = {
        "lang": language,
        "other_lang": "en" if language == "zh" else "zh",
        "large_text": request.cookies.get(TEXT_COOKIE) == "large",
        "csrf_token": getattr(request.state, "csrf", ""),
        "here": _here(request),
        "zone": zone.key,
        "local": local,
        "text_of": lambda texts: _text_of(texts, language),
        "instant": _instant,
    }
    html = environment(language).get_template(template).render(**shared, **context)
    return HTMLResponse(html, status_code=status_code)


def _here(request: Request) -> str:
    """The page to show again after a preference changes: this one, if it is a GET."""
    path = request.url.path
    if request.method == "GET":
        return path + (f"?{request.url.query}" if request.url.query else "")
    return next((prefix for prefix in _BACK if path.startswith(prefix)), "/app")


def _instant(text: str | datetime | None) -> datetime | None:
    """An ISO 8601 instant as written in statuses and answers, read back."""
    if text is None or isinstance(text, datetime):
        return text
    return datetime.fromisoformat(text)


def words(request: Request, template: str) -> dict[str, str]:
    """The texts a template sets at its top, in the request's language.

    Plots are drawn in Python, so their titles and legends are kept in a
    small template of ``{% set %}`` lines where the catalogue finds them.
    """
    module = environment(language_of(request)).get_template(template).make_module({})
    return {
        name: str(value)
        for name, value in vars(module).items()
        if not name.startswith("_") and isinstance(value, str)
    }


def _text_of(texts: Any, language: str) -> str:
    """A reason's text in the page's language, else the other one."""
    if isinstance(texts, dict):
        return str(texts.get(language) or texts.get("en") or texts.get("zh") or "")
    return str(texts or "")


def qr_svg(text: str, colour: Colour | None) -> Markup:
    """The QR code of ``text`` as inline SVG, its modules in the colour's ink."""
    dark = qr.MODULE_COLOURS[colour] if colour is not None else "#000000"
    svg = qr.make_symbol(text).svg_inline(
        scale=1, border=qr.QUIET_ZONE, dark=dark, light="#ffffff", omitsize=True
    )
    # segno writes the SVG itself from the code's modules; nothing in it
    # comes from the request.
    return Markup(svg)  # noqa: S704


def redirect(path: str) -> RedirectResponse:
    """See other: the answer to a form that worked, so a reload sends nothing."""
    return RedirectResponse(path, status_code=303)


def safe_next(path: str | None, default: str = "/app") -> str:
    """``path`` when it is a path on this site, else ``default``."""
    if (
        not path
        or not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or any(ord(char) < 0x21 for char in path)
    ):
        return default
    return path


# The route class


def _cookie_token(request: Request) -> str | None:
    token = request.cookies.get(CSRF_COOKIE)
    return token if token and _TOKEN.fullmatch(token) else None


async def _sent_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    kind = request.headers.get("content-type", "")
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        # Starlette keeps the parsed form on the request, so the endpoint
        # reads the same form again without a second pass over the body.
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def _foreign_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return False
    own = f"{request.url.scheme}://{request.url.netloc}"
    return origin != own


def _secure(request: Request) -> bool:
    runtime = getattr(request.app.state, "runtime", None)
    return bool(runtime.settings.cookie_secure) if runtime is not None else True


def _headers(response: Response, camera: bool) -> None:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Frame-Options"] = "DENY"
    # Not "no-referrer": with it Chromium sends "Origin: null" on our own
    # forms, and the origin check above could not tell them from others.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = (
        "camera=(self), microphone=(), geolocation=()"
        if camera
        else "camera=(), microphone=(), geolocation=()"
    )


def error_page(request: Request, status: int, code: str, message: str) -> Response:
    """The page that says what went wrong, in the person's language."""
    path = request.url.path
    back = next((prefix for prefix in _BACK if path.startswith(prefix)), "/app")
    return render(
        request,
        "error.html",
        status_code=status,
        code=code,
        message=message,
        back=back,
    )


class PageRoute(APIRoute):
    """A route whose answers are pages: CSRF, headers and errors as pages."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()
        check_csrf = getattr(self.endpoint, "csrf", True)
        json_errors = getattr(self.endpoint, "json_errors", False)
        camera = self.path.startswith("/checkpoint")

        async def page_handler(request: Request) -> Response:
            token = _cookie_token(request)
            fresh = token is None
            request.state.csrf = token or secrets.token_urlsafe(32)
            response: Response
            if request.method not in _SAFE_METHODS and check_csrf:
                sent = None if fresh else await _sent_token(request)
                if (
                    sent is None
                    or token is None
                    or not hmac.compare_digest(sent.encode(), token.encode())
                    or _foreign_origin(request)
                ):
                    log.warning("csrf_refused", route=self.path)
                    response = error_page(
                        request,
                        403,
                        "csrf_refused",
                        "The form was not sent from this site's own page, or the"
                        " page is too old; reload it and send the form again.",
                    )
                    return self._finish(request, response, fresh, camera)
            try:
                response = await handler(request)
            except HealthcodeError as exc:
                if json_errors:
                    raise
                response = self._domain_error(request, exc)
            except RequestValidationError:
                if json_errors:
                    raise
                response = error_page(
                    request,
                    422,
                    "invalid_request",
                    "A field of the form is missing or too long; go back, correct"
                    " it and send the form again.",
                )
            return self._finish(request, response, fresh, camera)

        return page_handler

    def _domain_error(self, request: Request, exc: HealthcodeError) -> Response:
        if request.method in _SAFE_METHODS:
            if exc.code == "not_signed_in":
                path = request.url.path
                if path.startswith("/console"):
                    return redirect("/console/sign-in")
                if path.startswith("/venue"):
                    return redirect("/venue/sign-in")
                return redirect(f"/app/sign-in?next={path}")
            if exc.code == "not_registered":
                return redirect("/app/register")
        status, code, message = answer_for(exc)
        return error_page(request, status, code, message)

    def _finish(
        self, request: Request, response: Response, fresh: bool, camera: bool
    ) -> Response:
        _headers(response, camera)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                request.state.csrf,
                max_age=_YEAR,
                httponly=True,
                secure=_secure(request),
                samesite="strict",
                path="/",
            )
        return response


def set_preference(response: Response, request: Request, name: str, value: str) -> None:
    """Keep a display preference (language, text size) for a year."""
    response.set_cookie(
        name,
        value,
        max_age=_YEAR,
        httponly=True,
        secure=_secure(request),
        samesite="lax",
        path="/",
    )
