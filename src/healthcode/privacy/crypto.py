"""Personal fields sealed with AES-GCM and found through a keyed blind index.

The keys live in ``<data key dir>/data/``, outside the database, so that a
copy of the database alone reveals no person:

* ``index.key``: 32 random bytes, the HMAC-SHA256 key of the blind index.
  The index of a value is the same every time, so equality and ``IN``
  look-ups work on it, and without the key nobody can compute it, not even
  for the few hundred million identity numbers there are.
* ``seal-<n>.key``: 32 random bytes each, AES-256-GCM keys by version.
  ``current`` names the version that seals now; older ones stay until no
  sealed value uses them, so that rotation can re-encrypt in the background
  while everything still reads.

A sealed value is ``v<n>:`` and the unpadded URL-safe base64 of a fresh
12-byte nonce and the ciphertext with its tag. The column it belongs to is
the associated data, so a value copied into another column does not open
there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from healthcode.privacy.errors import DataKeyError
from healthcode.privacy.keyfiles import (
    ensure_directory,
    read_private,
    replace_private,
    write_private,
)

__all__ = ["DataKeys", "sealed_version"]

log = structlog.get_logger(__name__)

KEY_SIZE = 32
NONCE_SIZE = 12
# How long a process trusts its reading of ``current``. Another process (the
# server's rotation job, or the command run beside a running server) may make
# a new key current; values sealed meanwhile with the one before still open,
# and the rotation's walk re-seals them before that key can go.
RECHECK_SECONDS = 5.0
_SEALED = re.compile(r"v([1-9][0-9]{0,5}):([A-Za-z0-9_-]+)")


def sealed_version(token: str) -> int | None:
    """The key version a sealed value was made with, or None if it is none."""
    match = _SEALED.fullmatch(token) if isinstance(token, str) else None
    return int(match.group(1)) if match else None


class DataKeys:
    """The data keys in ``<data key dir>/data``; made on first use.

    Keys are read once and kept in the object; :meth:`rotate` and
    :meth:`retire` change the directory and the object together.
    """

    def __init__(self, data_key_dir: Path | str) -> None:
        self.directory = Path(data_key_dir) / "data"
        self._index: bytes | None = None
        self._macs: dict[str, Any] = {}
        self._seals: dict[int, AESGCM] = {}
        self._current: int | None = None
        self._checked = 0.0

    # The keys.

    def _load(self) -> None:
        if self._current is not None:
            if time.monotonic() - self._checked > RECHECK_SECONDS:
                self._current = self._read_current()
            return
        if not (self.directory / "current").exists():
            self._create()
        self._index = self._read("index.key", "The blind index key")
        self._current = self._read_current()

    def check(self) -> None:
        """Read the keys now, if there are any yet, and raise what is wrong.

        A key file with the wrong mode or size would otherwise be found at
        the first value sealed or opened, in the middle of a database
        statement. A directory without keys is left alone: they are made on
        first use.
        """
        if (self.directory / "current").exists():
            self._load()
            self._seal_key(self.current)

    def _read_current(self) -> int:
        self._checked = time.monotonic()
        text = read_private(self.directory / "current", "The current seal version")
        try:
            return int(text.decode("ascii").strip())
        except ValueError:
            raise DataKeyError(
                f"The file {self.directory / 'current'} does not name a key version."
            ) from None

    def _create(self) -> None:
        ensure_directory(self.directory)
        if not (self.directory / "index.key").exists():
            write_private(self.directory / "index.key", os.urandom(KEY_SIZE))
        if not (self.directory / "seal-1.key").exists():
            write_private(self.directory / "seal-1.key", os.urandom(KEY_SIZE))
        replace_private(self.directory / "current", b"1")
        log.info("data_keys_generated", directory=str(self.directory))

    def _read(self, name: str, what: str) -> bytes:
        key = read_private(self.directory / name, what)
        if len(key) != KEY_SIZE:
            raise DataKeyError(
                f"{what} at {self.directory / name} is {len(key)} bytes; it must"
                f" be {KEY_SIZE}."
            )
        return key

    def _seal_key(self, version: int) -> AESGCM:
        cipher = self._seals.get(version)
        if cipher is None:
            cipher = AESGCM(self._read(f"seal-{version}.key", f"Seal key {version}"))
            self._seals[version] = cipher
        return cipher

    @property
    def current(self) -> int:
        """The version that seals new values."""
        self._load()
        return int(self._current or 0)

    def current_since(self) -> datetime:
        """When the current key was made current (the ``current`` file's time)."""
        self._load()
        made = (self.directory / "current").stat().st_mtime
        return datetime.fromtimestamp(made, UTC)

    def versions(self) -> list[int]:
        """Every key version in the directory, oldest first."""
        self._load()
        found = []
        for path in self.directory.glob("seal-*.key"):
            number = path.stem.removeprefix("seal-")
            if number.isdigit():
                found.append(int(number))
        return sorted(found)

    def rotate(self) -> int:
        """Make a new seal key the current one; return its version."""
        self._load()
        version = max(self.versions()) + 1
        write_private(self.directory / f"seal-{version}.key", os.urandom(KEY_SIZE))
        replace_private(self.directory / "current", str(version).encode("ascii"))
        self._current = version
        log.info("data_key_rotated", version=version)
        return version

    def new_index_key(self) -> None:
        """Put a new blind index key in place; the old one goes to ``index.key.old``.

        Every blind index must then be computed again (see
        :func:`healthcode.privacy.rotation.reindex`), with the service stopped.
        """
        self._load()
        os.replace(self.directory / "index.key", self.directory / "index.key.old")
        write_private(self.directory / "index.key", os.urandom(KEY_SIZE))
        self._index = self._read("index.key", "The blind index key")
        self._macs.clear()
        log.info("index_key_replaced", directory=str(self.directory))

    def retire(self, version: int) -> None:
        """Delete an old seal key; values sealed with it no longer open."""
        if version == self.current:
            raise DataKeyError(
                f"Seal key {version} is the current one; rotate before retiring it."
            )
        (self.directory / f"seal-{version}.key").unlink(missing_ok=True)
        self._seals.pop(version, None)
        log.info("data_key_retired", version=version)

    # Using them.

    def index(self, value: str, purpose: str) -> str:
        """The blind index of ``value`` for ``purpose`` (a column's name), in hex.

        The purpose is part of the message, so the index of a number in one
        column says nothing about the same text in another.
        """
        mac = self._macs.get(purpose)
        if mac is None:
            self._load()
            prefix = purpose.encode("utf-8") + b"\x00"
            mac = hmac.new(self._index or b"", prefix, hashlib.sha256)
            self._macs[purpose] = mac
        # A copy of the keyed state after the purpose: the same HMAC as over
        # purpose and value together, without keying it again for each value.
        fresh = mac.copy()
        fresh.update(value.encode("utf-8"))
        return fresh.hexdigest()

    def seal(self, value: str, context: str) -> str:
        """``value`` sealed with the current key, bound to ``context``."""
        version = self.current
        nonce = os.urandom(NONCE_SIZE)
        body = self._seal_key(version).encrypt(
            nonce, value.encode("utf-8"), context.encode("utf-8")
        )
        text = base64.urlsafe_b64encode(nonce + body).rstrip(b"=").decode("ascii")
        return f"v{version}:{text}"

    def open(self, token: str, context: str) -> str:
        """The value sealed in ``token`` for ``context``.

        Raises :class:`DataKeyError` naming the key version and the context,
        never the value, when the token is damaged, was moved from another
        column, or its key is gone.
        """
        match = _SEALED.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise DataKeyError(f"A value of {context} is not a sealed value.")
        version = int(match.group(1))
        try:
            text = match.group(2)
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError:
            raw = b""
        if len(raw) <= NONCE_SIZE:
            raise DataKeyError(f"A sealed value of {context} is cut short.")
        try:
            plain = self._seal_key(version).decrypt(
                raw[:NONCE_SIZE], raw[NONCE_SIZE:], context.encode("utf-8")
            )
        except InvalidTag:
            raise DataKeyError(
                f"A sealed value of {context} does not open with seal key"
                f" {version}: it was altered or belongs elsewhere."
            ) from None
        return plain.decode("utf-8")
