"""``healthcode import-certificate FILE``: a visitor's foreign certificate as evidence.

The command is thin: it loads the configured trust (document signers for EU
DCCs, issuer keys for SMART Health Cards, and optionally business rules),
finds the visitor by their passport, and hands each certificate in the file
to :func:`healthcode.certificates.services.import_certificate`, one
transaction per certificate. It prints what each certificate became, or the
reason it was refused, and exits with status 1 when any was refused, 2 when
nothing to verify against is configured.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from healthcode.certificates.errors import InvalidCertificate
from healthcode.certificates.services import (
    CertificateEvidence,
    CertificateTrust,
    certificate_texts,
    import_certificate,
)
from healthcode.errors import ConfigurationError, HealthcodeError

__all__ = ["import_certificate_command"]


def import_certificate_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="The certificate: a QR image (several for a chunked card), a text"
            " file holding HC1: or shc:/ text, or a .smart-health-card file.",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    doc_number: Annotated[
        str,
        typer.Option(
            "--doc-number", help="The visitor's passport number.", show_default=False
        ),
    ],
    country: Annotated[
        str,
        typer.Option(help="The passport's issuing country, ISO alpha-3 (DEU)."),
    ] = "",
    kind: Annotated[
        str, typer.Option(help="Document kind, when the visitor has no passport.")
    ] = "passport",
    signers: Annotated[
        Path | None,
        typer.Option(
            envvar="HEALTHCODE_DCC_SIGNERS",
            help="EU DCC document signer certificates: a PEM bundle or a JSON"
            " array of base64 DER.",
            show_default=False,
        ),
    ] = None,
    issuers: Annotated[
        Path | None,
        typer.Option(
            envvar="HEALTHCODE_SHC_ISSUERS",
            help="SMART Health Card issuers: JSON mapping each issuer URL to its"
            " JWK set.",
            show_default=False,
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(
            envvar="HEALTHCODE_DCC_RULES",
            help="EU DCC business rules to accept certificates by: a JSON array"
            " in the published rule format.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome as JSON.")
    ] = False,
) -> None:
    """Import a visitor's EU DCC or SMART Health Card as vaccination or test records."""
    from healthcode.config import get_settings
    from healthcode.db import open_database, utcnow
    from healthcode.identity.documents import parse_document
    from healthcode.identity.names import mask_name
    from healthcode.identity.services import get_resident
    from healthcode.status.services import current_status

    console = Console()
    now = utcnow()
    if signers is None and issuers is None:
        console.print(
            Text(
                "No document signers (--signers) and no issuer keys (--issuers) are"
                " configured, so no certificate could be verified.",
                style="bold red",
            )
        )
        raise typer.Exit(2)
    try:
        trust = CertificateTrust.from_files(
            signers=signers,
            issuers=issuers,
            rules=rules,
            skew=get_settings().future_skew,
        )
        document = parse_document(kind, doc_number, country, today=now.date())
        texts = certificate_texts(files)
        engine = open_database(must_exist=True)
    except HealthcodeError as exc:
        console.print(Text(f"{exc.code}: {exc}", style="bold red"))
        raise typer.Exit(2 if isinstance(exc, ConfigurationError) else 1) from None

    outcomes: list[dict[str, Any]] = []
    try:
        for number, text in enumerate(texts, start=1):
            try:
                with Session(engine) as session, session.begin():
                    resident = get_resident(session, document)
                    evidence = import_certificate(
                        session, resident, text, now=now, trust=trust
                    )
                    view = current_status(session, resident.id, now)
                    masked = mask_name(resident.name)
                outcomes.append(_accepted(number, evidence, view.colour, masked))
            except InvalidCertificate as exc:
                outcomes.append(
                    {"certificate": number, "refused": exc.code, "reason": str(exc)}
                )
            except HealthcodeError as exc:
                console.print(Text(f"{exc.code}: {exc}", style="bold red"))
                raise typer.Exit(1) from None
    finally:
        engine.dispose()

    if as_json:
        sys.stdout.write(orjson.dumps(outcomes, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        _print(console, outcomes, document.masked())
    raise typer.Exit(1 if any("refused" in outcome for outcome in outcomes) else 0)


def _accepted(
    number: int, evidence: CertificateEvidence, colour: str, masked: str
) -> dict[str, Any]:
    report = evidence.rule_report
    return {
        "certificate": number,
        "department": evidence.department,
        "kind": evidence.kind,
        "issuer": evidence.issuer,
        "expiresAt": evidence.expires_at.isoformat() if evidence.expires_at else None,
        "dateOfBirth": evidence.date_of_birth.shown()
        if evidence.date_of_birth
        else None,
        "holder": masked,
        "alreadyImported": evidence.already_imported,
        "records": [
            {
                "table": record.table,
                "recordId": record.source_id,
                "at": record.at.isoformat(),
                "what": record.description,
                "new": record.new,
            }
            for record in evidence.records
        ],
        "rules": (
            [
                {
                    "rule": o.rule.identifier,
                    "version": o.rule.version_text,
                    "result": o.result,
                }
                for o in report.outcomes
            ]
            if report is not None
            else None
        ),
        "colour": colour,
    }


def _print(console: Console, outcomes: list[dict[str, Any]], document: str) -> None:
    for outcome in outcomes:
        if "refused" in outcome:
            console.print(
                Text(
                    f"certificate {outcome['certificate']} refused"
                    f" ({outcome['refused']}): {outcome['reason']}",
                    style="bold red",
                )
            )
            continue
        head = (
            f"certificate {outcome['certificate']}: {outcome['kind']} from"
            f" {outcome['issuer']} ({outcome['department']}) for {outcome['holder']}"
            f" {document}, date of birth {outcome['dateOfBirth']}"
        )
        if outcome["alreadyImported"]:
            head += "; already imported, nothing new"
        console.print(Text(head))
        table = Table("record", "id", "at", "what", "new")
        for record in outcome["records"]:
            table.add_row(
                record["table"],
                record["recordId"],
                record["at"],
                record["what"],
                "yes" if record["new"] else "no",
            )
        console.print(table)
        if outcome["rules"]:
            console.print(
                Text(
                    "rules: "
                    + ", ".join(f"{r['rule']} {r['result']}" for r in outcome["rules"])
                )
            )
        console.print(Text(f"colour now: {outcome['colour']}"))
