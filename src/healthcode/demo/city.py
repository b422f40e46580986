"""A synthetic Xi'an and two days of its department feeds.

Everything here is pure: :func:`build_city` turns a seed, a size and a clock
into people, and :func:`write_day_one` and :func:`write_day_two` write the
feeds that departments would send about them, as CSV files in the
documented formats. Nothing touches a database; the demo job imports the
files through the same path a department uses.

The city stands on real GB/T 2260 codes: Xi'an's districts and counties with
real street names under them, and real districts of other cities for the
stations that residents travel to. People are invented. Most of them are
plain residents whose code is green; a few percent are given a *role* that
decides which records they get and so which colour they should show on each
day (see :data:`EXPECTED`). The demo and its tests check the computed
colours against these expectations.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from healthcode.identity import divisions
from healthcode.identity.documents import mod11_2_check

__all__ = [
    "CITY_CODE",
    "COLUMNS",
    "EXPECTED",
    "MIN_RESIDENTS",
    "City",
    "Person",
    "PlantedError",
    "Station",
    "WrittenFeed",
    "build_city",
    "write_day_one",
    "write_day_two",
]

#: Xi'an, the prefecture-level city the demo builds.
CITY_CODE = "610100"

#: The smallest city that still has room for every role.
MIN_RESIDENTS = 200

# Resident population of each district or county at the 2020 census, in tens
# of thousands and rounded. Used only as weights, so that the synthetic city
# has the real city's shape: many people in Weiyang and Yanta, few in Yanliang.
_DISTRICT_WEIGHTS = {
    "610102": 63,
    "610103": 76,
    "610104": 102,
    "610111": 76,
    "610112": 156,
    "610113": 144,
    "610114": 28,
    "610115": 66,
    "610116": 139,
    "610117": 45,
    "610118": 56,
    "610122": 51,
    "610124": 56,
}

# Real county-level divisions elsewhere in Shaanxi and beyond, for residents
# whose identity number was issued where they were born rather than in the
# district they live in now, as it is for about one Xi'an resident in ten.
_BIRTHPLACES = (
    "610302",  # 宝鸡市渭滨区
    "610402",  # 咸阳市秦都区
    "610502",  # 渭南市临渭区
    "610702",  # 汉中市汉台区
    "410105",  # 郑州市金水区
    "620102",  # 兰州市城关区
)

_SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅"
    "沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔"
    "白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
)
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建文斌宇浩凯"
    "欣怡梓涵子轩雨桐一诺思源博文嘉怡晨阳佳琪子墨浩然若曦俊杰雅婷志强海燕晓东"
)

# Names that break careless software: a surname beyond the Basic Multilingual
# Plane (U+20164) and a Uyghur name whose parts a middle dot separates.
_HARD_NAMES = ("\U00020164明", "阿依古丽·买买提")

# Foreign visitors: a name as printed in the passport, the issuing country
# and a number of the layout that country uses.
_VISITORS = (
    ("SMITH John", "GBR", "#########"),
    ("MÜLLER Anna", "DEU", "C##@@####"),
    ("TANAKA Yui", "JPN", "TK#######"),
    ("KIM Minjun", "KOR", "M########"),
    ("DUBOIS Léa", "FRA", "##@@#####"),
    ("IVANOV Sergei", "RUS", "#########"),
)

_VACCINES = ("BBIBP-CorV", "CoronaVac", "ZF2001", "Ad5-nCoV")
_LABS = (
    "西安市疾病预防控制中心实验室",
    "陕西省人民医院检验科",
    "西安交通大学第一附属医院检验科",
    "西安市第一医院检验科",
    "雁塔区第三方核酸检测实验室",
)


@dataclass(frozen=True, slots=True)
class Station:
    """A station or airport and the county-level division it lies in."""

    name: str
    code: str


XIAN_NORTH = Station("西安北站", "610112")
XIAN = Station("西安站", "610102")
# Xi'an's airport lies across the city line, in Xianyang's Weicheng district.
XIAN_AIRPORT = Station("西安咸阳国际机场", "610404")
PUDONG_AIRPORT = Station("上海浦东国际机场", "310115")
SANYA_AIRPORT = Station("三亚凤凰国际机场", "460204")
CHENGDU_EAST = Station("成都东站", "510108")
WUCHANG = Station("武昌站", "420106")
CHANGSHA = Station("长沙站", "430102")
CHANGSHA_SOUTH = Station("长沙南站", "430111")
ZHENGZHOU = Station("郑州站", "410103")
BEIJING_WEST = Station("北京西站", "110106")
GUANGZHOU_EAST = Station("广州东站", "440106")
GUANGZHOU_SOUTH = Station("广州南站", "440113")

_STATIONS = (
    XIAN_NORTH,
    XIAN,
    XIAN_AIRPORT,
    PUDONG_AIRPORT,
    SANYA_AIRPORT,
    CHENGDU_EAST,
    WUCHANG,
    CHANGSHA,
    CHANGSHA_SOUTH,
    ZHENGZHOU,
    BEIJING_WEST,
    GUANGZHOU_EAST,
    GUANGZHOU_SOUTH,
)

# The risk areas. Day one already knows a high-risk district in Shanghai and
# a medium-risk one in Chengdu; day two declares a street in Xi'an's Yanta
# district, where the reported case lives, and the whole of Wuchang district
# in Wuhan.
HIGH_RISK_DAY_ONE = "310115"  # 上海市浦东新区
MEDIUM_RISK_DAY_ONE = "510108"  # 四川省成都市成华区
LOW_RISK_DAY_ONE = "110106"  # 北京市丰台区
STREET_DISTRICT = "610113"  # 陕西省西安市雁塔区
STREET_NAME = "小寨路街道"
NEIGHBOUR_STREET = "大雁塔街道"
COUNTY_DAY_TWO = WUCHANG.code  # 湖北省武汉市武昌区

#: Each role and the colour its residents should show after day one and
#: after day two. Residents without a role are "plain" and stay green.
EXPECTED: dict[str, tuple[str, str]] = {
    "plain": ("green", "green"),
    "visitor": ("grey", "grey"),
    "case": ("red", "red"),
    "released": ("yellow", "yellow"),
    "quarantine": ("red", "red"),
    "positive": ("red", "red"),
    "recovering": ("red", "green"),
    "high-stay": ("red", "red"),
    "connection": ("green", "green"),
    "medium-stay": ("yellow", "yellow"),
    "symptoms": ("yellow", "green"),
    "symptoms-new": ("green", "yellow"),
    "observation": ("yellow", "yellow"),
    "observation-ending": ("yellow", "green"),
    "street-stay": ("green", "yellow"),
    "street-brief": ("green", "green"),
    "street-neighbour": ("green", "green"),
    "county-stay": ("green", "red"),
    "passed-through": ("green", "green"),
    "short-connection": ("green", "green"),
    "new-positive": ("green", "red"),
    "reported-case": ("green", "red"),
    "contact": ("green", "yellow"),
    "traveller": ("green", "green"),
}

# How many residents each role gets: a share of the city, but never fewer
# than the minimum, so that a small test city still shows every effect.
_ROLE_SIZES: dict[str, tuple[float, int]] = {
    "visitor": (0.004, 3),
    "case": (0.001, 2),
    "released": (0.001, 2),
    "quarantine": (0.0015, 2),
    "positive": (0.001, 2),
    "recovering": (0.0005, 2),
    "high-stay": (0.002, 3),
    "connection": (0.001, 2),
    "medium-stay": (0.004, 3),
    "symptoms": (0.008, 3),
    "symptoms-new": (0.006, 3),
    "observation": (0.008, 3),
    "observation-ending": (0.002, 2),
    "street-stay": (0.001, 2),
    "street-brief": (0.001, 2),
    "street-neighbour": (0.0005, 1),
    "county-stay": (0.001, 2),
    "passed-through": (0.002, 2),
    "short-connection": (0.001, 2),
    "new-positive": (0.0005, 2),
    "reported-case": (0.0, 1),
    "contact": (0.0, 6),
    "traveller": (0.03, 5),
}

#: The columns each feed file has, in the order written.
COLUMNS: dict[str, tuple[str, ...]] = {
    "identities": (
        "record_id",
        "doc_kind",
        "doc_number",
        "doc_country",
        "name",
        "birth_date",
        "region_code",
        "street",
        "outcome",
        "confirmed_at",
    ),
    "risk-areas": ("record_id", "code", "name", "level", "starts_at", "ends_at"),
    "lab-results": (
        "record_id",
        "doc_kind",
        "doc_number",
        "doc_country",
        "sampled_at",
        "reported_at",
        "method",
        "result",
        "lab",
    ),
    "vaccinations": (
        "record_id",
        "doc_kind",
        "doc_number",
        "doc_country",
        "administered_at",
        "product",
        "dose_number",
    ),
    "travel": (
        "record_id",
        "doc_kind",
        "doc_number",
        "doc_country",
        "mode",
        "carrier",
        "service_number",
        "service_date",
        "carriage",
        "seat",
        "dep_station",
        "dep_code",
        "dep_at",
        "arr_station",
        "arr_code",
        "arr_at",
        "stops",
    ),
    "declarations": (
        "record_id",
        "doc_kind",
        "doc_number",
        "doc_country",
        "declared_at",
        "fever",
        "respiratory",
        "visited_code",
        "visited_place",
        "visited_from",
        "visited_to",
    ),
    "cases": (
        "record_id",
        "doc_kind",
        "doc_number",
        "doc_country",
        "classification",
        "onset_at",
        "diagnosed_at",
        "isolated_at",
        "released_at",
    ),
    "orders": (
        "record_id",
        "doc_kind",
        "doc_number",
        "doc_country",
        "kind",
        "starts_at",
        "ends_at",
    ),
}


@dataclass(frozen=True, slots=True)
class Person:
    """One synthetic resident.

    ``doc_number`` is the number in its normal form, the one the resident is
    keyed by. ``written_number`` is how the identity registry writes it,
    which for a few residents is the 15-digit legacy form or ends in a
    lowercase ``x``.
    """

    index: int
    role: str
    doc_kind: str
    doc_country: str
    doc_number: str
    written_number: str
    name: str
    birth_date: date
    region_code: str
    street: str

    @property
    def key(self) -> tuple[str, str, str]:
        """The (kind, country, number) triple that keys the resident."""
        return (self.doc_kind, self.doc_country, self.doc_number)

    @property
    def is_visitor(self) -> bool:
        return self.doc_kind == "passport"


@dataclass(frozen=True, slots=True)
class PlantedError:
    """A bad row written on purpose, that the import must reject by line."""

    kind: str
    line: int
    field: str
    fault: str


@dataclass(frozen=True, slots=True)
class WrittenFeed:
    """One feed file as written: its kind, path, row count and planted faults."""

    kind: str
    path: Path
    rows: int
    planted: tuple[PlantedError, ...] = ()


@dataclass
class City:
    """The people of the synthetic city and the clock its two days run on.

    ``day_two`` is the moment the demo ends; ``day_one`` is 24 hours before.
    Each day's feeds hold only events up to that day's moment.
    """

    seed: int
    zone: ZoneInfo
    day_one: datetime
    day_two: datetime
    districts: list[divisions.Division]
    people: list[Person]
    roles: dict[str, list[int]] = field(default_factory=dict)

    def by_role(self, role: str) -> list[Person]:
        """The residents given ``role``, in index order."""
        return [self.people[index] for index in self.roles.get(role, [])]

    def expected_colour(self, person: Person, day: int) -> str:
        """The colour ``person`` should show after ``day`` (1 or 2)."""
        return EXPECTED[person.role][day - 1]


def build_city(
    residents: int, *, now: datetime, seed: int = 7, zone: ZoneInfo | None = None
) -> City:
    """Invent ``residents`` people of Xi'an, deterministically from ``seed``.

    ``now`` is the moment of day two; it must be an aware datetime.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if residents < MIN_RESIDENTS:
        raise ValueError(
            f"A demo city needs at least {MIN_RESIDENTS} residents to hold every role."
        )
    zone = zone or ZoneInfo("Asia/Shanghai")
    for station in _STATIONS:
        # Fail at once, naming the station, if the code table ever loses one.
        divisions.division(station.code)
    rng = random.Random(seed)
    districts = divisions.counties(CITY_CODE)
    weights = [_DISTRICT_WEIGHTS.get(d.code, 20) for d in districts]
    streets = {d.code: divisions.streets(d.code) or [""] for d in districts}

    roles = _assign_roles(residents, rng)
    day_two = now
    day_one = now - timedelta(days=1)
    today = day_one.astimezone(zone).date()
    numbers: set[str] = set()
    people: list[Person] = []
    visitors = 0
    for index, role in enumerate(roles):
        district = rng.choices(districts, weights)[0].code
        street = rng.choice(streets[district])
        if role in ("reported-case", "contact"):
            district, street = STREET_DISTRICT, STREET_NAME
        if role == "visitor":
            name, country, layout = _VISITORS[visitors % len(_VISITORS)]
            visitors += 1
            number = _passport_number(rng, layout, numbers)
            people.append(
                Person(
                    index=index,
                    role=role,
                    doc_kind="passport",
                    doc_country=country,
                    doc_number=number,
                    written_number=number,
                    name=name,
                    birth_date=_birth(rng, today, 20, 60),
                    region_code=district,
                    street=street,
                )
            )
            continue
        birth = _birth(rng, today, 0, 95)
        prefix = district
        if rng.random() < 0.1:
            candidate = rng.choice(_BIRTHPLACES)
            if divisions.in_use_between(candidate, birth.year, today.year):
                prefix = candidate
        number = _mainland_number(rng, prefix, birth, numbers)
        if index < len(_HARD_NAMES):
            name = _HARD_NAMES[index]
        else:
            given = rng.choice(_GIVEN)
            if rng.random() < 0.7:
                given += rng.choice(_GIVEN)
            name = rng.choice(_SURNAMES) + given
        people.append(
            Person(
                index=index,
                role=role,
                doc_kind="cn-id",
                doc_country="",
                doc_number=number,
                written_number=number,
                name=name,
                birth_date=birth,
                region_code=district,
                street=street,
            )
        )
    _special_forms(people, rng, numbers)
    by_role: dict[str, list[int]] = {}
    for person in people:
        by_role.setdefault(person.role, []).append(person.index)
    return City(seed, zone, day_one, day_two, districts, people, by_role)


