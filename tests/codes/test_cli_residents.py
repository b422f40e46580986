"""The code, card, status-list and verify commands, end to end from images."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from PIL import Image
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from healthcode.codes import qr
from healthcode.codes.card import find_cjk_font
from healthcode.codes.cli import (
    card_command,
    code_command,
    status_list_command,
    verify_command,
)
from healthcode.codes.errors import CardFontMissing
from healthcode.codes.format import Colour, Purpose
from healthcode.codes.keys import KeyRole, KeyStore
from healthcode.codes.services import local_verifier
from healthcode.codes.trust import sign_trust_list
from healthcode.config import get_settings
from healthcode.feeds.services import import_feed
from healthcode.identity.documents import parse_document
from healthcode.identity.services import register_resident
from healthcode.status.services import recolor_residents

GREEN_CARD = "610113196702282566"
YELLOW_CARD = "610112198005121233"
SHANGHAI_FORMAT = "%Y-%m-%dT%H:%M:%S"

app = typer.Typer()
app.command("code")(code_command)
app.command("card")(card_command)
app.command("status-list")(status_list_command)
app.command("verify")(verify_command)
runner = CliRunner()


@pytest.fixture
def city(engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A green and a yellow Xi'an resident; returns the key store directory."""
    monkeypatch.setenv(
        "HEALTHCODE_DATABASE_URL", engine.url.render_as_string(hide_password=False)
    )
    keys = tmp_path / "keys"
    monkeypatch.setenv("HEALTHCODE_KEY_DIR", str(keys))
    monkeypatch.delenv("HEALTHCODE_REGION", raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    # The commands read the clock, so the records are dated just before now.
    now = datetime.now(UTC)
    earlier = (now - timedelta(hours=1)).astimezone(settings.tz)
    feeds = (
        (
            "identities",
            "record_id,doc_kind,doc_number,doc_country,name,region_code,outcome,"
            "confirmed_at",
            [
                f"PS-1,cn-id,{GREEN_CARD},,张三丰,610113,confirmed,"
                f"{earlier:{SHANGHAI_FORMAT}}",
                f"PS-2,cn-id,{YELLOW_CARD},,李四,610112,confirmed,"
                f"{earlier:{SHANGHAI_FORMAT}}",
            ],
        ),
        (
            "declarations",
            "record_id,doc_number,declared_at,fever,respiratory",
            [f"D-1,{YELLOW_CARD},{earlier:{SHANGHAI_FORMAT}},true,false"],
        ),
    )
    for kind, header, lines in feeds:
        path = tmp_path / f"{kind}.csv"
        path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        report = import_feed(
            engine,
            kind,
            path,
            now=now,
            zone=settings.tz,
            future_skew=timedelta(minutes=5),
            recolor=recolor_residents,
        )
        assert report.committed, report.errors
    yield keys
    get_settings.cache_clear()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _code_text(output: str) -> str:
    [text] = [line for line in output.splitlines() if line.startswith("HCZ1:")]
    return text


def _later(minutes: float) -> str:
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def test_a_screen_code_is_printed_and_drawn_in_its_colour(
    city: Path, tmp_path: Path
) -> None:
    png, svg = tmp_path / "code.png", tmp_path / "code.svg"

    result = invoke("code", YELLOW_CARD, "--png", str(png), "--svg", str(svg))

    assert result.exit_code == 0, result.output
    assert "screen code  黄码 yellow  李*" in result.output
    assert "issued by 610100 陕西省西安市" in result.output
    assert "QR version 7, 45 x 45 modules" in result.output
    text = _code_text(result.output)
    assert qr.read_texts(png) == [text]
    verified = local_verifier(KeyStore(city)).verify(text, datetime.now(UTC))
    assert verified.colour is Colour.YELLOW
    with Image.open(png) as image:
        colours = {colour for _, colour in image.convert("RGB").getcolors()}
    assert colours == {(0x8A, 0x61, 0x00), (0xFF, 0xFF, 0xFF)}
    assert qr.MODULE_COLOURS[Colour.YELLOW] in svg.read_text("utf-8")
    # The quiet zone: the outermost four modules (eight pixels each) are light.
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        border = [rgb.getpixel((x, y)) for x in range(rgb.width) for y in range(32)]
    assert set(border) == {(0xFF, 0xFF, 0xFF)}


def test_the_png_verifies_offline_from_its_pixels(city: Path, tmp_path: Path) -> None:
    png = tmp_path / "code.png"
    invoke("code", GREEN_CARD, "--png", str(png))

    by_option = invoke("verify", "--image", str(png))
    by_path = invoke("verify", str(png))

    assert by_option.exit_code == 0, by_option.output
    assert "accepted  绿码 green  张**  screen code of region 610100" in (
        by_option.output
    )
    assert "valid until" in by_option.output
    assert by_path.output == by_option.output


def test_a_code_is_refused_when_expired_or_altered(city: Path) -> None:
    text = _code_text(invoke("code", GREEN_CARD).output)
    altered = text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:]

    expired = invoke("verify", text, "--now", _later(10))
    broken = invoke("verify", altered)

    assert expired.exit_code == 1
    assert expired.output.startswith("refused [expired_code]  The code expired at")
    assert broken.exit_code == 1
    assert (
        broken.output
        == "refused [invalid_code]  The code is not a valid health code.\n"
    )


