"""``healthcode purge``, ``healthcode sunset`` and ``healthcode audit head``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from healthcode.errors import HealthcodeError
from healthcode.privacy.models import AuditSeal
from healthcode.privacy.retention import KINDS, RetentionPolicy, purge
from healthcode.privacy.seals import SealKeys
from healthcode.privacy.sunset import SUNSET_PHRASE, sunset

__all__ = [
    "audit_head_command",
    "privacy_app",
    "purge_command",
    "rotate_keys_command",
    "sunset_command",
]


def _fail(exc: HealthcodeError) -> typer.Exit:
    typer.echo(f"error {exc.code}: {exc}", err=True)
    return typer.Exit(1)


def _clock(text: str | None) -> datetime:
    real = datetime.now(UTC)
    if text is None:
        return real
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time.") from None
    if moment.utcoffset() is None:
        raise typer.BadParameter(f"{text!r} has no UTC offset.")
    # Purging as of a later day would delete what the policy still keeps.
    if moment > real + timedelta(minutes=5):
        raise typer.BadParameter(f"{text!r} lies in the future.")
    return moment


def _keys() -> SealKeys:
    from healthcode.privacy.config import get_privacy_settings

    return SealKeys(get_privacy_settings().data_key_dir)


def purge_command(
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", help=f"Purge only this kind ({', '.join(KINDS)}); repeatable."
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(help="Purge as of this earlier ISO 8601 time (default: now)."),
    ] = None,
) -> None:
    """Delete what is older than its retention period, kind by kind.

    Check-ins go after HEALTHCODE_CHECKIN_RETENTION_DAYS, declarations after
    HEALTHCODE_DECLARATION_RETENTION_DAYS, expired sign-in codes from the
    file sender's file, audit entries after HEALTHCODE_AUDIT_RETENTION_DAYS
    behind a signed seal, and lab results, vaccinations, released cases,
    ended quarantine orders and journeys after their own periods. Exits with
    1 when a kind could not be purged.
    """
    from healthcode.config import get_settings
    from healthcode.db import open_database

    unknown = sorted(set(kind or ()) - set(KINDS))
    if unknown:
        raise typer.BadParameter(
            f"{unknown[0]!r} is not a kind of data; choose from {', '.join(KINDS)}."
        )
    moment = _clock(now)
    settings = get_settings()
    try:
        policy = RetentionPolicy.configured()
        engine = open_database()
        try:
            report = purge(
                engine,
                moment,
                policy,
                _keys(),
                kinds=kind or KINDS,
                sign_in_file=Path(settings.sign_in_file)
                if settings.sign_in_sender == "file"
                else None,
                actor="operator",
            )
        finally:
            engine.dispose()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    console = Console()
    table = Table("kind", "deleted", "kept from", title="purged by retention")
    for name, deleted in report.deleted.items():
        cutoff = report.cutoffs.get(name)
        kept = (
            cutoff.astimezone(policy.zone).strftime("%Y-%m-%d %H:%M")
            if cutoff
            else "unexpired codes"
        )
        table.add_row(name, str(deleted), kept)
    console.print(table)
    if report.seal_id is not None:
        console.print(f"Audit entries purged behind seal {report.seal_id}.")
    for problem in report.problems:
        typer.echo(f"problem: {problem}", err=True)
    if report.problems:
        raise typer.Exit(1)


def sunset_command(
    confirmed: Annotated[
        bool,
        typer.Option(
            "--yes-delete-all-personal-data",
            help="Confirm without being asked to type the phrase.",
        ),
    ] = False,
) -> None:
    """End the emergency: delete all personal data, keep daily counts only.

    Counts residents by day, colour and district first, then deletes every
    resident, record, status, account, check-in, audit entry and staff
    account. Asks for the phrase unless the flag confirms it.
    """
    from healthcode.config import get_settings
    from healthcode.db import open_database

    if confirmed:
        phrase = SUNSET_PHRASE
    else:
        typer.echo(
            "This deletes every resident, record, account and audit entry; only"
            " counts by day, colour and district remain."
        )
        phrase = typer.prompt(f"Type '{SUNSET_PHRASE}' to go on", default="")
    try:
        engine = open_database(must_exist=True)
        try:
            report = sunset(
                engine,
                datetime.now(UTC),
                _keys(),
                zone=get_settings().tz,
                confirmation=phrase,
            )
        finally:
            engine.dispose()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    console = Console()
    table = Table("table", "rows deleted", title="sunset")
    for name, deleted in sorted(report.deleted.items()):
        table.add_row(name, str(deleted))
    console.print(table)
    console.print(
        f"Kept {report.count_rows} counts over {report.days_counted} days."
        + (
            f" The audit log went behind seal {report.seal_id}."
            if report.seal_id
            else ""
        )
    )
    if not report.audit_intact:
        typer.echo(
            "warning: the audit log was broken before the sunset; its last entry"
            " says where.",
            err=True,
        )


def audit_head_command(
    out: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Seal the head now and write it here."),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(dir_okay=False, exists=True, help="Check a head written earlier."),
    ] = None,
    seal_id: Annotated[
        int | None,
        typer.Option(
            "--seal",
            min=1,
            help="With --out, write this earlier seal (a daily one) instead.",
        ),
    ] = None,
) -> None:
    """Export the audit log's signed head, or check one exported before.

    A head kept where the database's owner cannot write makes any later
    rewrite of the log up to that entry detectable. The daily job seals a
    head every day; --seal N writes one of those. Checking verifies the
    signature against the local seal keys and that the log still holds the
    entry with that hash (or purged it behind a seal).
    """
    from healthcode.db import open_database
    from healthcode.privacy.seals import head_document, seal_head, verify_head_document

    if (out is None) == (check is None):
        raise typer.BadParameter("Give either --out FILE or --check FILE.")
    if seal_id is not None and out is None:
        raise typer.BadParameter("--seal goes with --out FILE.")
    keys = _keys()
    try:
        engine = open_database(must_exist=True)
        try:
            with Session(engine) as session, session.begin():
                if out is not None:
                    row = (
                        _earlier_seal(session, seal_id)
                        if seal_id is not None
                        else seal_head(session, datetime.now(UTC), keys)
                    )
                    document = head_document(row, keys)
                else:
                    document = _read_head(check)
                    last_id, last_hash = verify_head_document(
                        document, keys.public_keys()
                    )
                    verdict = _still_held(session, last_id, last_hash)
        finally:
            engine.dispose()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    if out is not None:
        out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        typer.echo(
            f"wrote the head at entry {document['lastId']}, sealed by key"
            f" {document['keyId']}, to {out}"
        )
        return
    held, text = verdict
    typer.echo(text)
    if not held:
        raise typer.Exit(1)


def _earlier_seal(session: Session, seal_id: int) -> AuditSeal:
    from healthcode.privacy.errors import AuditSealInvalid

    row = session.get(AuditSeal, seal_id)
    if row is None:
        raise AuditSealInvalid(f"There is no audit seal {seal_id}.")
    return row


def _read_head(path: Path | None) -> dict[str, Any]:
    from healthcode.privacy.errors import AuditSealInvalid

    try:
        document = json.loads(Path(str(path)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise AuditSealInvalid(
            f"The file {path} is not an audit head written by this command."
        ) from None
    if not isinstance(document, dict):
        raise AuditSealInvalid(
            f"The file {path} is not an audit head written by this command."
        )
    return document


def _still_held(session: Session, last_id: int, last_hash: str) -> tuple[bool, str]:
    import sqlalchemy as sa

    from healthcode.audit.models import AuditEntry
    from healthcode.privacy.models import AuditSeal

    if last_id == 0:
        return True, "held: the head was signed while the log was empty."
    entry = session.get(AuditEntry, last_id)
    if entry is not None:
        if entry.hash == last_hash:
            return True, f"held: entry {last_id} has the hash the head signed."
        return False, f"changed: entry {last_id} no longer has the hash it had."
    purge = session.scalars(
        sa.select(AuditSeal)
        .where(AuditSeal.kind == "purge", AuditSeal.last_id >= last_id)
        .order_by(AuditSeal.last_id)
        .limit(1)
    ).first()
    if purge is None:
        return False, f"missing: entry {last_id} is gone and no purge seal covers it."
    if purge.last_id == last_id:
        if purge.last_hash == last_hash:
            return True, f"held: entry {last_id} was purged with the hash it had."
        return False, f"changed: entry {last_id} was purged with another hash."
    return True, (
        f"purged: entry {last_id} went by retention behind the seal of entry"
        f" {purge.last_id}; its hash can no longer be compared."
    )


privacy_app = typer.Typer(
    no_args_is_help=True, help="The data keys that seal personal fields."
)


@privacy_app.command("rotate-keys")
def rotate_keys_command(
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Go on re-encrypting with the current key; make no new one.",
        ),
    ] = False,
    batch: Annotated[
        int, typer.Option(min=1, max=100_000, help="Values per transaction.")
    ] = 1000,
) -> None:
    """Make a new data key and re-encrypt every sealed field with it.

    New values use the new key at once and old ones keep reading with
    theirs, so the service may run meanwhile. Old keys are deleted when no
    value uses them any more. Interrupted, run it again with --resume.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from healthcode.db import open_database
    from healthcode.privacy.config import get_privacy_settings
    from healthcode.privacy.crypto import DataKeys
    from healthcode.privacy.errors import DataKeyError
    from healthcode.privacy.jobs import rotation_lock
    from healthcode.privacy.rotation import rotate_keys

    keys = DataKeys(get_privacy_settings().data_key_dir)
    console = Console()
    try:
        engine = open_database(must_exist=True)
        try:
            with (
                rotation_lock(keys.directory) as held,
                Progress(
                    TextColumn("{task.description:<32}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    console=console,
                ) as bar,
            ):
                if not held:
                    # Two rotations at once would each delete the key the
                    # other has just made current.
                    raise DataKeyError(
                        "Another process is rotating the data keys now (the"
                        " server's rotation job, or this command run elsewhere);"
                        " run it again when that is done."
                    )
                tasks: dict[str, Any] = {}

                def advance(column: str, done: int, total: int) -> None:
                    if column not in tasks:
                        tasks[column] = bar.add_task(column, total=total)
                    bar.update(tasks[column], completed=done, total=total)

                report = rotate_keys(
                    engine, keys, new_key=not resume, batch=batch, progress=advance
                )
        finally:
            engine.dispose()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    table = Table("sealed column", "values re-encrypted", title=f"key {report.version}")
    for name, count in report.resealed.items():
        table.add_row(name, str(count))
    console.print(table)
    if report.skipped:
        console.print(f"{report.skipped} values changed meanwhile and kept their key.")
    if report.retired:
        retired = ", ".join(str(version) for version in report.retired)
        console.print(f"Deleted data keys no value uses any more: {retired}.")


@privacy_app.command("reindex")
def reindex_command(
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key",
            help="First put a new blind index key in place (the old one is kept"
            " as index.key.old).",
        ),
    ] = False,
    batch: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows per transaction.")
    ] = 1000,
) -> None:
    """Compute every blind index again, after the index key changed.

    Stop the service first: a look-up during the re-index misses the rows
    already changed. Interrupted, run it again without --new-key.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from healthcode.db import open_database
    from healthcode.privacy.config import get_privacy_settings
    from healthcode.privacy.crypto import DataKeys
    from healthcode.privacy.rotation import reindex

    keys = DataKeys(get_privacy_settings().data_key_dir)
    console = Console()
    try:
        engine = open_database(must_exist=True)
        try:
            if new_key:
                keys.new_index_key()
            with Progress(
                TextColumn("{task.description:<32}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
            ) as bar:
                tasks: dict[str, Any] = {}

                def advance(table: str, done: int, total: int) -> None:
                    if table not in tasks:
                        tasks[table] = bar.add_task(table, total=total)
                    bar.update(tasks[table], completed=done, total=total)

                done = reindex(engine, keys, batch=batch, progress=advance)
        finally:
            engine.dispose()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    table = Table("table", "rows indexed", title="blind indexes")
    for name, count in done.items():
        table.add_row(name, str(count))
    console.print(table)
