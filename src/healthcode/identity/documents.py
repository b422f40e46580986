"""Identity documents: which kinds we accept and how their numbers are read.

A resident is keyed by the document they carry: its kind, the issuing
country for passports, and the number in one normal form. Reading a number
here strips spaces, turns full-width letters and digits (as Chinese input
methods type them) into ASCII, upper-cases letters and checks the layout and
check character of each kind, so that one person typing their number twice
in different ways gets the same key.

Mainland identity numbers in the old 15-digit form are converted to the
18-digit form, so both forms of one card key the same person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from healthcode.identity import divisions
from healthcode.identity.errors import InvalidDocument

__all__ = [
    "Document",
    "DocumentKind",
    "mod11_2_check",
    "parse_document",
]


class DocumentKind(StrEnum):
    """The identity documents a resident may register with."""

    #: Mainland resident identity card (居民身份证).
    CN_ID = "cn-id"
    #: Foreign permanent residence card, old 15-character and 2017 18-digit forms.
    FOREIGN_PERMANENT = "foreign-permanent"
    #: Passport, keyed together with its ISO 3166-1 alpha-3 issuing country.
    PASSPORT = "passport"
    #: Mainland travel permit for Hong Kong and Macao residents (回乡证).
    HK_MO_PERMIT = "hk-mo-permit"
    #: Mainland travel permit for Taiwan residents (台胞证).
    TW_PERMIT = "tw-permit"
    #: Residence permit for Hong Kong, Macao and Taiwan residents.
    HMT_RESIDENCE = "hmt-residence"


# How each number is named in error messages.
_LABELS = {
    DocumentKind.CN_ID: "mainland identity number",
    DocumentKind.FOREIGN_PERMANENT: "foreign permanent residence card number",
    DocumentKind.PASSPORT: "passport number",
    DocumentKind.HK_MO_PERMIT: "Hong Kong and Macao travel permit number",
    DocumentKind.TW_PERMIT: "Taiwan travel permit number",
    DocumentKind.HMT_RESIDENCE: "Hong Kong, Macao and Taiwan residence permit number",
}

# ISO 3166-1 alpha-3 codes officially assigned, as published in the iso-codes
# data set (249 codes).
_ISO_3166_ALPHA3_TEXT = """
    ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE BDI
    BEL BEN BES BFA BGD BGR BHR BHS BIH BLM BLR BLZ BMU BOL BRA BRB BRN BTN
    BVT BWA CAF CAN CCK CHE CHL CHN CIV CMR COD COG COK COL COM CPV CRI CUB
    CUW CXR CYM CYP CZE DEU DJI DMA DNK DOM DZA ECU EGY ERI ESH ESP EST ETH
    FIN FJI FLK FRA FRO FSM GAB GBR GEO GGY GHA GIB GIN GLP GMB GNB GNQ GRC
    GRD GRL GTM GUF GUM GUY HKG HMD HND HRV HTI HUN IDN IMN IND IOT IRL IRN
    IRQ ISL ISR ITA JAM JEY JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN
    LBR LBY LCA LIE LKA LSO LTU LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX MHL
    MKD MLI MLT MMR MNE MNG MNP MOZ MRT MSR MTQ MUS MWI MYS MYT NAM NCL NER
    NFK NGA NIC NIU NLD NOR NPL NRU NZL OMN PAK PAN PCN PER PHL PLW PNG POL
    PRI PRK PRT PRY PSE PYF QAT REU ROU RUS RWA SAU SDN SEN SGP SGS SHN SJM
    SLB SLE SLV SMR SOM SPM SRB SSD STP SUR SVK SVN SWE SWZ SXM SYC SYR TCA
    TCD TGO THA TJK TKL TKM TLS TON TTO TUN TUR TUV TWN TZA UGA UKR UMI URY
    USA UZB VAT VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF ZMB ZWE