def test_the_verdict_as_json(city: Path) -> None:
    text = _code_text(invoke("code", YELLOW_CARD).output)

    result = invoke("verify", text, "--json")

    verdict = json.loads(result.output)
    assert verdict["accepted"] is True
    assert (verdict["code"], verdict["colour"], verdict["masked_name"]) == (
        "valid",
        "yellow",
        "李*",
    )
    assert (verdict["purpose"], verdict["region"]) == ("screen", "610100")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", verdict["valid_until"])


def test_a_paper_code_takes_its_colour_from_the_status_list(
    city: Path, tmp_path: Path
) -> None:
    png, status = tmp_path / "paper.png", tmp_path / "610100.status"
    issued = invoke("code", YELLOW_CARD, "--paper", "--png", str(png))

    signed = invoke("status-list", "--region", "610100", "--out", str(status))
    with_list = invoke("verify", "--image", str(png), "--status-list", str(status))
    without = invoke("verify", "--image", str(png))

    assert issued.exit_code == 0, issued.output
    assert "paper code (colour read from the day's status list)  李*" in issued.output
    assert signed.exit_code == 0, signed.output
    assert "1 not green of 3 indices" in signed.output
    assert with_list.exit_code == 0, with_list.output
    assert "accepted  黄码 yellow  李*  paper code of region 610100" in with_list.output
    assert "colour from the status list of" in with_list.output
    assert without.exit_code == 1
    assert without.output.startswith("refused [status_list_not_held]")
    # Paper codes are drawn in black: they carry no colour.
    with Image.open(png) as image:
        colours = {colour for _, colour in image.convert("RGB").getcolors()}
    assert colours == {(0, 0, 0), (0xFF, 0xFF, 0xFF)}


