"""The venue poster: the venue's signed code, its name, and how to check in.

An A4 page at 150 dots an inch, drawn with Pillow: large enough to scan
from a step away at the door, and written as PNG or one-page PDF. The text
is in Chinese and English together, since the poster serves everyone who
passes. The QR code is black on white: a venue code has no colour.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont

from healthcode.codes import qr
from healthcode.codes.card import CardFont

__all__ = ["POSTER_SIZE", "PosterContent", "poster_pdf", "poster_png", "render_poster"]

#: A4 portrait at 150 dots an inch.
POSTER_SIZE = (1240, 1754)
DPI = 150
_MARGIN = 90
_INK = "#111111"
_MUTED = "#444444"
_QR_TARGET = 860


@dataclass(frozen=True)
class PosterContent:
    """What a poster shows; ``valid_until`` is shown in ``zone``."""

    text: str
    venue_name: str
    address: str
    venue_id: int
    valid_until: datetime
    zone: ZoneInfo


def _face(
    font: CardFont, draw: ImageDraw.ImageDraw, text: str, size: int, width: int
) -> ImageFont.FreeTypeFont:
    face = font.sized(size)
    while size > 18 and draw.textlength(text, font=face) > width:
        size -= 2
        face = font.sized(size)
    return face


def _centred(
    draw: ImageDraw.ImageDraw, text: str, font: CardFont, size: int, y: int, fill: str
) -> int:
    width = POSTER_SIZE[0] - 2 * _MARGIN
    face = _face(font, draw, text, size, width)
    left = _MARGIN + (width - draw.textlength(text, font=face)) / 2
    draw.text((left, y), text, font=face, fill=fill)
    return y + int(face.size * 1.3)


def _symbol(text: str) -> Image.Image:
    symbol = qr.make_symbol(text)
    modules, _ = symbol.symbol_size(border=qr.QUIET_ZONE)
    buffer = io.BytesIO()
    symbol.save(
        buffer,
        kind="png",
        scale=max(4, _QR_TARGET // modules),
        border=qr.QUIET_ZONE,
        dark="#000000",
        light="#ffffff",
    )
    buffer.seek(0)
    with Image.open(buffer) as opened:
        return opened.convert("RGB")


def render_poster(content: PosterContent, font: CardFont) -> Image.Image:
    """Return the poster as an RGB image of :data:`POSTER_SIZE` pixels."""
    image = Image.new("RGB", POSTER_SIZE, "white")
    draw = ImageDraw.Draw(image)
    y = 70
    y = _centred(draw, "场所码 · 扫码登记", font, 84, y, _INK)
    y = _centred(draw, "Venue code · scan to check in", font, 48, y, _MUTED) + 10
    y = _centred(draw, content.venue_name, font, 72, y, _INK)
    y = _centred(draw, content.address, font, 36, y, _MUTED) + 10
    symbol = _symbol(content.text)
    image.paste(symbol, ((POSTER_SIZE[0] - symbol.width) // 2, y))
    y += symbol.height + 20
    y = _centred(draw, "请用健康码扫码登记，离开时可再次扫码", font, 40, y, _INK)
    y = (
        _centred(
            draw,
            "Scan with the health code app as you enter; scan again as you leave.",
            font,
            30,
            y,
            _MUTED,
        )
        + 10
    )
    until = content.valid_until.astimezone(content.zone).strftime("%Y-%m-%d")
    _centred(
        draw,
        f"场所编号 Venue {content.venue_id} · 有效期至 Valid until {until}",
        font,
        30,
        y,
        _MUTED,
    )
    return image


def poster_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


def poster_pdf(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PDF", resolution=float(DPI))
    return buffer.getvalue()
