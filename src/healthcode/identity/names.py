"""People's names: one stored form, a masked form for codes, a search key.

Names are any Unicode text. Lengths are counted in code points, never in
UTF-16 units or bytes, so a surname outside the Basic Multilingual Plane
(such as U+20164 𠅤) counts as one character like any other. The middle dot
that separates the parts of Uyghur, Tibetan and transliterated foreign names
(阿依古丽·买买提) is typed with many look-alike characters; all of them are
stored as U+00B7 so that one name has one form. A full stop between two Han
characters is such a look-alike too, while one in a Latin name ("J. R.
Smith") stays a full stop. Latin letters typed in full width (Ａｎｎａ), as
input methods in full-width mode do, are stored as ASCII, as in document
numbers.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from healthcode.identity.errors import InvalidName

__all__ = [
    "MAX_NAME_LENGTH",
    "mask_name",
    "name_year_key",
    "normalize_name",
    "search_key",
]

#: The longest name we store, in code points.
MAX_NAME_LENGTH = 64

MIDDLE_DOT = "\u00b7"

# Characters that people and input methods use where a name needs a middle
# dot. U+0387 already becomes U+00B7 under NFC; it is listed so that the
# table does not depend on that.
_DOT_LOOKALIKES = {
    "\u0387": MIDDLE_DOT,  # GREEK ANO TELEIA
    "\u16eb": MIDDLE_DOT,  # RUNIC SINGLE PUNCTUATION
    "\u2022": MIDDLE_DOT,  # BULLET
    "\u2027": MIDDLE_DOT,  # HYPHENATION POINT
    "\u2219": MIDDLE_DOT,  # BULLET OPERATOR
    "\u22c5": MIDDLE_DOT,  # DOT OPERATOR
    "\u2e31": MIDDLE_DOT,  # WORD SEPARATOR MIDDLE DOT
    "\u2e33": MIDDLE_DOT,  # RAISED DOT
    "\u30fb": MIDDLE_DOT,  # KATAKANA MIDDLE DOT
    "\ua78f": MIDDLE_DOT,  # LATIN LETTER SINOLOGICAL DOT
    "\uff0e": MIDDLE_DOT,  # FULLWIDTH FULL STOP
    "\uff65": MIDDLE_DOT,  # HALFWIDTH KATAKANA MIDDLE DOT
}
_DOT_TABLE = str.maketrans(_DOT_LOOKALIKES)
_SPACED_DOT = re.compile(r" ?\u00b7 ?")
# Full-width forms of the printable ASCII characters, U+FF01 to U+FF5E.
_FULL_WIDTH_TABLE = {point: point - 0xFEE0 for point in range(0xFF01, 0xFF5F)}
_LINE_SPACE = frozenset("\t\n\v\f\r\x85")

# Scripts whose names are written without spaces between the parts and are
# masked after their first character: Han ideographs (including every
# extension in planes 2 and 3), kana and Hangul syllables.
_EAST_ASIAN_RANGES = (
    (0x3005, 0x3007),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)


# Full stops (ASCII, small and ideographic) that stand where a middle dot
# belongs: between two characters of a script written without spaces.
_EAST_ASIAN_CLASS = "".join(
    f"{chr(low)}-{chr(high)}" for low, high in _EAST_ASIAN_RANGES
)
_STOP_AS_DOT = re.compile(
    f"(?<=[{_EAST_ASIAN_CLASS}]) ?[.\ufe52\u3002] ?(?=[{_EAST_ASIAN_CLASS}])"
)


def normalize_name(name: str) -> str:
    """Return the stored form of a name, or raise :class:`InvalidName`.

    The stored form is NFC, trimmed, with every run of whitespace inside
    made one space, full-width ASCII made ASCII, and every middle-dot
    look-alike (a full stop between Han characters included) made U+00B7
    with no space on either side. Empty names, names of more than
    :data:`MAX_NAME_LENGTH` code points and names holding control or
    formatting characters or unpaired surrogates are refused. The message
    never repeats the name.
    """
    if not isinstance(name, str):
        raise InvalidName("The name must be given as text.")
    # A lone surrogate can reach us from bytes decoded with
    # "surrogateescape"; it is not a character and cannot be stored as UTF-8.
    if any("\ud800" <= char <= "\udfff" for char in name):
        raise InvalidName("The name holds an unpaired surrogate.")

    # Control characters break display and storage; formatting characters
    # (zero-width spaces, bidirectional overrides, byte-order marks) make two
    # names that look the same compare different, or one look like another.
    # Tabs and line breaks pasted with a name are only whitespace.
    for char in name:
        category = unicodedata.category(char)
        if category == "Cf" or (category == "Cc" and char not in _LINE_SPACE):
            raise InvalidName("The name holds a control or formatting character.")

    text = name.translate(_DOT_TABLE).translate(_FULL_WIDTH_TABLE)
    text = " ".join(text.split())
    text = _STOP_AS_DOT.sub(MIDDLE_DOT, text)
    text = _SPACED_DOT.sub(MIDDLE_DOT, text)
    text = unicodedata.normalize("NFC", text)

    if not text:
        raise InvalidName("The name is empty.")
    if not text.replace(MIDDLE_DOT, "").replace(" ", ""):
        raise InvalidName("The name holds no letters, only dots.")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidName(f"The name is longer than {MAX_NAME_LENGTH} characters.")
    return text


def mask_name(name: str) -> str:
    """Return the name with all but its first letters replaced by ``*``.

    One ``*`` stands for one code point, and spaces and middle dots stay in
    place, so the mask has the length of the stored name. A name in Han,
    kana or Hangul, or one without spaces, keeps only its first character
    (阿依古丽·买买提 gives 阿***·***). A name in words, such as a Latin
    transliteration, keeps the first letter of each word (ZHANG San gives
    Z**** S**). A one-character name or word is hidden entirely, so that no
    part of a name ever shows whole.
    """
    text = normalize_name(name)
    if " " in text and not any(_is_east_asian(char) for char in text):
        return " ".join(_mask_part(word) for word in text.split(" "))
    return _mask_part(text)


def search_key(name: str) -> str:
    """Return the form a name is searched by.

    The stored form, case-folded (and again NFC, since case folding can
    decompose), without spaces or middle dots: "Zhang San", "ZHANG SAN" and
    "Zhang·San" share a key.
    """
    text = normalize_name(name).casefold()
    text = unicodedata.normalize("NFC", text)
    return text.replace(" ", "").replace(MIDDLE_DOT, "")


def name_year_key(name: str, born: date | None) -> str | None:
    """Return the partial key of a name: its first letter and the birth year.

    The first letter of the search key is, for a Han name, the first
    character of the surname (张 of 张伟), and for a name written surname
    first in Latin letters (ZHANG Wei) its initial. With the birth year it
    narrows a search to the people born that year whose name begins so,
    whose names are then opened and compared in full. None without a birth
    date: such a resident is found by their full name alone.
    """
    if born is None:
        return None
    return f"{search_key(name)[0]}:{born.year:04d}"


def _mask_part(part: str) -> str:
    if len(part) == 1:
        return _mask_char(part)
    return part[0] + "".join(_mask_char(char) for char in part[1:])


def _mask_char(char: str) -> str:
    return char if char in (MIDDLE_DOT, " ") else "*"


def _is_east_asian(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in _EAST_ASIAN_RANGES)
