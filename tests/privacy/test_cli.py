"""``healthcode purge``, ``audit verify`` after a purge, and ``audit head``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from healthcode.audit.cli import verify_command
from healthcode.audit.models import AuditEntry
from healthcode.audit.services import append
from healthcode.config import get_settings
from healthcode.feeds.models import Declaration
from healthcode.privacy.cli import audit_head_command, purge_command
from healthcode.privacy.config import get_privacy_settings

from .support import add_declaration, add_resident, audit_guards_dropped

REAL_NOW = datetime.now(UTC)


@pytest.fixture
def invoke(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    """Run the commands against the test's database and data key directory."""
    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("HEALTHCODE_DATA_KEY_DIR", str(tmp_path / "data-keys"))
    monkeypatch.setenv("HEALTHCODE_AUDIT_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    get_privacy_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The commands as the package registers them."""

    app.command("purge")(purge_command)
    audit = typer.Typer()
    audit.command("verify")(verify_command)
    audit.command("head")(audit_head_command)
    app.add_typer(audit, name="audit")
    runner = CliRunner()

    def run(*arguments: str) -> Result:
        return runner.invoke(app, list(arguments), env={"COLUMNS": "200"})

    yield run
    get_settings.cache_clear()
    get_privacy_settings.cache_clear()


def _old_data(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        resident = add_resident(
            session, "610113199001011230", "周慧敏", REAL_NOW - timedelta(days=90)
        )
        add_declaration(session, resident, REAL_NOW - timedelta(days=60))
        add_declaration(session, resident, REAL_NOW - timedelta(hours=1))
        for days in (80, 70, 1):
            append(
                session,
                at=REAL_NOW - timedelta(days=days),
                actor="official:1",
                action="resident.read",
            )


def test_purge_deletes_by_retention_and_prints_each_kind(
    invoke: Callable[..., Result], engine: Engine
) -> None:
    _old_data(engine)

    result = invoke("purge")

    with engine.connect() as connection:
        declarations = connection.scalar(sa.select(sa.func.count(Declaration.id)))
        entries = connection.scalars(sa.select(AuditEntry.id)).all()
    assert result.exit_code == 0, result.output
    for kind in ("checkins", "declarations", "sign-in-codes", "audit"):
        assert kind in result.output
    assert "Audit entries purged behind seal 1." in result.output
    assert declarations == 1
    assert entries == [3, 4]


def test_purge_of_one_kind_leaves_the_others(
    invoke: Callable[..., Result], engine: Engine
) -> None:
    _old_data(engine)

    result = invoke("purge", "--kind", "audit")

    with engine.connect() as connection:
        declarations = connection.scalar(sa.select(sa.func.count(Declaration.id)))
    assert result.exit_code == 0, result.output
    assert "declarations" not in result.output
    assert declarations == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--kind", "statuses"), "is not a kind of data"),
        (("--now", "2999-01-01T00:00:00+00:00"), "lies in the future"),
        (("--now", "2026-01-01T00:00:00"), "has no UTC offset"),
    ],
)
def test_purge_refuses_bad_options(
    invoke: Callable[..., Result], arguments: tuple[str, ...], message: str
) -> None:
    result = invoke("purge", *arguments)

    assert result.exit_code == 2
    assert message in result.output


def test_the_audit_log_verifies_after_a_purge(
    invoke: Callable[..., Result], engine: Engine
) -> None:
    _old_data(engine)
    invoke("purge")

    result = invoke("audit", "verify")

    assert result.exit_code == 0, result.output
    assert "The audit log is intact: 2 entries." in result.output


def test_a_purge_that_finds_the_log_broken_says_so_and_exits_1(
    invoke: Callable[..., Result], engine: Engine
) -> None:
    _old_data(engine)
    with audit_guards_dropped(engine), engine.begin() as connection:
        connection.execute(
            sa.update(AuditEntry).where(AuditEntry.id == 2).values(actor="nobody")
        )

    result = invoke("purge")

    assert result.exit_code == 1
    assert "Entry 2 was changed" in result.output


