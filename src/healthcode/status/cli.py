"""Command-line views of statuses: ``healthcode status`` and ``healthcode recolor``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from healthcode.config import get_settings
from healthcode.db import open_database
from healthcode.errors import HealthcodeError
from healthcode.feeds.models import FeedImport
from healthcode.identity import divisions
from healthcode.identity.documents import parse_document
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.identity.services import get_resident, register_resident
from healthcode.status.services import (
    current_status,
    recolor_all,
    recolor_due,
    status_history,
)

# The way a person is named on the command line: a document number, its kind
# and, for passports, the issuing country.
DocumentArg = Annotated[str, typer.Argument(help="The identity document number.")]
KindOption = Annotated[
    str, typer.Option(help="Document kind: cn-id, passport, hk-mo-permit, ...")
]
CountryOption = Annotated[
    str, typer.Option(help="Issuing country (ISO alpha-3), for passports.")
]

STYLE = {
    "green": "bold green",
    "yellow": "bold yellow",
    "red": "bold red",
    "grey": "bold",
}
WORDS = {
    "green": "绿码 green",
    "yellow": "黄码 yellow",
    "red": "红码 red",
    "grey": "灰码 grey",
}


def _local(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M")


def _place(evidence: dict[str, Any]) -> str:
    code = evidence.get("areaCode") or ""
    try:
        name = divisions.full_name(code)
    except HealthcodeError:
        name = code
    return f"{name}{evidence.get('areaName') or ''}"


def _evidence_line(reason: dict[str, Any]) -> str:
    evidence = reason.get("evidence") or {}
    ref = evidence.get("ref") or {}
    if not ref:
        return "the resident's own record"
    line = f"{ref.get('kind')} {ref.get('recordId')} from {ref.get('department')}"
    area = evidence.get("areaRef")
    if area:
        hours, minutes = divmod(int(evidence.get("minutes") or 0), 60)
        line += (
            f"; {hours} h {minutes:02d} min in {_place(evidence)}"
            f" (risk area {area.get('recordId')} from {area.get('department')})"
        )
    return line


def _cause_text(cause: str, kinds: dict[int, str]) -> str:
    if cause.startswith("import:"):
        number = cause.partition(":")[2]
        if number.isdigit() and int(number) in kinds:
            return f"import of {kinds[int(number)]} (import {number})"
    return {
        "recolor": "full recolour",
        "time": "time passed",
        "register": "registration",
    }.get(cause, cause)


def status_command(
    document: DocumentArg,
    kind: KindOption = "cn-id",
    country: CountryOption = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the status as JSON.")
    ] = False,
) -> None:
    """Show a resident's colour, every reason for it, and when it changes next."""
    console = Console()
    now = datetime.now(UTC)
    try:
        today = now.astimezone(get_settings().tz).date()
        doc = parse_document(kind, document, country, today=today)
        engine = open_database(must_exist=True)
        with Session(engine) as session, session.begin():
            resident = get_resident(session, doc)
            view = current_status(session, resident.id, now)
            history = [
                {
                    "at": event.at,
                    "from": event.old_colour,
                    "to": event.new_colour,
                    "cause": event.cause,
                    "rules": [reason["rule"] for reason in event.reasons],
                }
                for event in status_history(session, resident.id)
            ]
            imports = {
                int(cause.partition(":")[2])
                for cause in (event["cause"] for event in history)
                if cause.startswith("import:") and cause.partition(":")[2].isdigit()
            }
            kinds = dict(
                session.execute(
                    sa.select(FeedImport.id, FeedImport.kind).where(
                        FeedImport.id.in_(imports)
                    )
                ).all()
            )
            masked = mask_name(resident.name)
            masked_doc = doc.masked()
    except HealthcodeError as exc:
        console.print(f"[red]error[/red] {exc.code}: {escape(str(exc))}")
        raise typer.Exit(1) from None

    if as_json:
        payload = {
            "document": masked_doc,
            "name": masked,
            "colour": view.colour,
            "asOf": view.as_of.isoformat(),
            "changesAt": view.changes_at.isoformat() if view.changes_at else None,
            "changesTo": view.changes_to,
            "ruleSet": view.rule_set,
            "reasons": view.reasons,
            "history": [dict(event, at=event["at"].isoformat()) for event in history],
        }
        sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return

    head = (
        f"[{STYLE[view.colour]}]{WORDS[view.colour]}[/]   {masked}   {masked_doc}\n"
        f"as of {_local(view.as_of)} ({get_settings().zone})   rule set {view.rule_set}"
    )
    if view.changes_at:
        head += f"\nchanges to {view.changes_to} at {_local(view.changes_at)}"
        head += " if nothing new arrives"
    elif view.colour != "green":
        head += "\nstays so until a new record arrives"
    console.print(Panel(head, title="health code", expand=False))
    if not view.reasons:
        console.print("No rule holds: green.")
    for reason in view.reasons:
        until = reason.get("until")
        ends = _local(datetime.fromisoformat(until)) if until else "a new record"
        console.print(
            f"[{STYLE[reason['colour']]}]{reason['colour']}[/]"
            f"  {reason['rule']} {reason['version']}  until {ends}\n"
            f"    {reason['text']['zh']}\n    {reason['text']['en']}\n"
            f"    evidence: {_evidence_line(reason)}",
            highlight=False,
        )
    if history:
        table = Table("at", "from", "to", "why", "rules", title="history")
        for event in history:
            table.add_row(
                _local(event["at"]),
                event["from"] or "-",
                event["to"],
                _cause_text(event["cause"], kinds),
                ", ".join(event["rules"]) or "-",
            )
        console.print(table)


