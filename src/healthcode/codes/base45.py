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

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUES = {char: value for value, char in enumerate(ALPHABET)}


def encode(data: bytes) -> str:
    """Return the Base45 text of ``data``."""
    out: list[str] = []
    for start in range(0, len(data) - 1, 2):
        number = data[start] * 256 + data[start + 1]
        number, c = divmod(number, 45)
        e, d = divmod(number, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def decode(text: str) -> bytes:
    """Return the bytes of Base45 ``text``; raise :class:`ValueError` if malformed."""
    if len(text) % 3 == 1:
        raise ValueError("Base45 text cannot end in a single character.")
    try:
        values = [_VALUES[char] for char in text]
    except KeyError:
        raise ValueError(
            "Base45 text holds a character outside its alphabet."
        ) from None
    out = bytearray()
    for start in range(0, len(values), 3):
        group = values[start : start + 3]
        if len(group) == 3:
            number = group[0] + group[1] * 45 + group[2] * 2025
            if number > 0xFFFF:
                raise ValueError("A Base45 group stands for more than two bytes.")
            out += number.to_bytes(2, "big")
        else:
            number = group[0] + group[1] * 45
            if number > 0xFF:
                raise ValueError("The last Base45 group stands for more than a byte.")
            out.append(number)
    return bytes(out)