def _assign_roles(residents: int, rng: random.Random) -> list[str]:
    roles = ["plain"] * residents
    # The first residents keep the hard names and stay plain, so that the
    # demo always shows them; roles go to residents after them.
    free = list(range(len(_HARD_NAMES) + 1, residents))
    rng.shuffle(free)
    for role, (share, minimum) in _ROLE_SIZES.items():
        for _ in range(max(minimum, round(share * residents))):
            roles[free.pop()] = role
    return roles


def _birth(rng: random.Random, today: date, youngest: int, oldest: int) -> date:
    days = rng.randint(youngest * 365 + 1, oldest * 365 + 364)
    return today - timedelta(days=days)


def _mainland_number(
    rng: random.Random, prefix: str, birth: date, taken: set[str]
) -> str:
    while True:
        body = f"{prefix}{birth:%Y%m%d}{rng.randint(1, 999):03d}"
        number = body + mod11_2_check(body)
        if number not in taken:
            taken.add(number)
            return number


def _passport_number(rng: random.Random, layout: str, taken: set[str]) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    while True:
        number = "".join(
            str(rng.randint(0, 9))
            if char == "#"
            else rng.choice(letters)
            if char == "@"
            else char
            for char in layout
        )
        if number not in taken:
            taken.add(number)
            return number