def recolor_command(
    due: Annotated[
        bool,
        typer.Option(
            "--due", help="Only residents whose status said it would change by now."
        ),
    ] = False,
) -> None:
    """Re-evaluate everyone (a rule-set change, the daily turn), or only those due."""
    console = Console()
    now = datetime.now(UTC)
    engine = open_database()
    if due:
        report = recolor_due(engine, now)
    else:
        with engine.connect() as connection:
            total = connection.execute(
                sa.select(sa.func.count(Resident.id))
            ).scalar_one()
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("recolouring", total=total)
            report = recolor_all(
                engine, now, progress=lambda n: progress.advance(task, n)
            )
    console.print(
        f"{report.residents} residents evaluated,"
        f" {report.colour_changes} changed colour,"
        f" {report.rule_failures} rule failures, {report.seconds:.2f} s"
    )


def register_command(
    document: DocumentArg,
    name: Annotated[str, typer.Argument(help="The name as on the document.")],
    kind: KindOption = "cn-id",
    country: CountryOption = "",
    region: Annotated[
        str | None, typer.Option(help="GB/T 2260 county code of residence.")
    ] = None,
) -> None:
    """Register a resident; grey until the identity registry confirms them."""
    console = Console()
    now = datetime.now(UTC)
    try:
        today = now.astimezone(get_settings().tz).date()
        doc = parse_document(kind, document, country, today=today)
        if region is not None:
            from healthcode.identity.divisions import division

            division(region)
        engine = open_database()
        with Session(engine) as session, session.begin():
            resident = register_resident(session, doc, name, now, region_code=region)
            view = current_status(session, resident.id, now)
            masked = mask_name(resident.name)
    except HealthcodeError as exc:
        console.print(f"[red]error[/red] {exc.code}: {escape(str(exc))}")
        raise typer.Exit(1) from None
    reason = view.reasons[0]["text"] if view.reasons else {"zh": "", "en": ""}
    console.print(
        f"registered {masked} {doc.masked()}:"
        f" [{STYLE[view.colour]}]{WORDS[view.colour]}[/] {reason['zh']} {reason['en']}"
    )
