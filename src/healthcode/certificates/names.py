"""The holder a certificate names, and whether that is the visitor before us.

A foreign certificate names its holder twice: as printed (``fn``, ``gn``:
"Musterfrau-Gößinger", "Gabriele") and in the standardised form of ICAO Doc
9303, the form of a passport's machine-readable zone (``fnt``, ``gnt``:
"MUSTERFRAU<GOESSINGER", "GABRIELE"). The visitor registered with the name
in their passport, typed in any script and in either order. Matching
therefore works on standardised forms:

* the registered name is transliterated letter by letter the way ICAO 9303
  does it (Ä as AE, ß as SS, Cyrillic Ж as ZH), with the other forms real
  documents use allowed as alternatives (Ä as A, Ю as YU), and anything else
  through ``anyascii`` (Han characters become pinyin, Greek letters Latin);
* spaces, hyphens, apostrophes and ``<`` fillers are ignored, since issuers
  disagree on them (O'Brien is OBRIEN in one country and O<BRIEN in
  another);
* the certificate's surname and given names may come in either order.

A date of birth on a certificate may be partial (``1978`` or ``1978-06``): it
is kept as written, shown as partial, and compared only as far as it goes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from anyascii import anyascii

__all__ = [
    "CertificateName",
    "DateOfBirth",
    "holder_matches",
    "name_matches",
    "standardised",
]

# ICAO 9303 Part 3 transliterations of Latin letters that are not a plain
# letter plus accents, and the alternatives that documents also use.
_LATIN: dict[str, tuple[str, ...]] = {
    "Ä": ("AE", "A"),
    "Å": ("AA", "A"),
    "Æ": ("AE",),
    "Ð": ("D",),
    "Ñ": ("N", "NXX"),
    "Ö": ("OE", "O"),
    "Ø": ("OE", "O"),
    "Ü": ("UE", "U", "UXX"),
    "Þ": ("TH",),
    "ß": ("SS",),
    "Œ": ("OE",),
    "Ĳ": ("IJ",),
}

# ICAO 9303 Part 3 transliteration of Cyrillic (Russian, Ukrainian,
# Belarusian, Serbian and Macedonian letters). anyascii's form, which many
# older passports used, is allowed as an alternative.
_CYRILLIC: dict[str, str] = {
    "А": "A", "Б": "B", "В": "V", "Г": "G", "Д": "D", "Е": "E", "Ё": "E",
    "Ж": "ZH", "З": "Z", "И": "I", "Й": "I", "К": "K", "Л": "L", "М": "M",
    "Н": "N", "О": "O", "П": "P", "Р": "R", "С": "S", "Т": "T", "У": "U",
    "Ф": "F", "Х": "KH", "Ц": "TS", "Ч": "CH", "Ш": "SH", "Щ": "SHCH",
    "Ъ": "IE", "Ы": "Y", "Ь": "", "Э": "E", "Ю": "IU", "Я": "IA",
    "Є": "IE", "І": "I", "Ї": "I", "Ґ": "G", "Ў": "U",
    "Ђ": "D", "Ј": "J", "Љ": "LJ", "Њ": "NJ", "Ћ": "C", "Џ": "DZ",
    "Ѓ": "G", "Ќ": "K", "Ѕ": "DZ",
}  # fmt: skip

_NOT_LETTER = re.compile(r"[^A-Z]")


@dataclass(frozen=True)
class CertificateName:
    """The holder's name as a certificate gives it; any part may be missing."""

    family: str | None = None
    given: str | None = None
    family_standardised: str | None = None
    given_standardised: str | None = None

    def __repr__(self) -> str:
        # Names are personal data; a repr lands in tracebacks and logs.
        return "CertificateName(...)"


