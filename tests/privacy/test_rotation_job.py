"""The key rotation job: residents' and phones' sealed values re-sealed in place.

The job rotates when the current data key has reached its age, finishes a
re-sealing that was cut short on any other day, and leaves the work to
another process that holds the lock. Everything still opens afterwards.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.accounts.models import Account
from healthcode.identity.models import Resident
from healthcode.identity.services import search_by_name
from healthcode.privacy.crypto import DataKeys, sealed_version
from healthcode.privacy.jobs import run_rotation
from healthcode.privacy.rotation import reindex
from healthcode.privacy.types import using_keys

from .support import add_resident

EVERY = timedelta(days=180)
PEOPLE = {
    "610113199001011230": "周慧敏",
    "610113198805052345": "\U00020164丽华",
    "61011319750303456X": "阿依古丽·买买提",
}


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[DataKeys]:
    with using_keys(DataKeys(tmp_path / "data-keys")) as installed:
        yield installed


@pytest.fixture
def people(engine: Engine, keys: DataKeys) -> list[int]:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        ids = [add_resident(session, n, name, now) for n, name in PEOPLE.items()]
        session.add(Account(phone="+8613912345678", resident_id=ids[0], created_at=now))
    return ids


def _versions(engine: Engine) -> list[int | None]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT doc_number_sealed, name_sealed FROM residents"
                " UNION ALL SELECT phone_sealed, phone_sealed FROM accounts"
            )
        )
        return sorted({sealed_version(value) for row in rows for value in row})


def _read(engine: Engine) -> tuple[dict[str, str], str]:
    with Session(engine) as session:
        people = {r.doc_number: r.name for r in session.scalars(sa.select(Resident))}
        phone = session.scalars(
            sa.select(Account.phone).where(Account.phone_index == "+8613912345678")
        ).one()
    return people, phone


def test_a_key_of_its_age_is_rotated_and_every_value_resealed(
    engine: Engine, keys: DataKeys, people: list[int]
) -> None:
    later = keys.current_since() + EVERY

    report = run_rotation(engine, keys, later, EVERY, batch=2)

    assert report is not None
    assert report.version == 2
    assert report.resealed["residents.doc_number_sealed"] == 3
    assert report.resealed["residents.name_sealed"] == 3
    assert report.resealed["accounts.phone_sealed"] == 1
    assert report.retired == [1]
    assert keys.versions() == [2]
    assert _versions(engine) == [2]
    assert _read(engine) == (PEOPLE, "+8613912345678")


def test_a_younger_key_with_nothing_left_to_reseal_is_left_alone(
    engine: Engine, keys: DataKeys, people: list[int]
) -> None:
    sooner = keys.current_since() + EVERY - timedelta(minutes=1)

    report = run_rotation(engine, keys, sooner, EVERY)

    assert report is None
    assert keys.versions() == [1]
    assert _versions(engine) == [1]


def test_an_interrupted_resealing_is_finished_the_next_day(
    engine: Engine, keys: DataKeys, people: list[int]
) -> None:
    # A rotation that made its key and stopped before re-sealing anything.
    keys.rotate()
    next_day = keys.current_since() + timedelta(days=1)

    report = run_rotation(engine, keys, next_day, EVERY)

    assert report is not None
    assert (report.version, report.retired) == (2, [1])
    assert _versions(engine) == [2]
    assert _read(engine) == (PEOPLE, "+8613912345678")


def test_another_process_rotating_makes_the_job_skip(
    engine: Engine, keys: DataKeys, people: list[int]
) -> None:
    later = keys.current_since() + EVERY
    with open(keys.directory / "rotation.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)

        report = run_rotation(engine, keys, later, EVERY)

    assert report is None
    assert keys.versions() == [1]


def test_a_new_index_key_with_a_reindex_finds_everyone_again(
    engine: Engine, keys: DataKeys, people: list[int]
) -> None:
    with engine.connect() as connection:
        before = connection.execute(
            sa.text("SELECT doc_number_index, name_index FROM residents ORDER BY id")
        ).all()
    keys.new_index_key()

    done = reindex(engine, keys, batch=2)

    with engine.connect() as connection:
        after = connection.execute(
            sa.text("SELECT doc_number_index, name_index FROM residents ORDER BY id")
        ).all()
    with Session(engine) as session:
        found = [
            session.scalars(
                sa.select(Resident.id).where(Resident.doc_number_index == number)
            ).one()
            for number in PEOPLE
        ]
        by_name = search_by_name(session, "周慧敏")
    assert done == {"residents": 3, "accounts": 1}
    assert (keys.directory / "index.key.old").exists()
    assert not set(before) & set(after)
    assert found == people
    assert [r.id for r in by_name] == [people[0]]
    assert _read(engine) == (PEOPLE, "+8613912345678")
