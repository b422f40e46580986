import json
from importlib import resources

import pytest

from healthcode.identity import divisions
from healthcode.identity.divisions import (
    Division,
    counties,
    division,
    full_name,
    in_use_between,
    is_known,
    parent,
    streets,
    within,
)
from healthcode.identity.errors import UnknownDivision

XIAN_CURRENT = [
    ("610102", "新城区"),
    ("610103", "碑林区"),
    ("610104", "莲湖区"),
    ("610111", "灞桥区"),
    ("610112", "未央区"),
    ("610113", "雁塔区"),
    ("610114", "阎良区"),
    ("610115", "临潼区"),
    ("610116", "长安区"),
    ("610117", "高陵区"),
    ("610118", "鄠邑区"),
    ("610122", "蓝田县"),
    ("610124", "周至县"),
]
XIAN_URBAN = ["610102", "610103", "610104", "610111", "610112", "610113", "610116"]


# division()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("610113", Division("610113", "雁塔区", "county", True)),
        ("610100", Division("610100", "西安市", "prefecture", True)),
        ("610000", Division("610000", "陕西省", "province", True)),
        ("610125", Division("610125", "户县", "county", False)),
        ("610202", Division("610202", "王益区", "county", True)),
        ("110103", Division("110103", "崇文区", "county", False)),
        ("810000", Division("810000", "香港特别行政区", "province", True)),
    ],
)
def test_division_gives_the_newest_name(code, expected):
    result = division(code)

    assert result == expected


def test_unknown_code_is_refused_with_the_code():
    with pytest.raises(UnknownDivision) as caught:
        division("610199")

    assert caught.value.code == "unknown_division"
    assert (
        str(caught.value) == "The division code 610199 is not in the GB/T 2260 table."
    )


@pytest.mark.parametrize(
    "code", ["6101", "6101130", "61011a", "６１０１１３", "", None, 610113]
)
def test_malformed_code_is_refused(code):
    with pytest.raises(UnknownDivision) as caught:
        division(code)

    assert str(caught.value) == "A division code must be six ASCII digits."


def test_table_is_parsed_once():
    divisions._table.cache_clear()

    division("610113")
    division("110101")
    full_name("429004")

    assert divisions._table.cache_info().misses == 1


# is_known() and in_use_between()


@pytest.mark.parametrize(
    ("code", "year", "known"),
    [
        ("610113", None, True),
        ("610113", 1982, False),
        ("610113", 1983, True),
        ("610113", 2026, True),
        ("610125", 2016, True),
        ("610125", 2017, False),
        ("610121", 2002, True),
        ("610121", 2003, False),
        ("610323", 1950, True),
        ("610202", 1990, True),
        ("610202", 2010, True),
        ("610199", None, False),
        ("61011", None, False),
        ("abcdef", None, False),
        (None, None, False),
    ],
)
def test_is_known(code, year, known):
    result = is_known(code, year=year)

    assert result is known


@pytest.mark.parametrize(
    ("code", "first", "last", "used"),
    [
        ("610113", 1975, 2026, True),
        ("610113", 1975, 1982, False),
        ("610121", 2005, 2026, False),
        ("610121", 1990, 2026, True),
        ("610121", 2002, 2002, True),
        ("610199", 1990, 2026, False),
        ("6101", 1990, 2026, False),
    ],
)
def test_in_use_between(code, first, last, used):
    result = in_use_between(code, first, last)

    assert result is used


# parent()


def test_parent_chain_of_a_xian_district():
    prefecture = parent("610113")
    province = parent(prefecture.code)

    assert prefecture == Division("610100", "西安市", "prefecture", True)
    assert province == Division("610000", "陕西省", "province", True)
    assert parent("610000") is None


@pytest.mark.parametrize(
    ("code", "parent_code"),
    [
        ("110101", "110000"),
        ("500101", "500000"),
        ("429004", "420000"),
        ("610101", "610100"),
    ],
)
def test_parent_skips_grouping_entries(code, parent_code):
    result = parent(code)

    assert result.code == parent_code


def test_parent_of_unknown_code_is_refused():
    with pytest.raises(UnknownDivision):
        parent("610199")


# counties()


def test_current_counties_of_xian():
    result = counties("610100")

    assert [(c.code, c.name) for c in result] == XIAN_CURRENT
    assert all(c.current and c.level == "county" for c in result)


def test_all_counties_of_xian_include_retired_ones_but_no_groupings():
    result = counties("610100", current_only=False)

    names = [c.name for c in result]
    assert "户县" in names
    assert "长安县" in names
    assert "市辖区" not in names
    assert "市区" not in names
    assert len(names) == len(XIAN_CURRENT) + 4


def test_counties_of_a_municipality_grouping():
    current = counties("110100")
    every = counties("110100", current_only=False)

    assert "东城区" in [c.name for c in current]
    assert "崇文区" not in [c.name for c in current]
    assert "崇文区" in [c.name for c in every]


@pytest.mark.parametrize("code", ["610000", "610113"])
def test_counties_of_a_non_prefecture_is_refused(code):
    with pytest.raises(UnknownDivision) as caught:
        counties(code)

    assert str(caught.value) == f"No prefecture-level division has the code {code}."


# within()


@pytest.mark.parametrize(
    ("code", "area", "inside"),
    [
        ("610113", "610000", True),
        ("610113", "610100", True),
        ("610113", "610113", True),
        ("610125", "610100", True),
        ("610202", "610100", False),
        ("620102", "610000", False),
        ("610112", "610113", False),
        ("610199", "610100", True),
    ],
)
def test_within_compares_by_the_area_level(code, area, inside):
    result = within(code, area)

    assert result is inside


def test_within_refuses_an_unknown_area():
    with pytest.raises(UnknownDivision):
        within("610113", "619900")


def test_within_refuses_a_malformed_code():
    with pytest.raises(UnknownDivision):
        within("6101", "610000")


# full_name()


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("610113", "陕西省西安市雁塔区"),
        ("610100", "陕西省西安市"),
        ("610000", "陕西省"),
        ("110101", "北京市东城区"),
        ("500101", "重庆市万州区"),
        ("429004", "湖北省仙桃市"),
        ("610101", "陕西省西安市市辖区"),
    ],
)
def test_full_name(code, name):
    result = full_name(code)

    assert result == name


# streets()


def test_streets_of_yanta():
    result = streets("610113")

    assert "小寨路街道" in result
    assert "大雁塔街道" in result


def test_streets_returns_a_copy():
    first = streets("610113")
    first.clear()

    assert streets("610113") != []


def test_county_without_street_data_has_none():
    result = streets("110101")

    assert result == []


@pytest.mark.parametrize("code", ["610100", "610000", "610199"])
def test_streets_of_a_non_county_is_refused(code):
    with pytest.raises(UnknownDivision):
        streets(code)


def test_street_data_is_keyed_by_current_xian_counties():
    raw = json.loads(
        resources.files("healthcode.identity")
        .joinpath("data", "streets.json")
        .read_text("utf-8")
    )

    current = {code for code, _ in XIAN_CURRENT}
    assert set(raw) <= current
    for code in XIAN_URBAN:
        assert 4 <= len(raw[code]) <= 10
    for names in raw.values():
        assert len(names) == len(set(names))
        assert all(name.endswith(("街道", "镇")) for name in names)
