"""The paper-code card: its font, its image read back, its one-page PDF."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from healthcode.codes import qr
from healthcode.codes.card import (
    CARD_SIZE,
    CardContent,
    CardFont,
    find_cjk_font,
    render_card,
    write_card_pdf,
    write_card_png,
)
from healthcode.codes.errors import CardFontMissing
from healthcode.codes.format import Issuer, Purpose
from healthcode.codes.trust import Verifier

from .support import NOW

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def font() -> CardFont:
    try:
        return find_cjk_font()
    except CardFontMissing as exc:
        pytest.skip(f"{exc} The card tests need it.")


def _content(text: str, **changes: object) -> CardContent:
    fields: dict[str, object] = {
        "text": text,
        "masked_name": "张**",
        "document_tail": "123X",
        "region_name": "上海市",
        "valid_until": NOW + timedelta(days=14),
        "zone": SHANGHAI,
    }
    fields.update(changes)
    return CardContent(**fields)  # type: ignore[arg-type]


def test_the_card_png_reads_back_as_a_valid_paper_code(
    tmp_path: Path, font: CardFont, issuer: Issuer, verifier: Verifier
) -> None:
    text = issuer.paper_code(4200001, "张**", 4200001, NOW)
    path = tmp_path / "card.png"

    write_card_png(render_card(_content(text), font), path)

    [read] = qr.read_texts(path)
    assert read == text
    code = verifier.verify(read, NOW + timedelta(days=1))
    assert code.purpose is Purpose.PAPER
    assert code.content.status_index == 4200001
    with Image.open(path) as image:
        assert image.size == CARD_SIZE
        assert [round(d) for d in image.info["dpi"]] == [300, 300]


def test_the_card_pdf_is_one_page(
    tmp_path: Path, font: CardFont, issuer: Issuer
) -> None:
    text = issuer.paper_code(4200001, "张**", 4200001, NOW)
    path = tmp_path / "card.pdf"

    write_card_pdf(render_card(_content(text), font), path)

    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", data)) == 1
    assert re.search(rb"/Count\s+1\b", data)


def test_long_names_and_regions_shrink_to_fit_and_the_code_still_reads(
    tmp_path: Path, font: CardFont, issuer: Issuer
) -> None:
    text = issuer.paper_code(7, "阿***·***", 7, NOW)
    content = _content(
        text,
        masked_name="阿" + "*" * 30 + "·" + "*" * 30,
        region_name="新疆维吾尔自治区伊犁哈萨克自治州伊宁市伊犁哈萨克自治州",
    )
    path = tmp_path / "long.png"

    write_card_png(render_card(content, font), path)

    assert qr.read_texts(path) == [text]


def test_without_a_chinese_font_the_error_names_the_package_to_install() -> None:
    with pytest.raises(CardFontMissing) as raised:
        find_cjk_font(lambda: "")

    assert "fonts-noto-cjk" in str(raised.value)
    assert raised.value.code == "cjk_font_missing"


def test_a_sans_face_for_simplified_chinese_is_preferred(tmp_path: Path) -> None:
    for name in ("sans.ttc", "serif.ttc"):
        (tmp_path / name).write_bytes(b"")
    sans, serif = tmp_path / "sans.ttc", tmp_path / "serif.ttc"
    listing = "\n".join(
        [
            f"{serif}\t2\tNoto Serif CJK SC\tRegular",
            f"{sans}\t7\tNoto Sans Mono CJK SC\tRegular",
            f"{sans}\t0\tNoto Sans CJK JP\tRegular",
            f"{sans}\t2\tNoto Sans CJK SC\tRegular",
            f"{tmp_path / 'gone.ttc'}\t2\tNoto Sans CJK SC\tBold",
            "a line that is not a font",
        ]
    )

    chosen = find_cjk_font(lambda: listing)

    assert chosen == CardFont(sans, 2)
