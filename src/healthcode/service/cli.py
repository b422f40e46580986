"""``healthcode serve``: run the HTTP service under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from healthcode.errors import HealthcodeError


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port to listen on.")
    ] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=256, help="Worker processes.")] = 1,
) -> None:
    """Migrate the database, check the configuration, then serve HTTP.

    With more than one worker, sessions, sign-in codes and rate limits must
    be shared between the processes, so HEALTHCODE_REDIS_URL must be set.
    """
    import uvicorn

    from healthcode.config import get_settings
    from healthcode.db import open_database
    from healthcode.service.runtime import build_runtime
    from healthcode.service.shedding import body_limit_from_env, limits_from_env

    try:
        settings = get_settings()
        # Each worker reads the shedding bounds when it builds its app; read
        # here first, a bad bound stops the command before any worker starts
        # instead of killing every worker as it boots.
        limits_from_env()
        body_limit_from_env()
    except HealthcodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if workers > 1 and not settings.redis_url:
        typer.echo(
            "error: --workers above 1 needs HEALTHCODE_REDIS_URL, so that the"
            " workers share sessions, sign-in codes and rate limits.",
            err=True,
        )
        raise typer.Exit(2)
    try:
        # Migrate once here, before any worker starts, so that workers never
        # race each other through the migrations.
        open_database(settings.database_url).dispose()
        build_runtime(settings).close()
    except HealthcodeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        "healthcode.service.app:make_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        # Named rather than left to "auto", so that an install without them
        # fails here instead of serving on the pure-Python parser and loop,
        # several times slower per request.
        loop="uvloop",
        http="httptools",
    )
