"""A pytest plugin that watches every structlog event of a test run.

Every event that any code logs while the tests run passes through
:class:`LogWatch`, which looks for whole mainland identity numbers in it
(see :func:`healthcode.privacy.scan.find_identity_numbers`). When it finds
one, the run fails after the last test, and the summary names the test and
the event with the number masked. Loaded by this folder's ``conftest.py``;
another run can load it with ``-p logwatch`` when this folder is on the
path.

The watch is put first in structlog's live processor list, the list that
every bound logger refers to, so it sees events of loggers made before it
was installed and of code that never configured logging. Commands that
configure logging themselves (``healthcode demo`` does) replace that list;
while the run lasts, :func:`structlog.configure` puts the watch back into
each new list. Events that a configured level filters out are never
written anywhere and so are not watched.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

from healthcode.privacy.scan import find_identity_numbers, mask_number

__all__ = ["Leak", "LogWatch", "installed_watch"]

#: How many leaks the summary lists; the count covers them all.
SHOWN = 20


@dataclass(frozen=True)
class Leak:
    """An identity number in a log event: where it was logged, masked."""

    test: str
    event: str
    number: str


def _text(value: Any) -> str:
    if isinstance(value, BaseException):
        return "".join(traceback.format_exception(value))
    if isinstance(value, Mapping):
        return " ".join(f"{key}={_text(item)}" for key, item in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(_text(item) for item in value)
    return str(value)


@dataclass
class LogWatch:
    """A structlog processor that records identity numbers and passes events on."""

    leaks: list[Leak] = field(default_factory=list)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        # A watch that breaks must not break the code that logged.
        with contextlib.suppress(Exception):
            self.inspect(event_dict)
        return event_dict

    def inspect(self, event_dict: Mapping[str, Any]) -> None:
        """Record every identity number in one event."""
        text = _text(dict(event_dict))
        if event_dict.get("exc_info") is True:
            text += traceback.format_exc()
        numbers = find_identity_numbers(text)
        if not numbers:
            return
        test = os.environ.get("PYTEST_CURRENT_TEST", "outside any test")
        event = str(event_dict.get("event", "?"))[:60]
        for number in numbers:
            self.leaks.append(Leak(test, event, mask_number(number)))


_WATCH = LogWatch()
_CONFIGURE: list[Any] = []


def installed_watch() -> LogWatch | None:
    """The watch in structlog's live processor list, if it is there."""
    for processor in structlog.get_config()["processors"]:
        if isinstance(processor, LogWatch):
            return processor
    return None


def _install() -> None:
    if installed_watch() is None:
        structlog.get_config()["processors"].insert(0, _WATCH)


def _configure_keeping_watch(*args: Any, **kwargs: Any) -> None:
    _CONFIGURE[0](*args, **kwargs)
    _install()


def pytest_collection_finish(session: pytest.Session) -> None:
    _install()
    if not _CONFIGURE:
        _CONFIGURE.append(structlog.configure)
        structlog.configure = _configure_keeping_watch


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CONFIGURE:
        structlog.configure = _CONFIGURE.pop()
    if _WATCH.leaks and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    leaks = _WATCH.leaks
    if not leaks:
        return
    terminalreporter.section("identity numbers in log lines", red=True, bold=True)
    terminalreporter.line(
        f"{len(leaks)} log events held a whole mainland identity number;"
        " the run fails. Log ids and masked forms instead."
    )
    for leak in leaks[:SHOWN]:
        terminalreporter.line(f"  {leak.test}: event {leak.event!r}: {leak.number}")
