"""The audit log: appended in a chain, append-only, and checked entry by entry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from healthcode.audit.cli import audit_app
from healthcode.audit.services import GENESIS, append, entry_hash, verify_log
from healthcode.config import get_settings

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def write_entries(engine: Engine, count: int) -> None:
    with Session(engine) as session, session.begin():
        for number in range(count):
            append(
                session,
                at=NOW + timedelta(seconds=number),
                actor="official:1",
                actor_role="health-official",
                action="resident.read",
                subject=f"resident:{number + 1}",
                purpose="Tracing case 42.",
                details={"n": number, "names": ["阿依古丽·买买提"]},
            )


def verify(engine: Engine):
    with Session(engine) as session:
        return verify_log(session)


def tamper(engine: Engine, statement: str) -> None:
    """Change the log as someone with the database owner's powers could."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("ALTER TABLE audit_entries DISABLE TRIGGER USER")
            )
            connection.execute(sa.text(statement))
            connection.execute(sa.text("ALTER TABLE audit_entries ENABLE TRIGGER USER"))
        else:
            connection.execute(sa.text("DROP TRIGGER audit_entries_no_update"))
            connection.execute(sa.text("DROP TRIGGER audit_entries_no_delete"))
            connection.execute(sa.text(statement))


def test_entries_link_to_the_one_before(engine: Engine) -> None:
    write_entries(engine, 3)

    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, prev_hash, hash FROM audit_entries ORDER BY id")
        ).all()

    assert [row[0] for row in rows] == [1, 2, 3]
    assert rows[0][1] == GENESIS
    assert rows[1][1] == rows[0][2] and rows[2][1] == rows[1][2]
    assert verify(engine).intact
    assert verify(engine).entries == 3


def test_the_hash_covers_every_field() -> None:
    fields = {
        "id": 1,
        "at": NOW,
        "actor": "official:1",
        "actor_role": "health-official",
        "action": "resident.read",
        "subject": "resident:1",
        "purpose": "Tracing.",
        "details": {"n": 1},
        "prev_hash": GENESIS,
    }
    base = entry_hash(**fields)
    changed = {
        "id": 2,
        "at": NOW + timedelta(microseconds=1),
        "actor": "official:2",
        "actor_role": None,
        "action": "resident.search",
        "subject": None,
        "purpose": "Other.",
        "details": {"n": 2},
        "prev_hash": "1" * 64,
    }

    for name, value in changed.items():
        assert entry_hash(**{**fields, name: value}) != base, name


def test_the_log_refuses_updates_and_deletes(engine: Engine) -> None:
    write_entries(engine, 1)

    for statement in (
        "UPDATE audit_entries SET actor = 'official:9'",
        "DELETE FROM audit_entries",
    ):
        with (
            pytest.raises(sa.exc.DatabaseError, match="append-only"),
            engine.begin() as connection,
        ):
            connection.execute(sa.text(statement))

    assert verify(engine).intact


def test_a_changed_entry_is_named(engine: Engine) -> None:
    write_entries(engine, 5)

    tamper(engine, "UPDATE audit_entries SET purpose = 'Curiosity.' WHERE id = 3")

    report = verify(engine)
    assert (report.first_broken, report.intact) == (3, False)
    assert report.problem == (
        "Entry 3 was changed: its contents no longer match its hash."
    )


def test_a_removed_entry_is_named_by_the_one_after_it(engine: Engine) -> None:
    write_entries(engine, 5)

    tamper(engine, "DELETE FROM audit_entries WHERE id = 2")

    report = verify(engine)
    assert report.first_broken == 3
    assert "the entries between them are missing" in (report.problem or "")


def test_a_rewritten_entry_with_a_fresh_hash_breaks_the_next_link(
    engine: Engine,
) -> None:
    write_entries(engine, 4)

    tamper(engine, "UPDATE audit_entries SET hash = '" + "a" * 64 + "' WHERE id = 2")

    report = verify(engine)
    assert report.first_broken == 2


def test_entries_cut_from_the_end_are_noticed(engine: Engine) -> None:
    write_entries(engine, 4)

    tamper(engine, "DELETE FROM audit_entries WHERE id >= 3")

    report = verify(engine)
    assert report.first_broken == 3
    assert "entries at the end are missing" in (report.problem or "")


def test_an_empty_log_is_intact(engine: Engine) -> None:
    assert verify(engine).intact
    assert verify(engine).entries == 0


def test_audit_values_must_be_plain_json(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(TypeError):
        append(session, at=NOW, actor="x", action="y", details={"f": 1.5})


@pytest.fixture
def invoke(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    get_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The command line, as the package registers it."""

    app.add_typer(audit_app, name="audit")

    def run(*arguments: str) -> Result:
        return CliRunner().invoke(app, ["audit", *arguments])

    yield run
    get_settings.cache_clear()


def test_the_command_says_intact_and_exits_0(
    engine: Engine, invoke: Callable[..., Result]
) -> None:
    write_entries(engine, 2)

    result = invoke("verify")

    assert result.exit_code == 0
    assert result.output.strip() == "The audit log is intact: 2 entries."


def test_the_command_names_the_first_broken_entry_and_exits_1(
    engine: Engine, invoke: Callable[..., Result]
) -> None:
    write_entries(engine, 3)
    tamper(engine, "UPDATE audit_entries SET actor = 'official:9' WHERE id = 2")

    result = invoke("verify")

    assert result.exit_code == 1
    assert result.output.strip() == (
        "The audit log is broken at entry 2: Entry 2 was changed: its contents no"
        " longer match its hash."
    )
