"""Logging set-up: structlog, an event name plus fields, JSON in production.

Modules take their logger with ``structlog.get_logger(__name__)`` and log ids
and counts, never an identity number, phone number, name or client address.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the moment of writing.

    A logger bound to the stream object seen at configuration time keeps
    writing to it after a test harness or a redirect has replaced (and
    perhaps closed) it.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _json_line(value: Any, **options: Any) -> str:
    return orjson.dumps(value, default=options.get("default")).decode()


def configure(log_format: str = "console", level: int = logging.INFO) -> None:
    renderer: structlog.typing.Processor
    if log_format == "json":
        # orjson writes a line in a tenth of the standard library's time, and
        # every request writes one.
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # A line goes out in one write: printing it wrote the text and its
        # newline separately, two system calls for every request logged.
        logger_factory=structlog.WriteLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
