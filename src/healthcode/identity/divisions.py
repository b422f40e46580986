"""GB/T 2260 administrative division codes, read from python-stdnum's table.

The table ships with python-stdnum as ``stdnum/cn/loc.dat``. It lists every
province (two digits), and under it every prefecture and county (four more
digits) with the years each name was in use, written ``[1983-]`` (since
1983), ``[-2010]`` (until 2010) or ``[1983-1999]``; a line without brackets
has been in use for as long as the table reaches back. A code that was
renamed carries several names separated by commas, oldest first.

Some entries are groupings rather than places: at county level the
``市辖区`` ("districts under the city") of each prefecture-level city and
the ``市区`` that stood for a whole city area before 1983; at prefecture
level the ``市辖区`` and ``县`` of the municipalities and the
``省直辖县级行政单位`` that gather the counties a province governs directly.
They stay known codes, since the standard assigns them, but they are left
out of county listings, of full names and of the parent chain, so that
Beijing's 东城区 reads "北京市东城区" and its parent is 北京市.

Streets (街道) and towns have no GB/T 2260 code of their own; the few we know
for Xi'an live in ``data/streets.json`` under their county code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from healthcode.identity.errors import UnknownDivision

__all__ = [
    "Division",
    "counties",
    "division",
    "full_name",
    "in_use_between",
    "is_known",
    "parent",
    "streets",
    "within",
]

Level = Literal["province", "prefecture", "county"]

_CODE = re.compile(r"[0-9]{6}")
_PROVINCE_LINE = re.compile(r'([0-9]{2}) province="([^"]+)"')
_COUNTY_LINE = re.compile(r'  ([0-9]{4}) county="([^"]+)"')
_SPAN = re.compile(r"\[([0-9]{4})?-([0-9]{4})?\](.+)")

# Names of entries that group other divisions instead of being a place.
_GROUPING_NAMES = frozenset(
    {
        "市辖区",
        "市区",
        "县",
        "省直辖县级行政单位",
        "自治区直辖县级行政单位",
        "省直辖行政单位",
    }
)


@dataclass(frozen=True)
class Division:
    """One GB/T 2260 division under its newest name.

    ``current`` is true when that newest name is still in use, that is when
    the table gives it no end year.
    """

    code: str
    name: str
    level: Level
    current: bool


@dataclass(frozen=True)
class _Name:
    start: int | None
    end: int | None
    text: str

    def covers(self, first_year: int, last_year: int) -> bool:
        """Tell whether this name was in use at some year in the range."""
        if self.start is not None and last_year < self.start:
            return False
        return self.end is None or first_year <= self.end


@dataclass(frozen=True)
class _Entry:
    code: str
    names: tuple[_Name, ...]

    @property
    def newest(self) -> _Name:
        # The table lists names oldest first; sorting on the start year with a
        # stable sort keeps that order for names that share a start.
        return sorted(self.names, key=lambda n: n.start or 0)[-1]

    def to_division(self) -> Division:
        newest = self.newest
        return Division(
            code=self.code,
            name=newest.text,
            level=_level(self.code),
            current=newest.end is None,
        )


def _level(code: str) -> Level:
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "prefecture"
    return "county"


def _parse_names(field: str) -> tuple[_Name, ...]:
    names = []
    for part in field.split(","):
        span = _SPAN.fullmatch(part)
        if span is None:
            names.append(_Name(None, None, part))
            continue
        start, end, text = span.groups()
        names.append(
            _Name(
                int(start) if start else None,
                int(end) if end else None,
                text,
            )
        )
    return tuple(names)


@cache
def _table() -> dict[str, _Entry]:
    """Parse stdnum's division table once per process."""
    text = resources.files("stdnum.cn").joinpath("loc.dat").read_text("utf-8")
    entries: dict[str, _Entry] = {}
    province = ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if match := _PROVINCE_LINE.fullmatch(line):
            province = match.group(1)
            code = province + "0000"
            # The province line itself carries no years; its "0000" county
            # line, which follows, replaces this with the dated name.
            entries[code] = _Entry(code, (_Name(None, None, match.group(2)),))
        elif match := _COUNTY_LINE.fullmatch(line):
            code = province + match.group(1)
            entries[code] = _Entry(code, _parse_names(match.group(2)))
        else:
            # A line we cannot read means the table's format changed under
            # us; going on would silently drop divisions.
            raise RuntimeError("python-stdnum's cn/loc.dat has an unreadable line.")
    return entries


