"""``healthcode import-certificate``: outcomes, refusals, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from healthcode.certificates.cli import import_certificate_command
from healthcode.codes import qr
from healthcode.config import get_settings
from healthcode.db import utcnow
from healthcode.identity.documents import parse_document
from healthcode.identity.services import register_resident

from .support import issue_dcc, make_signer, vaccination_payload

SIGNER = make_signer(serial=21)


@pytest.fixture
def invoke(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., Result]]:
    """Run the command against the test's database, with one visitor in it."""
    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    get_settings.cache_clear()
    signers = tmp_path / "signers.pem"
    signers.write_bytes(SIGNER.pem())
    monkeypatch.setenv("HEALTHCODE_DCC_SIGNERS", str(signers))
    now = utcnow()
    with Session(engine) as session, session.begin():
        document = parse_document("passport", "C01X00T47", "DEU", today=now.date())
        register_resident(session, document, "Gabriele Musterfrau-Gößinger", now)

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """The command line, as the package registers it."""

    app.command("import-certificate")(import_certificate_command)
    runner = CliRunner()

    def run(*arguments: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(
            app,
            ["import-certificate", *arguments],
            env={"COLUMNS": "200", **(env or {})},
        )

    yield run
    get_settings.cache_clear()


def json_of(result: Result) -> list[dict]:
    # Log lines go to standard output when nothing configured logging, as
    # under the test runner; the JSON document starts at its own line.
    lines = result.output.splitlines()
    return json.loads("\n".join(lines[lines.index("[") :]))


def certificate_file(tmp_path: Path, name: str = "dcc.txt", **changes) -> Path:
    now = utcnow()
    text = issue_dcc(
        vaccination_payload(**changes),
        SIGNER,
        issued_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=30),
    )
    path = tmp_path / name
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_a_certificate_is_imported(invoke, tmp_path: Path) -> None:
    path = certificate_file(tmp_path)

    result = invoke(str(path), "--doc-number", "C01X00T47", "--country", "DEU")

    assert result.exit_code == 0, result.output
    assert (
        "vaccination from AT (eu-dcc) for G******* M******************" in result.output
    )
    assert "URN:UVCI:01:AT:10807843F94AEE0EE5093FBC254BD813#B" in result.output
    assert "Gabriele" not in result.output
    assert "C01X00T47" not in result.output


def test_json_output_and_a_second_import(invoke, tmp_path: Path) -> None:
    image = tmp_path / "dcc.png"
    qr.write_png(certificate_file(tmp_path).read_text().rstrip("\n"), image)
    arguments = (str(image), "--doc-number", "C01X00T47", "--country", "DEU", "--json")

    first = invoke(*arguments)
    second = invoke(*arguments)

    assert first.exit_code == second.exit_code == 0, first.output
    (outcome,) = json_of(first)
    assert outcome["records"][0]["new"] is True
    assert outcome["dateOfBirth"] == "1998-02-26"
    assert json_of(second)[0]["alreadyImported"] is True


def test_another_persons_certificate_exits_1_with_the_reason(invoke, tmp_path) -> None:
    path = certificate_file(
        tmp_path, family="Rogaliński-Król", family_std="ROGALINSKI<KROL"
    )

    result = invoke(str(path), "--doc-number", "C01X00T47", "--country", "DEU")

    assert result.exit_code == 1
    assert "refused (holder_mismatch)" in result.output
    assert "Rogali" not in result.output


def test_an_unknown_visitor(invoke, tmp_path: Path) -> None:
    path = certificate_file(tmp_path)

    result = invoke(str(path), "--doc-number", "C01X00T99", "--country", "DEU")

    assert result.exit_code == 1
    assert "unknown_resident" in result.output


def test_nothing_to_verify_against_exits_2(invoke, tmp_path: Path) -> None:
    path = certificate_file(tmp_path)

    result = invoke(
        str(path),
        "--doc-number",
        "C01X00T47",
        "--country",
        "DEU",
        env={"HEALTHCODE_DCC_SIGNERS": ""},
    )

    assert result.exit_code == 2
    assert "No document signers" in result.output


def test_a_broken_signer_file_exits_2_naming_it(invoke, tmp_path: Path) -> None:
    path = certificate_file(tmp_path)
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")

    result = invoke(
        str(path),
        "--doc-number",
        "C01X00T47",
        "--country",
        "DEU",
        "--signers",
        str(broken),
    )

    assert result.exit_code == 2
    assert "broken.pem" in result.output
