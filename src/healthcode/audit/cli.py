"""``healthcode audit verify``: check the audit log's hash chain."""

from __future__ import annotations

import typer
from sqlalchemy.orm import Session

from healthcode.errors import HealthcodeError

audit_app = typer.Typer(no_args_is_help=True, help="The audit log.")


@audit_app.command("verify")
def verify_command() -> None:
    """Check every link of the audit log; name the first broken entry.

    Exits with status 0 when the chain is intact and 1 when it is not.
    """
    from healthcode.db import open_database
    from healthcode.privacy.config import get_privacy_settings
    from healthcode.privacy.seals import SealKeys, verify_audit

    try:
        # Entries purged by retention went behind a signed seal; the chain
        # is checked from there, and every seal's signature with it.
        keys = SealKeys(get_privacy_settings().data_key_dir)
        engine = open_database()
        try:
            with Session(engine) as session:
                report = verify_audit(session, keys)
        finally:
            engine.dispose()
    except HealthcodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if report.intact:
        typer.echo(f"The audit log is intact: {report.entries} entries.")
        return
    typer.echo(
        f"The audit log is broken at entry {report.first_broken}: {report.problem}"
    )
    raise typer.Exit(1)