@dataclass(frozen=True)
class DateOfBirth:
    """A date of birth as written on a certificate, perhaps only a year or month.

    ``text`` is the certificate's own form; ``month`` and ``day`` are None
    where it stops. An unknown date of birth (an empty text, which schema
    1.3 allows) has no year either.
    """

    text: str
    year: int | None
    month: int | None = None
    day: int | None = None

    @classmethod
    def parse(cls, text: str) -> DateOfBirth:
        """Read ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or the empty text.

        A full date-time, which some FHIR bundles carry, counts as its date.
        Raises :class:`ValueError` for anything else or an impossible date.
        """
        if text == "":
            return cls(text, None)
        match = re.fullmatch(
            r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})(?:T[0-9:.+\-Z]*)?)?)?", text
        )
        if match is None:
            raise ValueError("The date of birth is not YYYY, YYYY-MM or YYYY-MM-DD.")
        year = int(match.group(1))
        month = int(match.group(2)) if match.group(2) else None
        day = int(match.group(3)) if match.group(3) else None
        try:
            date(year, month or 1, day or 1)
        except ValueError:
            raise ValueError(
                "The date of birth names a day that does not exist."
            ) from None
        return cls(text, year, month, day)

    @property
    def partial(self) -> bool:
        """True when the certificate gives less than a full date."""
        return self.day is None

    def latest(self) -> date | None:
        """The last day the date could mean: 1978 is 1978-12-31.

        This is how CertLogic's ``dccDateOfBirth`` reads a partial date, so
        an age rule never counts someone as older than they may be.
        """
        if self.year is None:
            return None
        if self.month is None:
            return date(self.year, 12, 31)
        if self.day is None:
            following = date(self.year + self.month // 12, self.month % 12 + 1, 1)
            return date.fromordinal(following.toordinal() - 1)
        return date(self.year, self.month, self.day)

    def shown(self) -> str:
        """The date as a screen shows it, saying when it is partial."""
        if self.year is None:
            return "unknown"
        if self.partial:
            return f"{self.text} (partial)"
        return self.text

    def admits(self, known: date) -> bool:
        """Whether a full date of birth ``known`` agrees as far as this one goes."""
        if self.year is None:
            return True
        if known.year != self.year:
            return False
        if self.month is not None and known.month != self.month:
            return False
        return self.day is None or known.day == self.day

    def __repr__(self) -> str:
        return "DateOfBirth(...)"


def standardised(text: str) -> str:
    """The ICAO 9303 form of a name part: capitals, ``<`` between words.

    Only the first transliteration of each letter is used (Ä as AE); for
    matching, :func:`name_matches` also allows the alternatives.
    """
    words = []
    for word in _words(text):
        words.append("".join(options[0] for options in _letters(word)))
    return "<".join(word for word in words if word)


def name_matches(registered: str, name: CertificateName) -> bool:
    """Whether a certificate's name is the registered (passport) name.

    The standardised parts are preferred; where a certificate lacks one, the
    printed part is standardised here. Either order of surname and given
    names is accepted, and separators do not count.
    """
    pattern = _pattern(registered)
    if pattern is None:
        return False
    candidates = []
    for family, given in (
        (name.family_standardised, name.given_standardised),
        (_std(name.family), _std(name.given)),
    ):
        family_key = _skeleton(family or "")
        given_key = _skeleton(given or "")
        if not family_key and not given_key:
            continue
        candidates.append(family_key + given_key)
        candidates.append(given_key + family_key)
    return any(pattern.fullmatch(candidate) for candidate in candidates)


def holder_matches(
    registered_name: str,
    registered_birth: date | None,
    name: CertificateName,
    birth: DateOfBirth | None,
) -> bool:
    """Whether the certificate names the registered person.

    The name must match (see :func:`name_matches`); where both the resident
    and the certificate have a date of birth, they must agree as far as the
    certificate's goes.
    """
    if not name_matches(registered_name, name):
        return False
    if registered_birth is None or birth is None:
        return True
    return birth.admits(registered_birth)


def _std(text: str | None) -> str | None:
    return standardised(text) if text else None


def _skeleton(text: str) -> str:
    return _NOT_LETTER.sub("", text.upper())


def _words(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text)
    return re.split(r"[\s\-<,\u00b7]+", text)


def _pattern(registered: str) -> re.Pattern[str] | None:
    parts = []
    for word in _words(registered):
        for options in _letters(word):
            unique = sorted(set(options), key=lambda option: (-len(option), option))
            if unique == [""]:
                continue
            parts.append("(?:" + "|".join(re.escape(option) for option in unique) + ")")
    if not parts:
        return None
    return re.compile("".join(parts))


def _letters(word: str) -> list[tuple[str, ...]]:
    """Each character of ``word`` as its possible standardised spellings."""
    out: list[tuple[str, ...]] = []
    for char in word:
        upper = char.upper() if char != "ß" else char
        if upper in _LATIN:
            out.append(_LATIN[upper])
            continue
        if upper in _CYRILLIC:
            icao = _CYRILLIC[upper]
            other = _skeleton(anyascii(char))
            out.append((icao, other) if other != icao else (icao,))
            continue
        # Everything else: the accents go (É is E, Ł is L), other scripts are
        # romanised by anyascii, and what is not a letter then is dropped.
        out.append((_skeleton(anyascii(char)),))
    return out