def _special_forms(people: list[Person], rng: random.Random, taken: set[str]) -> None:
    """Give a few plain residents the number forms that software gets wrong."""
    plain = [p for p in people if p.role == "plain" and p.index >= len(_HARD_NAMES)]
    # Three residents whose check character is X, written lowercase by the
    # registry; the number must be accepted and stored with a capital X.
    with_x = [p for p in plain if p.doc_number.endswith("X")][:3]
    for person in with_x:
        people[person.index] = replace(
            person, written_number=person.doc_number[:-1] + "x"
        )
    # One resident, born in 1962, still registered with the 15-digit number of
    # a first-generation card issued in Beilin district, which has kept its
    # code since. The stored key is the 18-digit form.
    rest = [p for p in plain if p not in with_x]
    if not rest:
        return
    birth = date(1962, rng.randint(1, 12), rng.randint(1, 28))
    while True:
        sequence = f"{rng.randint(1, 999):03d}"
        body = f"{_LEGACY_PREFIX}{birth:%Y%m%d}{sequence}"
        full = body + mod11_2_check(body)
        if full not in taken:
            taken.add(full)
            break
    people[rest[0].index] = replace(
        rest[0],
        doc_number=full,
        written_number=f"{_LEGACY_PREFIX}{birth:%y%m%d}{sequence}",
        birth_date=birth,
    )


