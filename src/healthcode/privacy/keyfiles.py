"""Private key files in the data key directory: made safely, read carefully.

A private file is created with mode 0600 from its first byte, and refused
when it is readable by anyone but its owner: a key another user could read
protects nothing. Replacing a file goes through a new file renamed over the
old one, so a reader never sees half a key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from healthcode.privacy.errors import DataKeyError

__all__ = ["ensure_directory", "read_private", "replace_private", "write_private"]


def ensure_directory(directory: Path) -> Path:
    """Make ``directory`` (owner only) if it is missing; refuse a file there."""
    if directory.exists() and not directory.is_dir():
        raise DataKeyError(
            f"HEALTHCODE_DATA_KEY_DIR names {directory}, which is not a directory."
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data``, readable by its owner alone; never overwrite."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole, replacing what was there."""
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    write_private(temporary, data)
    os.replace(temporary, path)


def read_private(path: Path, what: str) -> bytes:
    """The bytes of a private file, refused when others may read it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise DataKeyError(f"{what} is missing: there is no file {path}.") from None
    if mode & 0o077:
        raise DataKeyError(
            f"{what} at {path} has mode {mode:04o}; it must be readable by its"
            " owner alone (0600)."
        )
    return path.read_bytes()
