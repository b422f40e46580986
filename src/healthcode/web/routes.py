"""The pages as one router for the service app to include.

Besides the pages of each kind of person, this serves the static files (from
a list made at import time, so no request can name a file outside the
folder), the service worker at the top of each scope that works offline,
and the form that keeps the language and text size chosen.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import FileResponse

from healthcode.web import checkpoint, console, resident, venue
from healthcode.web.i18n import LANGUAGES
from healthcode.web.pages import (
    LANGUAGE_COOKIE,
    TEXT_COOKIE,
    PageRoute,
    redirect,
    safe_next,
    set_preference,
)

__all__ = ["STATIC_DIR", "router", "static_files"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}


def static_files(directory: Path = STATIC_DIR) -> dict[str, Path]:
    """Every file under ``directory`` by its path relative to it."""
    return {
        path.relative_to(directory).as_posix(): path
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/")
def home() -> Response:
    return redirect("/app")


@router.get("/static/{name:path}")
def static(name: str) -> Response:
    # The table is read again on each request only when the name is not in
    # it, so files that the asset build adds after start-up are served too.
    files = _STATIC if name in _STATIC else static_files()
    path = files.get(name)
    if path is None:
        return Response("Not found.", status_code=404, media_type="text/plain")
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    return FileResponse(path, media_type=media or "application/octet-stream")


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker, served from the top so that its scope is the site."""
    path = STATIC_DIR / "js" / "sw.js"
    return FileResponse(path, media_type="text/javascript; charset=utf-8")


@router.post("/prefs")
def preferences(
    request: Request,
    next: Annotated[str, Form(max_length=500)] = "/app",
    lang: Annotated[str, Form(max_length=5)] = "",
    text: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Keep the language or text size chosen, then show the same page again."""
    response = redirect(safe_next(next))
    if lang in LANGUAGES:
        set_preference(response, request, LANGUAGE_COOKIE, lang)
    if text in ("large", "normal"):
        set_preference(response, request, TEXT_COOKIE, text)
    return response


_STATIC = static_files()

router.include_router(resident.router)
router.include_router(checkpoint.router)
router.include_router(console.router)
router.include_router(venue.router)