# The signed head.


def test_the_head_is_written_signed_and_checks(
    invoke: Callable[..., Result], engine: Engine, tmp_path: Path
) -> None:
    _old_data(engine)
    head = tmp_path / "head.json"

    written = invoke("audit", "head", "--out", str(head))
    checked = invoke("audit", "head", "--check", str(head))

    document = json.loads(head.read_text())
    assert written.exit_code == 0, written.output
    assert document["lastId"] == 3
    assert document["format"] == "healthcode-audit-head/1"
    assert checked.exit_code == 0, checked.output
    assert "held: entry 3 has the hash the head signed." in checked.output


def test_a_head_still_checks_after_its_entry_was_purged(
    invoke: Callable[..., Result], engine: Engine, tmp_path: Path
) -> None:
    with Session(engine) as session, session.begin():
        append(session, at=REAL_NOW - timedelta(days=90), actor="system", action="a")
    head = tmp_path / "head.json"
    invoke("audit", "head", "--out", str(head))
    invoke("purge", "--kind", "audit")

    checked = invoke("audit", "head", "--check", str(head))

    assert checked.exit_code == 0, checked.output
    assert "held: entry 1 was purged with the hash it had." in checked.output


def test_an_altered_head_is_refused(
    invoke: Callable[..., Result], engine: Engine, tmp_path: Path
) -> None:
    _old_data(engine)
    head = tmp_path / "head.json"
    invoke("audit", "head", "--out", str(head))
    document = json.loads(head.read_text())
    document["lastHash"] = "0" * 64
    head.write_text(json.dumps(document))

    checked = invoke("audit", "head", "--check", str(head))

    assert checked.exit_code == 1
    assert "audit_seal_invalid" in checked.output


def test_a_rewritten_log_fails_the_head_it_signed_before(
    invoke: Callable[..., Result], engine: Engine, tmp_path: Path
) -> None:
    _old_data(engine)
    head = tmp_path / "head.json"
    invoke("audit", "head", "--out", str(head))
    with audit_guards_dropped(engine), engine.begin() as connection:
        connection.execute(
            sa.update(AuditEntry).where(AuditEntry.id == 3).values(hash="a" * 64)
        )

    checked = invoke("audit", "head", "--check", str(head))
    verified = invoke("audit", "verify")

    assert checked.exit_code == 1
    assert "changed: entry 3 no longer has the hash it had." in checked.output
    assert verified.exit_code == 1


def test_the_head_command_needs_one_of_its_options(
    invoke: Callable[..., Result],
) -> None:
    result = invoke("audit", "head")

    assert result.exit_code == 2
    assert "Give either --out FILE or --check FILE." in result.output


def test_an_earlier_daily_seal_is_written_as_it_was(
    invoke: Callable[..., Result], engine: Engine, tmp_path: Path
) -> None:
    from healthcode.privacy.seals import SealKeys, seal_head

    _old_data(engine)
    with Session(engine) as session, session.begin():
        daily = seal_head(session, REAL_NOW, SealKeys(tmp_path / "data-keys"))
        daily_id = daily.id
    with Session(engine) as session, session.begin():
        append(session, at=REAL_NOW, actor="system", action="later")
    head = tmp_path / "daily.json"

    written = invoke("audit", "head", "--out", str(head), "--seal", str(daily_id))
    checked = invoke("audit", "head", "--check", str(head))

    assert written.exit_code == 0, written.output
    assert json.loads(head.read_text())["lastId"] == 3
    assert "held: entry 3" in checked.output


def test_an_unknown_seal_is_named(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    result = invoke("audit", "head", "--out", str(tmp_path / "x.json"), "--seal", "9")

    assert result.exit_code == 1
    assert "There is no audit seal 9." in result.output