def test_another_region_s_code_verifies_through_a_trust_list(
    city: Path, tmp_path: Path
) -> None:
    png = tmp_path / "code.png"
    invoke("code", GREEN_CARD, "--png", str(png))
    now = datetime.now(UTC).replace(microsecond=0)
    issuing = KeyStore(city)
    issuing.generate("100000", now, KeyRole.TRUST_LIST)
    signer = issuing.signing_key("100000", now, KeyRole.TRUST_LIST)
    trust_list = tmp_path / "trust-list.json"
    trust_list.write_bytes(
        sign_trust_list(
            [r for r in issuing.records() if r.role is KeyRole.CODE], signer, now
        )
    )
    anchors = tmp_path / "anchors.json"
    anchors.write_text(json.dumps([signer.record.to_json()]), "utf-8")
    elsewhere = tmp_path / "checkpoint-keys"

    unknown = invoke("verify", "--image", str(png), "--dir", str(elsewhere))
    trusted = invoke(
        "verify",
        "--image",
        str(png),
        "--dir",
        str(elsewhere),
        "--trust-list",
        str(trust_list),
        "--anchors",
        str(anchors),
    )
    untrusted = invoke(
        "verify",
        "--image",
        str(png),
        "--dir",
        str(elsewhere),
        "--trust-list",
        str(trust_list),
    )

    assert unknown.exit_code == 1
    assert unknown.output.startswith("refused [unknown_key]")
    assert trusted.exit_code == 0, trusted.output
    assert "accepted  绿码 green" in trusted.output
    assert untrusted.exit_code == 2
    assert "error [invalid_trust_list]" in untrusted.output


def test_an_image_without_a_code_is_refused(tmp_path: Path, city: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "white").save(blank)

    result = invoke("verify", "--image", str(blank))
    missing = invoke("verify", str(tmp_path / "missing.png"))

    assert result.exit_code == 1
    assert "refused [no_code_in_image]" in result.output
    assert "holds no QR code" in result.output
    assert missing.exit_code == 2
    assert "there is no image file at" in missing.output


def test_an_unknown_document_is_an_error_that_does_not_repeat_it(city: Path) -> None:
    result = invoke("code", "610113198511110023")

    assert result.exit_code == 1
    assert "error [unknown_resident]" in result.output
    assert "610113198511110023" not in result.output


def test_a_visitor_without_a_region_needs_one_configured(
    city: Path, engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        register_resident(
            session,
            parse_document("passport", "C01X00T47", "DEU", today=now.date()),
            "Anna Müller",
            now - timedelta(minutes=5),
        )

    refused = invoke("code", "C01X00T47", "--kind", "passport", "--country", "DEU")
    monkeypatch.setenv("HEALTHCODE_REGION", "610100")
    issued = invoke("code", "C01X00T47", "--kind", "passport", "--country", "DEU")

    assert refused.exit_code == 1
    assert "error [no_issuing_region]" in refused.output
    assert issued.exit_code == 0, issued.output
    assert "screen code  灰码 grey  A*** M*****" in issued.output


def test_an_instance_issues_for_its_own_region_only(
    city: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEALTHCODE_REGION", "610100")
    get_settings.cache_clear()

    other = invoke("code", GREEN_CARD, "--region", "320100")
    own = invoke("code", GREEN_CARD, "--region", "610100")

    assert other.exit_code == 1
    assert "error [region_not_served]" in other.output
    assert "region 610100 ($HEALTHCODE_REGION)" in other.output
    assert "none for --region 320100" in other.output
    assert own.exit_code == 0, own.output
    assert "issued by 610100" in own.output
    assert {record.region for record in KeyStore(city).records()} == {"610100"}


def test_the_card_is_a_png_that_verifies_and_a_one_page_pdf(
    city: Path, tmp_path: Path
) -> None:
    try:
        find_cjk_font()
    except CardFontMissing as exc:
        pytest.skip(f"{exc} The card test needs it.")
    png, pdf = tmp_path / "card.png", tmp_path / "card.pdf"

    result = invoke("card", GREEN_CARD, "--png", str(png), "--pdf", str(pdf))

    assert result.exit_code == 0, result.output
    [text] = qr.read_texts(png)
    assert text == _code_text(result.output)
    code = local_verifier(KeyStore(city)).verify(text, datetime.now(UTC))
    assert code.purpose is Purpose.PAPER
    assert code.masked_name == "张**"
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", data)) == 1


def test_a_card_needs_somewhere_to_go(city: Path) -> None:
    result = invoke("card", GREEN_CARD)

    assert result.exit_code == 2
    assert "give --png FILE, --pdf FILE or both" in result.output
