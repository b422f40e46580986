"""Finding mainland identity numbers in text that should hold none.

Log lines, error messages and exports are searched with
:func:`find_identity_numbers`. A hit is an 18-character run that is a whole
mainland identity number: a province-level region prefix, a real birth date
and the right ISO 7064 MOD 11-2 check character. Requiring all three keeps
timestamps, record ids and hex digests out: a random run of 18 digits passes
the check character alone one time in eleven, but almost never all three.
"""

from __future__ import annotations

import re
from datetime import date

from healthcode.identity.documents import mod11_2_check

__all__ = ["find_identity_numbers", "looks_like_identity_number", "mask_number"]

# The first two digits of GB/T 2260 codes in use: provinces, autonomous
# regions and municipalities, then Taiwan, Hong Kong and Macao (whose
# residence permits carry 81, 82 and 83).
_PROVINCES = frozenset(
    {
        *("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33"),
        *("34", "35", "36", "37", "41", "42", "43", "44", "45", "46", "50"),
        *("51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81"),
        *("82", "83"),
    }
)
# A run bounded by anything but letters and digits, so that a run of digits
# inside a longer number or a hex digest is not taken for a card number.
_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])[1-8][0-9]{16}[0-9Xx](?![0-9A-Za-z])")
_EARLIEST_YEAR = 1890
_LATEST_YEAR = 2100


def looks_like_identity_number(text: str) -> bool:
    """True when ``text`` is, character for character, a mainland identity number."""
    if len(text) != 18 or not _CANDIDATE.fullmatch(text):
        return False
    if text[:2] not in _PROVINCES:
        return False
    year, month, day = int(text[6:10]), int(text[10:12]), int(text[12:14])
    if not _EARLIEST_YEAR <= year <= _LATEST_YEAR:
        return False
    try:
        date(year, month, day)
    except ValueError:
        return False
    return mod11_2_check(text[:17]) == text[17].upper()


def find_identity_numbers(text: str) -> list[str]:
    """Every whole mainland identity number in ``text``, in order of appearance."""
    return [
        match.group(0)
        for match in _CANDIDATE.finditer(text)
        if looks_like_identity_number(match.group(0))
    ]


def mask_number(number: str) -> str:
    """The number with all but its first and last two characters hidden.

    A report of a leak shows this form, so that the report does not leak
    the number a second time.
    """
    if len(number) <= 4:
        return "*" * len(number)
    return number[:2] + "*" * (len(number) - 4) + number[-2:]