"""
_ISO_3166_ALPHA3 = frozenset(_ISO_3166_ALPHA3_TEXT.split())

# Codes that ICAO Doc 9303 adds for travel documents issued by the United
# Nations and for holders without a nationality; their holders are real
# visitors, so refusing them would leave people out.
_ICAO_SPECIAL = frozenset({"UNO", "UNA", "UNK", "XXA", "XXB", "XXC", "XXX"})

_PASSPORT_COUNTRIES = _ISO_3166_ALPHA3 | _ICAO_SPECIAL

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_EARLIEST_BIRTH_YEAR = 1890

# Hong Kong, Macao and Taiwan residence permits use these as region codes.
_HMT_PREFIXES = ("810000", "820000", "830000")

_SPACE = re.compile(r"\s+")
_LETTERS_DIGITS = re.compile(r"[0-9A-Za-z]*")
_CN_ID = re.compile(r"[0-9]{17}[0-9X]")
_CN_ID_LEGACY = re.compile(r"[0-9]{15}")
_FOREIGN_OLD = re.compile(r"[A-Z]{3}[0-9]{12}")
_FOREIGN_2017 = re.compile(r"9[0-9]{16}[0-9X]")
_HK_MO = re.compile(r"[HM][0-9]{8}")
_HK_MO_OLD = re.compile(r"[HM][0-9]{10}")
_TW = re.compile(r"[0-9]{8}")
_TW_OLD = re.compile(r"[0-9]{8}[0-9A-Z]{2}")
_HMT = re.compile(r"8[123]0000[0-9]{11}[0-9X]")
_PASSPORT = re.compile(r"[0-9A-Z]{5,17}")
_COUNTRY = re.compile(r"[A-Za-z]{3}")


@dataclass(frozen=True)
class Document:
    """A checked identity document in its normal form.

    ``number`` is the normalised number (mainland cards always in the
    18-digit form). ``country`` is the issuing country for passports and
    empty for every other kind. ``birth_date`` and ``region_code`` are read
    from numbers that carry them. ``legacy`` is true when the number was
    given in an older form of its document.
    """

    kind: DocumentKind
    number: str
    country: str = ""
    birth_date: date | None = None
    region_code: str | None = None
    legacy: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        """The (kind, country, number) triple that keys a resident."""
        return (self.kind.value, self.country, self.number)

    def masked(self) -> str:
        """Return the number with its middle hidden, for screens and logs.

        A quarter of the number (rounded down) shows at each end, so an
        18-character number reads like ``6101**********123X`` and at least
        half of any number stays hidden.
        """
        length = len(self.number)
        shown = length // 4
        head = self.number[:shown]
        tail = self.number[length - shown :]
        return head + "*" * (length - 2 * shown) + tail

    def __repr__(self) -> str:
        # The default dataclass repr would print the whole number into any
        # log line or traceback that shows the object.
        return (
            f"Document(kind={self.kind.value!r}, country={self.country!r}, "
            f"number={self.masked()!r}, legacy={self.legacy!r})"
        )


def mod11_2_check(body17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for 17 digits.

    The check is a digit or ``X`` (standing for ten).
    """
    if not isinstance(body17, str) or not re.fullmatch(r"[0-9]{17}", body17):
        raise ValueError("mod11_2_check needs a string of exactly 17 ASCII digits.")
    pairs = zip(body17, _WEIGHTS, strict=True)
    total = sum(int(digit) * weight for digit, weight in pairs)
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def parse_document(
    kind: str, number: str, country: str = "", *, today: date
) -> Document:
    """Check a document and return it in normal form.

    ``today`` is the local date against which a birth date in the number
    must not lie in the future. Raises :class:`InvalidDocument` with a
    message that names the field and the fault but never the number.
    """
    if isinstance(today, datetime) or not isinstance(today, date):
        raise TypeError("today must be a date (not a datetime).")
    try:
        document_kind = DocumentKind(kind)
    except ValueError:
        raise InvalidDocument("The document kind is not one we accept.") from None
    label = _LABELS[document_kind]
    if not isinstance(number, str):
        raise InvalidDocument(f"The {label} must be given as text.")
    if not isinstance(country, str):
        raise InvalidDocument("The issuing country must be given as text.")

    cleaned = _clean(number)
    if not cleaned:
        raise InvalidDocument(f"The {label} is empty.")
    if not _LETTERS_DIGITS.fullmatch(cleaned):
        raise InvalidDocument(f"The {label} may hold only letters and digits.")
    # Upper-case only once the text is known to be ASCII: str.upper() turns
    # some other letters into ASCII ones ("ß" into "SS").
    cleaned = cleaned.upper()

    country = _clean(country)
    if document_kind is DocumentKind.PASSPORT:
        return _passport(cleaned, country)
    if country:
        raise InvalidDocument("Only a passport is given with an issuing country.")

    if document_kind is DocumentKind.CN_ID:
        return _mainland(cleaned, today)
    if document_kind is DocumentKind.FOREIGN_PERMANENT:
        return _foreign_permanent(cleaned, today)
    if document_kind is DocumentKind.HK_MO_PERMIT:
        return _simple(cleaned, document_kind, _HK_MO, _HK_MO_OLD)
    if document_kind is DocumentKind.TW_PERMIT:
        return _simple(cleaned, document_kind, _TW, _TW_OLD)
    return _hmt_residence(cleaned, today)


def _clean(text: str) -> str:
    # Input methods in full-width mode type U+FF01..U+FF5E for the ASCII
    # letters and digits; mapping them back keeps one card to one key.
    ascii_text = "".join(
        chr(ord(char) - 0xFEE0) if "\uff01" <= char <= "\uff5e" else char
        for char in text
    )
    return _SPACE.sub("", ascii_text)