_LEGACY_PREFIX = "610103"


# Writing the feeds.


class _Feed:
    """Rows of one feed file, kept in order, with their faults planted."""

    def __init__(self, kind: str, name: str | None = None) -> None:
        self.kind = kind
        self.name = name or kind
        self.rows: list[dict[str, str]] = []
        self.bad: list[tuple[dict[str, str], str, str]] = []

    def add(self, row: dict[str, str]) -> None:
        self.rows.append(row)

    def add_bad(self, row: dict[str, str], field: str, fault: str) -> None:
        self.bad.append((row, field, fault))

    def write(self, path: Path) -> WrittenFeed:
        rows = list(self.rows)
        # Bad rows go in the middle of the file, spread out, so that the
        # report shows that the rows around them were handled as the batch
        # mode says and the line numbers point into the file.
        good = len(rows)
        for number, (row, _, _) in enumerate(self.bad, start=1):
            rows.insert(good * number // (len(self.bad) + 1) + number - 1, row)
        # The header is line 1 and no value holds a line break, so row i of
        # the list is on line i + 2 of the file.
        lines = {id(row): line for line, row in enumerate(rows, start=2)}
        planted = tuple(
            PlantedError(self.kind, lines[id(row)], name, fault)
            for row, name, fault in self.bad
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(
                handle, fieldnames=COLUMNS[self.kind], lineterminator="\n"
            )
            writer.writeheader()
            writer.writerows(rows)
        return WrittenFeed(self.kind, path, len(rows), planted)


class _Clock:
    """Local wall-clock text for instants, as the departments write them."""

    def __init__(self, city: City) -> None:
        self.zone = city.zone

    def text(self, moment: datetime) -> str:
        # Departments in Xi'an write local time without an offset; the
        # importer reads such times in the feed's declared zone.
        return moment.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M:%S")

    def date(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m-%d")


def _who(person: Person, *, written: bool = False) -> dict[str, str]:
    return {
        "doc_kind": person.doc_kind,
        "doc_number": person.written_number if written else person.doc_number,
        "doc_country": person.doc_country,
    }


def write_day_one(city: City, directory: Path) -> list[WrittenFeed]:
    """Write day one's feeds under ``directory`` in the order they are imported.

    The identities and lab-results files each hold two bad rows, planted in
    the middle; the other files are clean.
    """
    rng = random.Random(city.seed * 1000 + 1)
    clock = _Clock(city)
    t1 = city.day_one
    hour = timedelta(hours=1)
    day = timedelta(days=1)
    feeds = _feeds(COLUMNS)

    _identities(city, feeds["identities"], clock, rng)

    areas = feeds["risk-areas"]
    areas.add(_area("HC-RA-0001", HIGH_RISK_DAY_ONE, "", "high", t1 - 7 * day, clock))
    areas.add(
        _area("HC-RA-0002", MEDIUM_RISK_DAY_ONE, "", "medium", t1 - 6 * day, clock)
    )
    areas.add(_area("HC-RA-0003", LOW_RISK_DAY_ONE, "", "low", t1 - 9 * day, clock))

    labs = feeds["lab-results"]
    serial = _Serial("LAB1")
    for person in city.people:
        role = person.role
        if role == "plain" and rng.random() < 0.55:
            sampled = t1 - timedelta(minutes=rng.randint(120, 72 * 60))
            labs.add(_test(serial(), person, sampled, "negative", clock, rng, t1))
        elif role == "visitor":
            # Visitors from abroad are tested on arrival.
            sampled = t1 - timedelta(minutes=rng.randint(24 * 60, 48 * 60))
            labs.add(_test(serial(), person, sampled, "negative", clock, rng, t1))
        elif role == "positive":
            sampled = t1 - timedelta(minutes=rng.randint(26 * 60, 72 * 60))
            labs.add(_test(serial(), person, sampled, "positive", clock, rng, t1))
        elif role == "recovering":
            history = ((t1 - 7 * day, "positive"), (t1 - 30 * hour, "negative"))
            for sampled, result in history:
                labs.add(_test(serial(), person, sampled, result, clock, rng, t1))
    plain = city.by_role("plain")
    future = t1 + 3 * day
    bad = _test(serial(), plain[-1], future, "negative", clock, rng, t1)
    bad["reported_at"] = ""
    labs.add_bad(bad, "sampled_at", "sample time 3 days in the future")
    bad = _test(serial(), plain[-2], t1 - day, "negative", clock, rng, t1)
    bad["sampled_at"] = f"{t1.astimezone(city.zone).year}-02-30T09:00:00"
    bad["reported_at"] = ""
    labs.add_bad(bad, "sampled_at", "malformed date (February 30)")

    vaccinations = feeds["vaccinations"]
    serial = _Serial("VAC")
    for person in city.people:
        if person.is_visitor or rng.random() >= 0.88:
            continue
        given = t1 - timedelta(days=rng.randint(600, 900), minutes=rng.randint(0, 600))
        product = rng.choice(_VACCINES)
        for dose in range(1, rng.choice((1, 2, 2, 3, 3, 3)) + 1):
            vaccinations.add(
                {
                    "record_id": serial(),
                    **_who(person),
                    "administered_at": clock.text(given),
                    "product": product,
                    "dose_number": str(dose),
                }
            )
            given += timedelta(days=rng.randint(21, 200))

    _travel_day_one(city, feeds, clock, rng)

    declarations = feeds["declarations"]
    serial = _Serial("DCL1")
    for person in city.people:
        role = person.role
        if role == "symptoms":
            declared = t1 - timedelta(minutes=rng.randint(60, 20 * 60))
            fever = rng.random() < 0.6
            declarations.add(
                _declaration(serial(), person, declared, fever, not fever, clock)
            )
        elif role in ("street-stay", "street-brief", "street-neighbour"):
            place = NEIGHBOUR_STREET if role == "street-neighbour" else STREET_NAME
            length = 60 if role == "street-brief" else 6 * 60
            start = t1 - 10 * hour
            row = _declaration(serial(), person, t1 - hour, False, False, clock)
            row.update(
                visited_code=STREET_DISTRICT,
                visited_place=place,
                visited_from=clock.text(start),
                visited_to=clock.text(start + timedelta(minutes=length)),
            )
            declarations.add(row)
        elif role == "plain" and rng.random() < 0.03:
            declared = t1 - timedelta(minutes=rng.randint(60, 40 * 60))
            declarations.add(
                _declaration(serial(), person, declared, False, False, clock)
            )

    cases = feeds["cases"]
    serial = _Serial("CASE1")
    for person in city.by_role("case"):
        diagnosed = t1 - timedelta(days=rng.randint(1, 5), hours=rng.randint(0, 12))
        cases.add(
            _case(serial(), person, rng, diagnosed, None, clock, onset=diagnosed - day)
        )
    for person in city.by_role("released"):
        diagnosed = t1 - timedelta(days=20)
        cases.add(
            _case(serial(), person, rng, diagnosed, t1 - 3 * day, clock, onset=None)
        )

    orders = feeds["orders"]
    serial = _Serial("ORD1")
    for person in city.by_role("quarantine"):
        orders.add(
            _order(
                serial(),
                person,
                "central-quarantine",
                t1 - 4 * day,
                t1 + 10 * day,
                clock,
            )
        )
    for person in city.by_role("observation"):
        orders.add(
            _order(
                serial(), person, "home-observation", t1 - 3 * day, t1 + 4 * day, clock
            )
        )
    for person in city.by_role("observation-ending"):
        orders.add(
            _order(
                serial(), person, "home-observation", t1 - 7 * day, t1 + 6 * hour, clock
            )
        )

    return _write_all(feeds, directory / "day-1")


def write_day_two(city: City, directory: Path) -> list[WrittenFeed]:
    """Write day two's feeds under ``directory`` in the order they are imported.

    New test results, the risk areas declared after the reported case, the
    case itself, home-observation orders for its secondary contacts and new
    declarations. All rows are sound.
    """
    rng = random.Random(city.seed * 1000 + 2)
    clock = _Clock(city)
    t2 = city.day_two
    hour = timedelta(hours=1)
    day = timedelta(days=1)
    feeds = _feeds(kind for kind in COLUMNS if kind not in _NOT_ON_DAY_TWO)
    reported = city.by_role("reported-case")[0]
    onset = t2 - 2 * day

    areas = feeds["risk-areas"]
    # A risk area is declared from the time the case was out and about
    # there, so stays before the announcement count.
    areas.add(_area("HC-RA-0004", STREET_DISTRICT, STREET_NAME, "high", onset, clock))
    areas.add(_area("HC-RA-0005", COUNTY_DAY_TWO, "", "high", t2 - 3 * day, clock))

    labs = feeds["lab-results"]
    serial = _Serial("LAB2")
    for person in city.people:
        role = person.role
        if role in ("plain", "symptoms") and rng.random() < 0.35:
            sampled = t2 - timedelta(minutes=rng.randint(120, 20 * 60))
            labs.add(_test(serial(), person, sampled, "negative", clock, rng, t2))
        elif role == "recovering":
            labs.add(_test(serial(), person, t2 - 4 * hour, "negative", clock, rng, t2))
        elif role == "new-positive":
            sampled = t2 - timedelta(minutes=rng.randint(6 * 60, 12 * 60))
            labs.add(_test(serial(), person, sampled, "positive", clock, rng, t2))

    cases = feeds["cases"]
    cases.add(
        _case(
            "CASE2-000001",
            reported,
            rng,
            t2 - 6 * hour,
            None,
            clock,
            onset=onset,
            classification="confirmed",
        )
    )

    orders = feeds["orders"]
    serial = _Serial("ORD2")
    for person in city.by_role("contact"):
        orders.add(
            _order(
                serial(), person, "home-observation", t2 - 4 * hour, t2 + 7 * day, clock
            )
        )

    declarations = feeds["declarations"]
    serial = _Serial("DCL2")
    for person in city.by_role("symptoms-new"):
        declared = t2 - timedelta(minutes=rng.randint(30, 10 * 60))
        declarations.add(_declaration(serial(), person, declared, True, False, clock))

    return _write_all(feeds, directory / "day-2")


_NOT_ON_DAY_TWO = frozenset({"identities", "vaccinations", "travel"})


def _feeds(kinds: Iterable[str]) -> dict[str, _Feed]:
    """One feed per kind, in import order; travel comes as one file per mode.

    Railway and civil aviation are separate departments, each sending its
    own manifests, so rail and air segments never share a file.
    """
    feeds: dict[str, _Feed] = {}
    for kind in kinds:
        if kind == "travel":
            for mode in MODES:
                feeds[f"travel-{mode}"] = _Feed(kind, f"travel-{mode}")
        else:
            feeds[kind] = _Feed(kind)
    return feeds


def _write_all(feeds: dict[str, _Feed], directory: Path) -> list[WrittenFeed]:
    return [
        feed.write(directory / f"{feed.name}.csv")
        for feed in feeds.values()
        if feed.rows or feed.bad
    ]


class _Serial:
    """A department's running record ids: ``LAB1-0000001``, ``LAB1-0000002``..."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count:07d}"


def _identities(city: City, feed: _Feed, clock: _Clock, rng: random.Random) -> None:
    t1 = city.day_one
    serial = _Serial("GA")
    for person in city.people:
        # Foreign visitors registered with a passport are not in the mainland
        # identity registry; they stay grey until an official confirms them.
        if person.is_visitor:
            continue
        confirmed = t1 - timedelta(
            days=rng.randint(1, 1500), minutes=rng.randint(0, 900)
        )
        feed.add(
            {
                "record_id": serial(),
                **_who(person, written=True),
                "name": person.name,
                "birth_date": person.birth_date.isoformat(),
                "region_code": person.region_code,
                "street": person.street,
                "outcome": "confirmed",
                "confirmed_at": clock.text(confirmed),
            }
        )
    # Two rows the registry got wrong, for people who are not otherwise in
    # the city: a region code that GB/T 2260 never assigned, and an identity
    # number whose check character does not match.
    taken = {p.doc_number for p in city.people}
    today = t1.astimezone(city.zone).date()
    for field_name, fault in (
        ("region_code", "unknown division code 610199"),
        ("doc_number", "wrong check character"),
    ):
        birth = _birth(rng, today, 20, 70)
        number = _mainland_number(rng, STREET_DISTRICT, birth, taken)
        region = STREET_DISTRICT
        if field_name == "region_code":
            region = "610199"
        else:
            wrong = "0123456789X".replace(number[-1], "")
            number = number[:-1] + rng.choice(wrong)
        feed.add_bad(
            {
                "record_id": serial(),
                "doc_kind": "cn-id",
                "doc_number": number,
                "doc_country": "",
                "name": rng.choice(_SURNAMES) + rng.choice(_GIVEN),
                "birth_date": birth.isoformat(),
                "region_code": region,
                "street": "",
                "outcome": "confirmed",
                "confirmed_at": clock.text(t1 - timedelta(days=30)),
            },
            field_name,
            fault,
        )


def _area(
    record_id: str, code: str, name: str, level: str, starts: datetime, clock: _Clock
) -> dict[str, str]:
    return {
        "record_id": record_id,
        "code": code,
        "name": name,
        "level": level,
        "starts_at": clock.text(starts),
        "ends_at": "",
    }


def _test(
    record_id: str,
    person: Person,
    sampled: datetime,
    result: str,
    clock: _Clock,
    rng: random.Random,
    latest: datetime,
) -> dict[str, str]:
    reported = min(sampled + timedelta(minutes=rng.randint(90, 600)), latest)
    return {
        "record_id": record_id,
        **_who(person, written=person.written_number.endswith("x")),
        "sampled_at": clock.text(sampled),
        "reported_at": clock.text(reported),
        "method": "pcr" if result == "negative" or rng.random() < 0.8 else "antigen",
        "result": result,
        "lab": rng.choice(_LABS),
    }


def _declaration(
    record_id: str,
    person: Person,
    declared: datetime,
    fever: bool,
    respiratory: bool,
    clock: _Clock,
) -> dict[str, str]:
    return {
        "record_id": record_id,
        **_who(person),
        "declared_at": clock.text(declared),
        "fever": "true" if fever else "false",
        "respiratory": "true" if respiratory else "false",
        "visited_code": "",
        "visited_place": "",
        "visited_from": "",
        "visited_to": "",
    }


def _case(
    record_id: str,
    person: Person,
    rng: random.Random,
    diagnosed: datetime,
    released: datetime | None,
    clock: _Clock,
    *,
    onset: datetime | None,
    classification: str | None = None,
) -> dict[str, str]:
    kind = classification or rng.choice(("confirmed", "confirmed", "asymptomatic"))
    return {
        "record_id": record_id,
        **_who(person),
        "classification": kind,
        "onset_at": clock.text(onset) if onset and kind == "confirmed" else "",
        "diagnosed_at": clock.text(diagnosed),
        "isolated_at": clock.text(diagnosed + timedelta(hours=1)),
        "released_at": clock.text(released) if released else "",
    }


def _order(
    record_id: str,
    person: Person,
    kind: str,
    starts: datetime,
    ends: datetime,
    clock: _Clock,
) -> dict[str, str]:
    return {
        "record_id": record_id,
        **_who(person),
        "kind": kind,
        "starts_at": clock.text(starts),
        "ends_at": clock.text(ends),
    }


@dataclass(frozen=True, slots=True)
class _Leg:
    mode: str
    carrier: str
    number: str
    dep: Station
    dep_at: datetime
    arr: Station
    arr_at: datetime
    stops: tuple[Station, ...] = ()


def _travel_day_one(
    city: City, feeds: dict[str, _Feed], clock: _Clock, rng: random.Random
) -> None:
    t1 = city.day_one
    hour = timedelta(hours=1)
    day = timedelta(days=1)
    # Each department numbers its own manifest records.
    serials = {"rail": _Serial("RW"), "air": _Serial("CA")}
    for person in city.people:
        for leg in _trip(person.role, t1, hour, day, rng):
            row = _segment(serials[leg.mode](), person, leg, clock, rng)
            feeds[f"travel-{leg.mode}"].add(row)


def _trip(
    role: str, t1: datetime, hour: timedelta, day: timedelta, rng: random.Random
) -> Iterator[_Leg]:
    """The legs each travelling role takes; every leg ends before day one."""
    jitter = timedelta(minutes=rng.randint(0, 90))
    if role == "high-stay":
        # Three days in Pudong while it was a high-risk area: red.
        out = t1 - 5 * day - jitter
        yield _Leg(
            "air",
            "MU",
            "MU2157",
            XIAN_AIRPORT,
            out,
            PUDONG_AIRPORT,
            out + 150 * _MINUTE,
        )
        back = t1 - 2 * day - jitter
        yield _Leg(
            "air",
            "MU",
            "MU2158",
            PUDONG_AIRPORT,
            back,
            XIAN_AIRPORT,
            back + 170 * _MINUTE,
        )
    elif role == "connection":
        # Two hours between flights at Pudong airport is a connection, not a
        # stay of four hours or more: green.
        out = t1 - 30 * hour - jitter
        yield _Leg(
            "air",
            "MU",
            "MU2161",
            XIAN_AIRPORT,
            out,
            PUDONG_AIRPORT,
            out + 150 * _MINUTE,
        )
        on = out + 270 * _MINUTE
        yield _Leg(
            "air", "MU", "MU6335", PUDONG_AIRPORT, on, SANYA_AIRPORT, on + 230 * _MINUTE
        )
    elif role == "medium-stay":
        # Two days in Chenghua while it was a medium-risk area: yellow.
        out = t1 - 4 * day - jitter
        yield _Leg(
            "rail", "CR", "D1917", XIAN_NORTH, out, CHENGDU_EAST, out + 210 * _MINUTE
        )
        back = t1 - 2 * day - jitter
        yield _Leg(
            "rail", "CR", "D1918", CHENGDU_EAST, back, XIAN_NORTH, back + 210 * _MINUTE
        )
    elif role == "county-stay":
        # In Wuchang across the days before it is declared high-risk on day
        # two, with the area's start set before the stay: red on day two.
        out = t1 - 60 * hour - jitter
        yield _Leg("rail", "CR", "Z129", XIAN, out, WUCHANG, out + 8 * hour)
        back = t1 - 8 * hour - jitter
        yield _Leg("rail", "CR", "Z130", WUCHANG, back, XIAN, back + 7 * hour)
    elif role == "passed-through":
        # A train that stops in Wuchang without the resident leaving it:
        # Wuchang is kept as a station passed through, never as a stay.
        out = t1 - 40 * hour - jitter
        yield _Leg(
            "rail",
            "CR",
            "K82",
            XIAN,
            out,
            GUANGZHOU_EAST,
            out + 22 * hour,
            (ZHENGZHOU, WUCHANG, CHANGSHA),
        )
    elif role == "short-connection":
        # Off one train at Wuchang and onto the next within the hour.
        out = t1 - 30 * hour - jitter
        yield _Leg("rail", "CR", "Z163", XIAN, out, WUCHANG, out + 7 * hour)
        on = out + 8 * hour
        yield _Leg(
            "rail", "CR", "G1001", WUCHANG, on, CHANGSHA_SOUTH, on + 100 * _MINUTE
        )
    elif role == "traveller":
        destination = rng.choice((BEIJING_WEST, GUANGZHOU_SOUTH, CHANGSHA_SOUTH))
        out = t1 - timedelta(days=rng.randint(3, 9)) - jitter
        number = rng.choice(("G652", "G818", "G832", "G2032"))
        yield _Leg("rail", "CR", number, XIAN_NORTH, out, destination, out + 5 * hour)
        if rng.random() < 0.6:
            back = out + timedelta(days=rng.randint(1, 2))
            yield _Leg(
                "rail",
                "CR",
                "G" + str(int(number[1:]) + 1),
                destination,
                back,
                XIAN_NORTH,
                back + 5 * hour,
            )


_MINUTE = timedelta(minutes=1)
#: Travel modes, each sent by its own department in its own file.
MODES = ("rail", "air")


def _segment(
    record_id: str, person: Person, leg: _Leg, clock: _Clock, rng: random.Random
) -> dict[str, str]:
    if leg.mode == "rail":
        carriage = f"{rng.randint(1, 16):02d}"
        seat = f"{rng.randint(1, 20):02d}{rng.choice('ABCDF')}"
    else:
        carriage = ""
        seat = f"{rng.randint(1, 40)}{rng.choice('ABCDEF')}"
    return {
        "record_id": record_id,
        **_who(person),
        "mode": leg.mode,
        "carrier": leg.carrier,
        "service_number": leg.number,
        "service_date": clock.date(leg.dep_at),
        "carriage": carriage,
        "seat": seat,
        "dep_station": leg.dep.name,
        "dep_code": leg.dep.code,
        "dep_at": clock.text(leg.dep_at),
        "arr_station": leg.arr.name,
        "arr_code": leg.arr.code,
        "arr_at": clock.text(leg.arr_at),
        "stops": _stops(leg.stops),
    }


def _stops(stops: Iterable[Station]) -> str:
    return ";".join(f"{station.name}:{station.code}" for station in stops)
