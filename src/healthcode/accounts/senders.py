"""How a sign-in code reaches a phone.

A deployment delivers codes through its SMS gateway; for development and
tests two senders stand in for one, chosen by ``HEALTHCODE_SIGN_IN_SENDER``:

``console``
    Prints one line per code to the server's standard error::

        sign-in code 482913 for the phone ending 5678, valid until 10:05:00 UTC

``file``
    Appends one JSON object per code to ``HEALTHCODE_SIGN_IN_FILE``::

        {"to": "*******5678", "phoneDigest": "9f2c...", "code": "482913",
         "validUntil": "2026-03-10T10:05:00+00:00"}

    ``phoneDigest`` is :func:`phone_digest` of the number, so that a test
    or a developer who knows the number and has the data keys finds its
    codes without the file holding the number itself.

Neither writes the whole number anywhere. A sender of one's own needs only
a ``send(phone, code, valid_until)`` method (see :class:`CodeSender`).
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Protocol, TextIO

import orjson

from healthcode.privacy.types import data_keys

__all__ = [
    "CodeSender",
    "ConsoleSender",
    "FileSender",
    "mask_phone",
    "phone_digest",
]


class CodeSender(Protocol):
    """Delivers a sign-in code to a phone in E.164 form."""

    def send(self, phone: str, code: str, valid_until: datetime) -> None:
        """Deliver ``code``; raise only when it certainly was not delivered."""
        ...


def phone_digest(phone: str) -> str:
    """A stable digest of an E.164 number, used to key its short-lived state.

    It is the number's HMAC under the blind index key (see
    :mod:`healthcode.privacy.crypto`): a plain hash of a phone number is
    undone by hashing every number of the mobile range, and without the key
    nobody can compute this one.
    """
    return data_keys().index(phone, "sign-in.phone")


def mask_phone(phone: str) -> str:
    """The number with all but its last four digits hidden."""
    return "*" * max(0, len(phone) - 4) + phone[-4:]


class ConsoleSender:
    """Prints codes to a stream, standard error by default."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def send(self, phone: str, code: str, valid_until: datetime) -> None:
        stream = self._stream or sys.stderr
        stream.write(
            f"sign-in code {code} for the phone ending {phone[-4:]},"
            f" valid until {valid_until:%H:%M:%S} UTC\n"
        )
        stream.flush()


class FileSender:
    """Appends codes as JSON lines to a file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, phone: str, code: str, valid_until: datetime) -> None:
        line = orjson.dumps(
            {
                "to": mask_phone(phone),
                "phoneDigest": phone_digest(phone),
                "code": code,
                "validUntil": valid_until.isoformat(),
            }
        )
        with self._lock, self.path.open("ab") as out:
            out.write(line + b"\n")

    def codes_for(self, phone: str) -> list[str]:
        """Every code sent to ``phone`` so far, oldest first (for tests)."""
        if not self.path.exists():
            return []
        digest = phone_digest(phone)
        found = []
        for line in self.path.read_bytes().splitlines():
            entry = orjson.loads(line)
            if entry.get("phoneDigest") == digest:
                found.append(entry["code"])
        return found