def _mainland(number: str, today: date) -> Document:
    label = _LABELS[DocumentKind.CN_ID]
    legacy = False
    if len(number) == 15:
        if not _CN_ID_LEGACY.fullmatch(number):
            raise InvalidDocument(f"The old 15-character {label} must be all digits.")
        # The 15-digit form left out the century (always 19) and the check
        # character; restoring both gives the number the card holder's
        # 18-digit card carries.
        body = number[:6] + "19" + number[6:]
        number = body + mod11_2_check(body)
        legacy = True
    elif len(number) != 18:
        raise InvalidDocument(
            f"The {label} must have 18 characters, or 15 in the old form."
        )
    elif not _CN_ID.fullmatch(number):
        raise InvalidDocument(
            f"The {label} must be 17 digits followed by a digit or X."
        )
    elif number[17] != mod11_2_check(number[:17]):
        raise InvalidDocument(f"The {label} has a wrong check character.")

    birth = _birth_date(number[6:14], label, today)
    region = number[:6]
    if region.startswith("9"):
        raise InvalidDocument(
            f"The {label} starts with 9 like a foreign permanent residence "
            "card number; register it as that document."
        )
    if region in _HMT_PREFIXES:
        raise InvalidDocument(
            f"The {label} has the region code of a Hong Kong, Macao and Taiwan "
            "residence permit; register it as that document."
        )
    # The number is assigned when the first card is issued, at or after
    # birth; so the region must have been in use at some time since the
    # birth year, not necessarily in it.
    if not divisions.in_use_between(region, birth.year, today.year):
        raise InvalidDocument(
            f"The region code in the {label} is not a GB/T 2260 division "
            "in use at any time since the birth year."
        )
    return Document(
        DocumentKind.CN_ID,
        number,
        birth_date=birth,
        region_code=region,
        legacy=legacy,
    )


def _foreign_permanent(number: str, today: date) -> Document:
    label = _LABELS[DocumentKind.FOREIGN_PERMANENT]
    kind = DocumentKind.FOREIGN_PERMANENT
    if len(number) == 15:
        if not _FOREIGN_OLD.fullmatch(number):
            raise InvalidDocument(
                f"The old 15-character {label} must be three letters "
                "followed by 12 digits."
            )
        return Document(kind, number, legacy=True)
    if len(number) != 18:
        raise InvalidDocument(
            f"The {label} must have 18 characters, or 15 in the old form."
        )
    if not _FOREIGN_2017.fullmatch(number):
        raise InvalidDocument(
            f"The {label} must start with 9 and be 17 digits followed by a digit or X."
        )
    if number[17] != mod11_2_check(number[:17]):
        raise InvalidDocument(f"The {label} has a wrong check character.")
    birth = _birth_date(number[6:14], label, today)
    return Document(kind, number, birth_date=birth)


def _hmt_residence(number: str, today: date) -> Document:
    label = _LABELS[DocumentKind.HMT_RESIDENCE]
    if len(number) != 18:
        raise InvalidDocument(f"The {label} must have 18 characters.")
    if not _HMT.fullmatch(number):
        raise InvalidDocument(
            f"The {label} must start with 810000, 820000 or 830000 and be "
            "17 digits followed by a digit or X."
        )
    if number[17] != mod11_2_check(number[:17]):
        raise InvalidDocument(f"The {label} has a wrong check character.")
    birth = _birth_date(number[6:14], label, today)
    return Document(
        DocumentKind.HMT_RESIDENCE,
        number,
        birth_date=birth,
        region_code=number[:6],
    )


def _simple(
    number: str, kind: DocumentKind, current: re.Pattern[str], old: re.Pattern[str]
) -> Document:
    # The permits carry no check character and no birth date, so their
    # layout is all we can check.
    #
    # Known shortcoming: an older permit is keyed as given, with no link to
    # the number of the card that replaced it, so a holder who registers
    # once with each gets two keys until an official merges them.
    if current.fullmatch(number):
        return Document(kind, number)
    if old.fullmatch(number):
        return Document(kind, number, legacy=True)
    if kind is DocumentKind.HK_MO_PERMIT:
        layout = "H or M followed by 8 digits (10 in the older form)"
    else:
        layout = "8 digits (10 characters in the older form)"
    raise InvalidDocument(f"The {_LABELS[kind]} must be {layout}.")


def _passport(number: str, country: str) -> Document:
    label = _LABELS[DocumentKind.PASSPORT]
    if not country:
        raise InvalidDocument("A passport must be given with its issuing country.")
    if not _COUNTRY.fullmatch(country):
        raise InvalidDocument(
            "The passport's issuing country must be a three-letter ISO 3166-1 code."
        )
    country = country.upper()
    if country not in _PASSPORT_COUNTRIES:
        raise InvalidDocument(
            "The passport's issuing country is not an ISO 3166-1 country code."
        )
    if not _PASSPORT.fullmatch(number):
        raise InvalidDocument(f"The {label} must have 5 to 17 letters and digits.")
    return Document(DocumentKind.PASSPORT, number, country=country)


def _birth_date(digits: str, label: str, today: date) -> date:
    try:
        birth = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise InvalidDocument(
            f"The birth date in the {label} is not a real date."
        ) from None
    if birth > today:
        raise InvalidDocument(f"The birth date in the {label} is in the future.")
    if birth.year < _EARLIEST_BIRTH_YEAR:
        raise InvalidDocument(
            f"The birth date in the {label} is before {_EARLIEST_BIRTH_YEAR}."
        )
    return birth
