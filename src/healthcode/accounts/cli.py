"""``healthcode accounts``: officials and API keys, from the operator's shell.

The first administrator has to come from somewhere; these commands make
officials and keys without the service, and each act is audited under the
actor ``operator``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from healthcode.errors import HealthcodeError

accounts_app = typer.Typer(
    no_args_is_help=True, help="Officials and the API keys of systems and devices."
)


def _fail(exc: HealthcodeError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@accounts_app.command("add-official")
def add_official(
    username: Annotated[str, typer.Argument(help="Lower-case user name.")],
    role: Annotated[
        str,
        typer.Option(help="health-official, community-worker or administrator."),
    ],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="At least 12 characters; asked for when not given.",
        ),
    ],
) -> None:
    """Add an official and print the TOTP enrolment URI, once."""
    from healthcode.accounts.services import create_official, provisioning_uri
    from healthcode.audit.services import append
    from healthcode.db import open_database

    now = datetime.now(UTC)
    try:
        engine = open_database()
        with Session(engine) as session, session.begin():
            official, _ = create_official(session, username, role, password, now)
            append(
                session,
                at=now,
                actor="operator",
                action="official.create",
                subject=f"official:{official.id}",
                details={"role": official.role},
            )
            uri = provisioning_uri(official)
        engine.dispose()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(f"official {username} added as {role}; enrol this in an authenticator:")
    typer.echo(uri)


@accounts_app.command("add-key")
def add_key(
    kind: Annotated[str, typer.Argument(help="venue, checkpoint or department.")],
    scope: Annotated[
        str,
        typer.Argument(help="Venue id, checkpoint id, or the department's name."),
    ],
    feed_kind: Annotated[
        list[str] | None,
        typer.Option(help="A feed kind a department key may send; repeatable."),
    ] = None,
    label: Annotated[str, typer.Option(help="A note for administrators.")] = "",
) -> None:
    """Make an API key and print it, once; only its hash is kept."""
    from healthcode.accounts.services import create_api_key
    from healthcode.audit.services import append
    from healthcode.db import open_database

    now = datetime.now(UTC)
    try:
        engine = open_database()
        with Session(engine) as session, session.begin():
            row, key = create_api_key(
                session, kind, scope, now, feed_kinds=feed_kind, label=label
            )
            append(
                session,
                at=now,
                actor="operator",
                action="api-key.create",
                subject=f"api-key:{row.id}",
                details={"kind": row.kind, "scope": row.scope},
            )
            key_id = row.id
        engine.dispose()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(f"key {key_id} ({kind} {scope}); it is shown this once:")
    typer.echo(key)


@accounts_app.command("revoke-key")
def revoke_key(
    key_id: Annotated[int, typer.Argument(help="The key's id.", min=1)],
) -> None:
    """Revoke an API key from now on."""
    from healthcode.accounts.services import revoke_api_key
    from healthcode.audit.services import append
    from healthcode.db import open_database

    now = datetime.now(UTC)
    try:
        engine = open_database()
        with Session(engine) as session, session.begin():
            revoke_api_key(session, key_id, now)
            append(
                session,
                at=now,
                actor="operator",
                action="api-key.revoke",
                subject=f"api-key:{key_id}",
            )
        engine.dispose()
    except HealthcodeError as exc:
        raise _fail(exc) from None
    typer.echo(f"key {key_id} revoked.")
