"""QR symbols of codes, made with segno and read back from pixels with zxing-cpp.

Every code is made at error-correction level M with no boosting, so that
the version reported for a code is the one its length needs and the sizes
we compare are like for like. A code's text is all in the QR alphanumeric
set, so segno stores it in alphanumeric mode, 5.5 bits a character.
"""

from __future__ import annotations

from pathlib import Path

import segno
import zxingcpp
from PIL import Image

from healthcode.codes.format import Colour

ERROR_LEVEL = "m"
QUIET_ZONE = 4

# Dark enough on white for a cheap scanner's binariser: each has a contrast
# of at least 4.5 to 1 against white, so yellow is a dark amber, not the
# bright yellow of the app's badge.
MODULE_COLOURS = {
    Colour.GREEN: "#0b6e2e",
    Colour.YELLOW: "#8a6100",
    Colour.RED: "#b3111b",
    Colour.GREY: "#555555",
}


def make_symbol(text: str) -> segno.QRCode:
    """Return the QR symbol of ``text`` at level M, never boosted."""
    return segno.make_qr(text, error=ERROR_LEVEL, boost_error=False)


def symbol_size(text: str) -> tuple[int, int]:
    """Return the QR version of ``text`` and its width in modules, quiet zone apart."""
    symbol = make_symbol(text)
    width, _ = symbol.symbol_size(border=0)
    return int(symbol.version), width


def write_png(
    text: str, path: Path | str, colour: Colour | None = None, scale: int = 8
) -> None:
    """Write ``text`` as a PNG QR code, its dark modules in ``colour``."""
    dark = MODULE_COLOURS[colour] if colour is not None else "#000000"
    make_symbol(text).save(
        str(path),
        kind="png",
        scale=scale,
        border=QUIET_ZONE,
        dark=dark,
        light="#ffffff",
    )


def write_svg(
    text: str, path: Path | str, colour: Colour | None = None, scale: int = 8
) -> None:
    """Write ``text`` as an SVG QR code, its dark modules in ``colour``."""
    dark = MODULE_COLOURS[colour] if colour is not None else "#000000"
    make_symbol(text).save(
        str(path),
        kind="svg",
        scale=scale,
        border=QUIET_ZONE,
        dark=dark,
        light="#ffffff",
    )


def read_texts(image: Image.Image | Path | str) -> list[str]:
    """Return the text of every QR code found in ``image``, as decoded from pixels.

    The text comes back exactly as the symbol holds it (zxing-cpp's plain
    text mode), so that nothing on the way trims or rewrites a character.
    """
    if not isinstance(image, Image.Image):
        with Image.open(image) as opened:
            image = opened.convert("RGB")
    barcodes = zxingcpp.read_barcodes(
        image,
        formats=zxingcpp.BarcodeFormat.QRCode,
        text_mode=zxingcpp.TextMode.Plain,
    )
    return [barcode.text for barcode in barcodes]
