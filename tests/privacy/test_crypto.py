"""Sealed fields and blind indexes: found by value, unreadable without the keys."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from healthcode.privacy.crypto import DataKeys, sealed_version
from healthcode.privacy.errors import DataKeyError
from healthcode.privacy.rotation import SealedColumn, rotate_keys
from healthcode.privacy.types import BlindIndex, Sealed, using_keys

NUMBER = "610113199001011230"
NAME = "\U00020164丽华"

metadata = sa.MetaData()
people = sa.Table(
    "privacy_test_people",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("number_index", BlindIndex("people.number")),
    sa.Column("number", Sealed("people.number")),
    sa.Column("name", Sealed("people.name")),
)
COLUMNS = [
    SealedColumn(people, people.c.number, people.c.id),
    SealedColumn(people, people.c.name, people.c.id),
]


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[DataKeys]:
    with using_keys(DataKeys(tmp_path / "data-keys")) as installed:
        yield installed


@pytest.fixture
def table(engine: Engine, keys: DataKeys) -> Iterator[sa.Table]:
    metadata.create_all(engine)
    try:
        yield people
    finally:
        metadata.drop_all(engine)


def _insert(engine: Engine, *rows: tuple[int, str, str]) -> None:
    with engine.begin() as connection:
        connection.execute(
            people.insert(),
            [
                {"id": rid, "number_index": number, "number": number, "name": name}
                for rid, number, name in rows
            ],
        )


def _raw(engine: Engine) -> list[tuple[str, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "SELECT number_index, number, name FROM privacy_test_people"
                    " ORDER BY id"
                )
            )
        ]


# The keys and the primitives.


def test_keys_are_made_on_first_use_readable_by_their_owner_alone(
    keys: DataKeys,
) -> None:
    keys.seal("x", "people.name")

    files = sorted(path.name for path in keys.directory.iterdir())
    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in keys.directory.iterdir()
    }
    assert files == ["current", "index.key", "seal-1.key"]
    assert set(modes.values()) == {0o600}


def test_a_key_others_may_read_is_refused(tmp_path: Path) -> None:
    DataKeys(tmp_path).seal("x", "people.name")
    os.chmod(tmp_path / "data" / "seal-1.key", 0o644)

    with pytest.raises(DataKeyError, match="mode 0644"):
        DataKeys(tmp_path).seal("x", "people.name")


def test_a_value_seals_differently_each_time_and_opens_back(keys: DataKeys) -> None:
    first = keys.seal(NAME, "people.name")
    second = keys.seal(NAME, "people.name")

    assert first != second
    assert sealed_version(first) == 1
    assert keys.open(first, "people.name") == NAME
    assert NAME not in first


def test_a_value_moved_to_another_column_does_not_open(keys: DataKeys) -> None:
    token = keys.seal(NUMBER, "people.number")

    with pytest.raises(DataKeyError) as raised:
        keys.open(token, "people.name")

    assert "belongs elsewhere" in str(raised.value)
    assert NUMBER not in str(raised.value)


@pytest.mark.parametrize("damage", ["flip", "cut", "garbage"])
def test_a_damaged_value_is_refused_without_showing_it(
    keys: DataKeys, damage: str
) -> None:
    token = keys.seal(NUMBER, "people.number")
    damaged = {
        "flip": token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1],
        "cut": token[:8],
        "garbage": "not sealed",
    }[damage]

    with pytest.raises(DataKeyError) as raised:
        keys.open(damaged, "people.number")

    assert NUMBER not in str(raised.value)


def test_the_index_is_stable_keyed_and_differs_by_purpose(
    keys: DataKeys, tmp_path: Path
) -> None:
    other = DataKeys(tmp_path / "other")

    index = keys.index(NUMBER, "people.number")

    assert index == keys.index(NUMBER, "people.number")
    assert index != keys.index(NUMBER, "accounts.phone")
    assert index != other.index(NUMBER, "people.number")
    assert len(index) == 64 and NUMBER not in index


# The column types.


def test_equality_and_in_find_rows_by_their_plain_values(
    engine: Engine, table: sa.Table
) -> None:
    _insert(engine, (1, NUMBER, NAME), (2, "61011319550202121X", "Anna Schmidt"))

    with engine.connect() as connection:
        one = connection.execute(
            sa.select(table.c.id, table.c.name).where(table.c.number_index == NUMBER)
        ).all()
        both = connection.scalars(
            sa.select(table.c.id)
            .where(table.c.number_index.in_([NUMBER, "61011319550202121X"]))
            .order_by(table.c.id)
        ).all()

    assert one == [(1, NAME)]
    assert both == [1, 2]


def test_the_database_holds_no_plain_value(engine: Engine, table: sa.Table) -> None:
    _insert(engine, (1, NUMBER, NAME))

    stored = _raw(engine)

    assert all(NUMBER not in value and NAME not in value for value in stored[0])
    assert stored[0][1].startswith("v1:")


def test_without_the_keys_the_values_do_not_open(
    engine: Engine, table: sa.Table, tmp_path: Path
) -> None:
    _insert(engine, (1, NUMBER, NAME))

    with using_keys(DataKeys(tmp_path / "stolen-copy-elsewhere")):
        with pytest.raises(DataKeyError), engine.connect() as connection:
            connection.execute(sa.select(table.c.name)).all()
        with engine.connect() as connection:
            found = connection.execute(
                sa.select(table.c.id).where(table.c.number_index == NUMBER)
            ).all()

    assert found == []


# Rotation.


def test_rotation_reseals_every_value_and_retires_the_old_key(
    engine: Engine, table: sa.Table, keys: DataKeys
) -> None:
    _insert(engine, *[(i, f"6101131990010{i:05d}", f"Name {i}") for i in range(1, 8)])
    seen: list[tuple[str, int, int]] = []

    report = rotate_keys(
        engine,
        keys,
        columns=COLUMNS,
        batch=3,
        progress=lambda name, done, total: seen.append((name, done, total)),
    )

    with engine.connect() as connection:
        names = connection.scalars(sa.select(table.c.name).order_by(table.c.id)).all()
    assert report.version == 2
    assert report.resealed == {
        "privacy_test_people.number": 7,
        "privacy_test_people.name": 7,
    }
    assert report.retired == [1]
    assert {sealed_version(value) for row in _raw(engine) for value in row[1:]} == {2}
    assert names == [f"Name {i}" for i in range(1, 8)]
    assert seen[:3] == [
        ("privacy_test_people.number", 3, 7),
        ("privacy_test_people.number", 6, 7),
        ("privacy_test_people.number", 7, 7),
    ]
    assert keys.versions() == [2]


def test_values_written_during_a_rotation_read_with_either_key(
    engine: Engine, table: sa.Table, keys: DataKeys
) -> None:
    _insert(engine, (1, NUMBER, NAME))
    keys.rotate()
    _insert(engine, (2, "61011319550202121X", "Anna Schmidt"))

    with engine.connect() as connection:
        names = connection.scalars(sa.select(table.c.name).order_by(table.c.id)).all()
    report = rotate_keys(engine, keys, new_key=False, columns=COLUMNS)

    assert names == [NAME, "Anna Schmidt"]
    assert report.resealed == {
        "privacy_test_people.number": 1,
        "privacy_test_people.name": 1,
    }
    assert report.retired == [1]


def test_a_key_still_in_use_is_not_retired(
    engine: Engine, table: sa.Table, keys: DataKeys
) -> None:
    _insert(engine, (1, NUMBER, NAME))

    report = rotate_keys(engine, keys, columns=COLUMNS[:1])

    assert report.retired == []
    assert keys.versions() == [1, 2]


def test_the_current_key_cannot_be_retired(keys: DataKeys) -> None:
    with pytest.raises(DataKeyError, match="current one"):
        keys.retire(keys.current)


# The command.


def test_the_command_rotates_and_deletes_the_key_no_value_uses(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from healthcode.config import get_settings
    from healthcode.privacy.cli import privacy_app
    from healthcode.privacy.config import get_privacy_settings

    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("HEALTHCODE_DATA_KEY_DIR", str(tmp_path / "command-keys"))
    get_settings.cache_clear()
    get_privacy_settings.cache_clear()
    DataKeys(tmp_path / "command-keys").seal("x", "people.name")
    app = typer.Typer()
    app.add_typer(privacy_app, name="privacy")

    try:
        rotated = CliRunner().invoke(app, ["privacy", "rotate-keys"])
        resumed = CliRunner().invoke(app, ["privacy", "rotate-keys", "--resume"])
    finally:
        get_settings.cache_clear()
        get_privacy_settings.cache_clear()

    assert rotated.exit_code == 0, rotated.output
    assert "key 2" in rotated.output
    assert "Deleted data keys no value uses any more: 1." in rotated.output
    assert resumed.exit_code == 0, resumed.output
    assert DataKeys(tmp_path / "command-keys").versions() == [2]


def test_a_value_sealed_by_a_process_yet_to_see_the_new_key_still_opens(
    engine: Engine, table: sa.Table, keys: DataKeys
) -> None:
    # Another process (a server worker) read which key is current before the
    # rotation, and goes on sealing with it until it reads the file again.
    worker = DataKeys(keys.directory.parent)
    with using_keys(worker):
        _insert(engine, (1, NUMBER, NAME))

    report = rotate_keys(engine, keys, columns=COLUMNS)
    with using_keys(worker):
        _insert(engine, (2, "61011319550202121X", "Anna Schmidt"))

    fresh = DataKeys(keys.directory.parent)
    with using_keys(fresh), engine.connect() as connection:
        names = connection.scalars(sa.select(table.c.name).order_by(table.c.id)).all()
    assert names == [NAME, "Anna Schmidt"]
    assert report.retired == [1]


def test_the_command_refuses_while_another_process_rotates(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    import typer
    from typer.testing import CliRunner

    from healthcode.config import get_settings
    from healthcode.privacy.cli import privacy_app
    from healthcode.privacy.config import get_privacy_settings

    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("HEALTHCODE_DATA_KEY_DIR", str(tmp_path / "command-keys"))
    get_settings.cache_clear()
    get_privacy_settings.cache_clear()
    held = DataKeys(tmp_path / "command-keys")
    held.seal("x", "people.name")
    app = typer.Typer()
    app.add_typer(privacy_app, name="privacy")

    # The server's rotation job holds the lock, as a process of its own would.
    try:
        with open(held.directory / "rotation.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            refused = CliRunner().invoke(app, ["privacy", "rotate-keys"])
    finally:
        get_settings.cache_clear()
        get_privacy_settings.cache_clear()

    assert refused.exit_code == 1
    assert "Another process is rotating the data keys" in refused.output
    assert DataKeys(tmp_path / "command-keys").versions() == [1]
