"""The ``healthcode`` command line."""

from __future__ import annotations

import logging

import sqlalchemy as sa
import typer

from healthcode.config import get_settings
from healthcode.errors import HealthcodeError
from healthcode.log import configure

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Health codes computed from department records, with their reasons.",
    # A traceback's local variables may hold records of people; they are
    # never printed.
    pretty_exceptions_show_locals=False,
)
bench_app = typer.Typer(
    no_args_is_help=True, help="Benchmarks that print their figures."
)
app.add_typer(bench_app, name="bench")


def _register() -> None:
    # Sub-commands are registered here, in one place, so that `healthcode
    # --help` lists them all and each domain keeps its own command module.
    from healthcode.bench.recolor import bench_recolor_command
    from healthcode.demo.cli import demo_command
    from healthcode.feeds.cli import import_command
    from healthcode.status.cli import (
        recolor_command,
        register_command,
        status_command,
    )

    app.command("demo")(demo_command)
    app.command("import")(import_command)
    app.command("status")(status_command)
    app.command("recolor")(recolor_command)
    app.command("register")(register_command)
    from healthcode.certificates.cli import import_certificate_command

    app.command("import-certificate")(import_certificate_command)
    bench_app.command("recolor")(bench_recolor_command)
    from healthcode.bench.load import bench_load_command

    bench_app.command("load")(bench_load_command)
    from healthcode.checkins.cli import bench_tracing_command, trace_command

    app.command("trace")(trace_command)
    bench_app.command("tracing")(bench_tracing_command)
    from healthcode.accounts.cli import accounts_app
    from healthcode.audit.cli import audit_app
    from healthcode.service.cli import serve_command

    app.command("serve")(serve_command)
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(audit_app, name="audit")
    from healthcode.privacy.cli import (
        audit_head_command,
        privacy_app,
        purge_command,
        sunset_command,
    )

    app.command("purge")(purge_command)
    app.command("sunset")(sunset_command)
    audit_app.command("head")(audit_head_command)
    app.add_typer(privacy_app, name="privacy")
    from healthcode.spark.cli import spark_app

    app.add_typer(spark_app, name="spark")
    try:
        from healthcode.codes.cli import (
            bench_codes,
            card_command,
            code_command,
            keys_app,
            status_list_command,
            verify_command,
        )
    except ImportError:
        return
    app.add_typer(keys_app, name="keys")
    from healthcode.regions.cli import peers_app

    app.add_typer(peers_app, name="peers")
    app.command("code")(code_command)
    app.command("card")(card_command)
    app.command("verify")(verify_command)
    app.command("status-list")(status_list_command)
    bench_app.command("codes")(bench_codes)


def main() -> None:
    try:
        settings = get_settings()
    except HealthcodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    # Commands print their own reports; the log adds only warnings and
    # errors on standard error, so the two do not say everything twice.
    configure(settings.log_format, logging.WARNING)
    _register()
    try:
        app()
    except HealthcodeError as exc:
        typer.echo(f"error {exc.code}: {exc}", err=True)
        raise SystemExit(1) from None
    except sa.exc.StatementError as exc:
        # A column type's own error (a data key that cannot be read, say)
        # reaches here wrapped in the statement that needed it.
        if isinstance(exc.orig, HealthcodeError):
            typer.echo(f"error {exc.orig.code}: {exc.orig}", err=True)
            raise SystemExit(1) from None
        if not isinstance(exc, sa.exc.OperationalError):
            raise
        typer.echo(
            "error database_unreachable: The database cannot be reached or opened;"
            " check HEALTHCODE_DATABASE_URL and that the server is running.",
            err=True,
        )
        raise SystemExit(1) from None
