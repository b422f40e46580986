"""A database opened with other data keys than its own is refused at once.

Keys made afresh in an empty or mistyped ``HEALTHCODE_DATA_KEY_DIR`` would
otherwise seal new values beside ones they cannot open, and index a known
person as someone new: registering them again would store a second resident
with the same document.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.db import open_database
from healthcode.identity.documents import mod11_2_check, parse_document
from healthcode.identity.models import Resident
from healthcode.identity.services import register_resident
from healthcode.privacy.crypto import DataKeys
from healthcode.privacy.errors import DataKeyError
from healthcode.privacy.types import using_keys

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
BODY = "61011319800405123"
NUMBER = BODY + mod11_2_check(BODY)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _populate(engine: Engine, keys: DataKeys) -> None:
    document = parse_document("cn-id", NUMBER, today=NOW.date())
    with using_keys(keys), Session(engine) as session, session.begin():
        register_resident(session, document, "周慧敏", NOW)


def _residents(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count(Resident.id))) or 0)


def test_an_empty_key_directory_is_refused_and_left_empty(
    engine: Engine, tmp_path: Path
) -> None:
    _populate(engine, DataKeys(tmp_path / "own"))
    elsewhere = tmp_path / "mistyped"

    with using_keys(DataKeys(elsewhere)), pytest.raises(DataKeyError) as refused:
        open_database(_url(engine)).dispose()

    message = str(refused.value)
    assert str(elsewhere / "data") in message
    assert "HEALTHCODE_DATA_KEY_DIR" in message
    assert NUMBER not in message and "周慧敏" not in message
    assert not (elsewhere / "data" / "index.key").exists()
    assert _residents(engine) == 1


def test_other_keys_are_refused(engine: Engine, tmp_path: Path) -> None:
    _populate(engine, DataKeys(tmp_path / "own"))
    other = DataKeys(tmp_path / "other")
    other.seal("x", "people.name")

    with using_keys(other), pytest.raises(DataKeyError, match="do not open"):
        open_database(_url(engine)).dispose()


def test_another_index_key_is_refused(engine: Engine, tmp_path: Path) -> None:
    own = DataKeys(tmp_path / "own")
    _populate(engine, own)
    copied = tmp_path / "copied"
    shutil.copytree(own.directory, copied / "data")
    DataKeys(copied).new_index_key()

    with using_keys(DataKeys(copied)), pytest.raises(DataKeyError, match="index"):
        open_database(_url(engine)).dispose()


def test_the_database_own_keys_open_it(engine: Engine, tmp_path: Path) -> None:
    own = DataKeys(tmp_path / "own")
    _populate(engine, own)

    with using_keys(DataKeys(tmp_path / "own")):
        open_database(_url(engine)).dispose()

    assert _residents(engine) == 1


def test_an_unsafe_key_file_is_named_on_opening(engine: Engine, tmp_path: Path) -> None:
    # An empty database: no sealed value to try the keys on, so the file's
    # mode is what must be checked on opening, not at the first look-up.
    own = DataKeys(tmp_path / "own")
    assert own.current == 1
    (own.directory / "index.key").chmod(0o644)

    with using_keys(DataKeys(tmp_path / "own")), pytest.raises(DataKeyError) as bad:
        open_database(_url(engine)).dispose()

    assert str(bad.value) == (
        f"The blind index key at {own.directory / 'index.key'} has mode 0644;"
        " it must be readable by its owner alone (0600)."
    )


@pytest.mark.parametrize("populated", [False, True])
def test_the_command_names_an_unsafe_key_file_in_one_line(
    tmp_path: Path, populated: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'healthcode.sqlite'}"
    own = DataKeys(tmp_path / "data-keys")
    assert own.current == 1
    if populated:
        _populate(open_database(url), own)
    (own.directory / "index.key").chmod(0o644)
    environment = dict(
        os.environ,
        HEALTHCODE_DATABASE_URL=url,
        HEALTHCODE_DATA_KEY_DIR=str(tmp_path / "data-keys"),
        HEALTHCODE_KEY_DIR=str(tmp_path / "keys"),
        COLUMNS="400",
    )

    for command in (["register", NUMBER, "周慧敏"], ["status", NUMBER]):
        done = subprocess.run(
            [sys.executable, "-c", "from healthcode.cli import main; main()", *command],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        # Some commands print their error on the console, others on stderr.
        said = (done.stdout + done.stderr).strip()
        assert done.returncode == 1, said
        assert said == (
            f"error data_key_error: The blind index key at"
            f" {own.directory / 'index.key'} has mode 0644; it must be readable"
            " by its owner alone (0600)."
        )
