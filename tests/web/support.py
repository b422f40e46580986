"""Helpers of the browser tests: a live server in a thread, Chromium, fake cameras."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from PIL import Image

from healthcode.feeds.services import import_feed
from healthcode.status.services import recolor_residents

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 900}


def require_chromium() -> Any:
    """The Playwright module, or a loud skip saying what is missing."""
    reasons = []
    if not CHROMIUM.exists():
        reasons.append(
            f"Chromium is not installed at {CHROMIUM} (Debian package chromium)"
        )
    try:
        import playwright.sync_api as sync_api
    except ImportError:
        reasons.append("the playwright package is not installed")
        sync_api = None
    if reasons:
        message = "BROWSER TESTS DO NOT RUN: " + "; ".join(reasons) + "."
        print(f"\n*** {message} ***")
        pytest.skip(message)
    return sync_api


def require_vendor_files() -> None:
    """The browser libraries in the static folder, built now if npm can."""
    from healthcode.web.routes import STATIC_DIR

    wanted = STATIC_DIR / "vendor" / "jsQR.js"
    if not wanted.exists() and shutil.which("npm"):
        script = Path(__file__).resolve().parents[2] / "scripts" / "web-assets.sh"
        subprocess.run(
            ["bash", str(script)],
            check=False,
            env={**os.environ, "PYTHON": sys.executable},
            capture_output=True,
            timeout=300,
        )
    if not wanted.exists():
        message = (
            "SCANNER BROWSER TESTS DO NOT RUN: the QR decoder is missing from"
            f" {wanted.parent}; run scripts/web-assets.sh (needs node and npm)."
        )
        print(f"\n*** {message} ***")
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """The app served by uvicorn on 127.0.0.1 in a thread; stopped and restarted."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the test server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self.server = None
        self.thread = None


def write_y4m(image: Image.Image, path: Path, frames: int = 10) -> Path:
    """A YUV4MPEG2 clip of ``image`` standing still, for Chromium's fake camera."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    width -= width % 2
    height -= height % 2
    rgb = rgb.crop((0, 0, width, height))
    y, u, v = rgb.convert("YCbCr").split()
    half = (width // 2, height // 2)
    u = u.resize(half, Image.Resampling.BILINEAR)
    v = v.resize(half, Image.Resampling.BILINEAR)
    frame = y.tobytes() + u.tobytes() + v.tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + frame)
    return path


def camera_frame(code_png: Path, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A camera's view of a code: the code on a grey desk, off centre."""
    frame = Image.new("RGB", size, (128, 128, 128))
    with Image.open(code_png) as opened:
        code = opened.convert("RGB")
    side = min(size) - 80
    code = code.resize((side, side), Image.Resampling.NEAREST)
    frame.paste(code, ((size[0] - side) // 2 + 20, (size[1] - side) // 2))
    return frame


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def confirm_identities(
    engine: Any, folder: Path, people: list[tuple[str, str]], region: str = "610113"
) -> None:
    """Have the identity registry confirm (number, name) pairs, as its feed does."""
    lines = [
        "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,confirmed_at"
    ]
    for number, name in people:
        lines.append(
            f"PS-{number},cn-id,{number},,{name},{region},confirmed,2026-03-01T09:00:00"
        )
    path = folder / "identities.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_feed(
        engine,
        "identities",
        path,
        now=datetime.now(UTC),
        zone=ZoneInfo("Asia/Shanghai"),
        future_skew=timedelta(minutes=5),
        recolor=recolor_residents,
    )
    assert report.committed, report.errors