@cache
def _streets() -> dict[str, tuple[str, ...]]:
    path = resources.files("healthcode.identity").joinpath("data", "streets.json")
    raw = json.loads(path.read_text("utf-8"))
    return {code: tuple(names) for code, names in raw.items()}


def _entry(code: str) -> _Entry:
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise UnknownDivision("A division code must be six ASCII digits.")
    try:
        return _table()[code]
    except KeyError:
        raise UnknownDivision(
            f"The division code {code} is not in the GB/T 2260 table."
        ) from None


def _is_grouping(entry: _Entry) -> bool:
    return entry.newest.text in _GROUPING_NAMES


def division(code: str) -> Division:
    """Return the division with this six-digit code, under its newest name.

    Raises :class:`UnknownDivision` when the code is malformed or has never
    been assigned.
    """
    return _entry(code).to_division()


def is_known(code: str, *, year: int | None = None) -> bool:
    """Tell whether the code was ever assigned, or was in use in ``year``.

    A malformed code is simply not known.
    """
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        return False
    entry = _table().get(code)
    if entry is None:
        return False
    if year is None:
        return True
    return any(name.covers(year, year) for name in entry.names)


def in_use_between(code: str, first_year: int, last_year: int) -> bool:
    """Tell whether the code was in use at some year from first to last.

    This is the test for the region in an identity number: the number is
    assigned at or after birth, when the first identity card is issued, so a
    district created after the holder was born may appear in it, but one
    abolished before the birth cannot.
    """
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        return False
    entry = _table().get(code)
    if entry is None:
        return False
    return any(name.covers(first_year, last_year) for name in entry.names)


def parent(code: str) -> Division | None:
    """Return the division one level up, skipping grouping entries.

    A county's parent is its prefecture, or its province when the county
    sits under a grouping entry (a municipality's districts, a county the
    province governs directly). A province has no parent.
    """
    entry = _entry(code)
    level = _level(code)
    if level == "province":
        return None
    table = _table()
    if level == "county":
        prefecture = table.get(code[:4] + "00")
        if prefecture is not None and not _is_grouping(prefecture):
            return prefecture.to_division()
    province = table.get(entry.code[:2] + "0000")
    return province.to_division() if province is not None else None


def counties(prefecture_code: str, *, current_only: bool = True) -> list[Division]:
    """List the counties under a prefecture, in code order.

    Grouping entries are left out. With ``current_only`` (the default) only
    counties whose newest name is still in use are listed.
    """
    entry = _entry(prefecture_code)
    if _level(entry.code) != "prefecture":
        raise UnknownDivision(
            f"No prefecture-level division has the code {prefecture_code}."
        )
    prefix = entry.code[:4]
    found = []
    for code, candidate in sorted(_table().items()):
        if not code.startswith(prefix) or _level(code) != "county":
            continue
        if _is_grouping(candidate):
            continue
        result = candidate.to_division()
        if current_only and not result.current:
            continue
        found.append(result)
    return found


def within(code: str, area_code: str) -> bool:
    """Tell whether ``code`` lies inside the division ``area_code``.

    The area's level decides how many leading digits must agree: two for a
    province, four for a prefecture, all six for a county. The area must be
    a known code; ``code`` needs only to be well formed, so that a code
    retired since still places a record in its area.
    """
    area = _entry(area_code)
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise UnknownDivision("A division code must be six ASCII digits.")
    width = {"province": 2, "prefecture": 4, "county": 6}[_level(area.code)]
    return code[:width] == area.code[:width]


def full_name(code: str) -> str:
    """Return the name with its province and prefecture, e.g. 陕西省西安市雁塔区.

    Grouping entries above the division are skipped, so Beijing's districts
    read "北京市东城区".
    """
    entry = _entry(code)
    table = _table()
    level = _level(code)
    parts = []
    province = table.get(code[:2] + "0000")
    if province is not None and level != "province":
        parts.append(province.newest.text)
    prefecture = table.get(code[:4] + "00")
    if level == "county" and prefecture is not None and not _is_grouping(prefecture):
        parts.append(prefecture.newest.text)
    parts.append(entry.newest.text)
    return "".join(parts)


def streets(county_code: str) -> list[str]:
    """List the street and town names we hold for a county-level code.

    Raises :class:`UnknownDivision` for a code that is not a known county;
    returns an empty list for a county we hold no streets for.
    """
    entry = _entry(county_code)
    if _level(entry.code) != "county":
        raise UnknownDivision(f"No county-level division has the code {county_code}.")
    return list(_streets().get(entry.code, ()))
