"""Base45 (RFC 9285): bytes as text in the QR alphanumeric character set.

Two bytes become three characters and a last odd byte two, so the text is
about 1.5 times the bytes; QR alphanumeric mode stores each character in
5.5 bits, which makes Base45 the densest text form a QR code can carry.

Decoding is strict: every character must be in the alphabet (the space is
one of them and is never trimmed), the length must not leave a single
character over, and no group may stand for a value too large for its bytes.
With these checks every byte string has exactly one text form.
"""

from __future__ import annotations

import functools
import struct

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

# Codes are encoded and decoded at every door and every issue, so both
# directions work on whole groups rather than character by character:
# encoding looks each two-byte group up in a table of all 65,536 groups
# (about 3.5 MB, built on first use), and decoding maps the text to digit
# values in a single bytes.translate.
_ALPHABET_BYTES = ALPHABET.encode("ascii")
_TO_DIGITS = bytes.maketrans(_ALPHABET_BYTES, bytes(range(45)))


@functools.cache
def _groups() -> list[str]:
    return [
        ALPHABET[v % 45] + ALPHABET[v // 45 % 45] + ALPHABET[v // 2025]
        for v in range(0x10000)
    ]


def encode(data: bytes) -> str:
    """Return the Base45 text of ``data``."""
    groups = _groups()
    out = [groups[word] for word in struct.unpack_from(f">{len(data) // 2}H", data)]
    if len(data) % 2:
        # A last odd byte is below 256 = 5 * 45 + 31, so its two characters
        # are the first two of the group of the same value.
        out.append(groups[data[-1]][:2])
    return "".join(out)


def decode(text: str) -> bytes:
    """Return the bytes of Base45 ``text``; raise :class:`ValueError` if malformed."""
    if len(text) % 3 == 1:
        raise ValueError("Base45 text cannot end in a single character.")
    if not text.isascii():
        raise ValueError("Base45 text holds a character outside its alphabet.")
    raw = text.encode("ascii")
    if raw.translate(None, _ALPHABET_BYTES):
        raise ValueError("Base45 text holds a character outside its alphabet.")
    digits = raw.translate(_TO_DIGITS)
    whole = len(digits) - len(digits) % 3
    words = [
        c + d * 45 + e * 2025
        for c, d, e in zip(
            digits[0:whole:3], digits[1:whole:3], digits[2:whole:3], strict=True
        )
    ]
    if words and max(words) > 0xFFFF:
        raise ValueError("A Base45 group stands for more than two bytes.")
    out = struct.pack(f">{len(words)}H", *words)
    if whole < len(digits):
        last = digits[-2] + digits[-1] * 45
        if last > 0xFF:
            raise ValueError("The last Base45 group stands for more than a byte.")
        out += bytes((last,))
    return out
