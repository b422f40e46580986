"""The printable card of a paper code, for people who carry no phone.

A guardian prints the card once and the holder shows it for days: the QR
code, the masked name, the last four characters of the document (so that
the holder and the door can tell two cards of one family apart), the
issuing region and the time the code stops holding, all in large print.
The card carries no colour: the checkpoint reads it from the daily status
list, which the card says in so many words.

The card is drawn with Pillow at 300 dots an inch on an A6 page, and
written as PNG or as a one-page PDF. Chinese text needs a font that has it;
:func:`find_cjk_font` asks fontconfig for one and fails with the name of the
Debian package to install when there is none.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont

from healthcode.codes import qr
from healthcode.codes.errors import CardFontMissing

#: A6 portrait at 300 dots an inch: 105 mm by 148 mm.
CARD_SIZE = (1240, 1748)
DPI = 300
FONT_PACKAGE = "fonts-noto-cjk"

_MARGIN = 80
_QR_TARGET = 900
_INK = "#111111"
_MUTED = "#444444"
_FC_FORMAT = "%{file}\t%{index}\t%{family}\t%{style}\n"


@dataclass(frozen=True)
class CardContent:
    """What a card shows; ``valid_until`` is shown in ``zone``."""

    text: str
    masked_name: str
    document_tail: str
    region_name: str
    valid_until: datetime
    zone: ZoneInfo


@dataclass(frozen=True)
class CardFont:
    """A font file with Chinese glyphs, and the face to use in a collection."""

    path: Path
    index: int = 0

    def sized(self, size: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(str(self.path), size, index=self.index)


def _fc_list() -> str:
    try:
        done = subprocess.run(
            ["fc-list", ":lang=zh", "--format", _FC_FORMAT],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def find_cjk_font(list_fonts: Callable[[], str] = _fc_list) -> CardFont:
    """Return the best installed font for Chinese text, or raise.

    ``list_fonts`` returns fontconfig's listing of fonts that cover Chinese,
    one ``file<TAB>index<TAB>family<TAB>style`` line each; tests hand in
    their own. A sans-serif face for simplified Chinese in a regular weight
    is preferred, since it prints most legibly at a distance.
    """
    candidates: list[tuple[int, str, int]] = []
    for line in list_fonts().splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or not parts[0]:
            continue
        path, index, family, style = parts
        if not Path(path).is_file():
            continue
        score = (
            8 * ("Sans" in family)
            - 4 * ("Mono" in family)
            + 2 * (" SC" in family or "Hans" in family)
            + ("Regular" in style)
        )
        candidates.append((score, path, int(index) if index.isdigit() else 0))
    if not candidates:
        raise CardFontMissing(
            "No font with Chinese characters is installed (fc-list :lang=zh finds"
            f" none), so the card cannot be printed; install the Debian package"
            f" {FONT_PACKAGE}."
        )
    # Ties go to the first file and face in name order, so that the same
    # machine always prints the same card.
    _, path, index = min(candidates, key=lambda c: (-c[0], c[1], c[2]))
    return CardFont(Path(path), index)


def render_card(content: CardContent, font: CardFont) -> Image.Image:
    """Return the card as an RGB image of :data:`CARD_SIZE` pixels."""
    width, height = CARD_SIZE
    image = Image.new("RGB", CARD_SIZE, "white")
    draw = ImageDraw.Draw(image)
    usable = width - 2 * _MARGIN

    y = 60
    y = _centred(draw, "健康码 · 纸质码", font, 76, usable, y, _INK) + 12
    y = _centred(draw, "Health code · paper card", font, 44, usable, y, _MUTED) + 30

    symbol = _qr_image(content.text)
    image.paste(symbol, ((width - symbol.width) // 2, y))
    y += symbol.height + 20

    y = _centred(draw, content.masked_name, font, 112, usable, y, _INK, stroke=2)
    y += 28
    until = content.valid_until.astimezone(content.zone).strftime("%Y-%m-%d %H:%M")
    lines = (
        f"证件尾号 Document ends  {content.document_tail}",
        f"签发地区 Issued by  {content.region_name}",
        f"有效期至 Valid until  {until}",
    )
    for line in lines:
        y = _left(draw, line, font, 54, usable, y, _INK) + 18
    y += 14
    notes = (
        f"颜色以当日状态名单为准 · 时间为 {content.zone.key} 时间",
        f"Colour from the day's status list · times in {content.zone.key}",
    )
    for note in notes:
        y = _left(draw, note, font, 36, usable, y, _MUTED) + 10
    if y > height - 20:
        # The layout is fixed; only a name or region far longer than any
        # real one could push text off the page, and fitting shrinks those.
        raise ValueError("The card's text does not fit on the page.")
    return image


def write_card_png(image: Image.Image, path: Path | str) -> None:
    """Write the card as a PNG that records its print resolution."""
    image.save(str(path), format="PNG", dpi=(DPI, DPI))


def write_card_pdf(image: Image.Image, path: Path | str) -> None:
    """Write the card as a one-page PDF, A6 when printed at its resolution."""
    image.save(str(path), format="PDF", resolution=float(DPI))


def _qr_image(text: str) -> Image.Image:
    symbol = qr.make_symbol(text)
    modules, _ = symbol.symbol_size(border=qr.QUIET_ZONE)
    scale = max(4, _QR_TARGET // modules)
    buffer = io.BytesIO()
    symbol.save(
        buffer,
        kind="png",
        scale=scale,
        border=qr.QUIET_ZONE,
        dark="#000000",
        light="#ffffff",
    )
    buffer.seek(0)
    with Image.open(buffer) as opened:
        return opened.convert("RGB")


def _fitted(
    draw: ImageDraw.ImageDraw, text: str, font: CardFont, size: int, width: int
) -> ImageFont.FreeTypeFont:
    # Long region names (an autonomous prefecture's full name runs to a
    # dozen characters and more) shrink rather than run off the card.
    face = font.sized(size)
    while size > 20 and draw.textlength(text, font=face) > width:
        size -= 2
        face = font.sized(size)
    return face


def _centred(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: CardFont,
    size: int,
    width: int,
    y: int,
    fill: str,
    stroke: int = 0,
) -> int:
    face = _fitted(draw, text, font, size, width)
    left = _MARGIN + (width - draw.textlength(text, font=face)) / 2
    draw.text(
        (left, y), text, font=face, fill=fill, stroke_width=stroke, stroke_fill=fill
    )
    return y + _line_height(face)


def _left(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: CardFont,
    size: int,
    width: int,
    y: int,
    fill: str,
) -> int:
    face = _fitted(draw, text, font, size, width)
    draw.text((_MARGIN, y), text, font=face, fill=fill)
    return y + _line_height(face)


def _line_height(face: ImageFont.FreeTypeFont) -> int:
    # The CJK fonts' own metrics include a generous line gap; a quarter of
    # the size between lines is enough for large print and keeps to A6.
    return int(face.size * 1.25)
