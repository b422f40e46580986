"""The default rule set applied to facts, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from healthcode.rules.ruleset import load_rule_set
from healthcode.status.engine import evaluate
from healthcode.status.facts import Area, ResidentRecords, area_prefix, build_facts

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
RULES = load_rule_set("default")


def resident(state: str = "confirmed", region: str = "610113") -> ResidentRecords:
    return ResidentRecords(1, state, "cn-id", region, None)


def add_test(records: ResidentRecords, hours_ago: float, result: str, sid: str) -> None:
    records.tests.append(
        (1, "health", sid, NOW - timedelta(hours=hours_ago), result, "pcr")
    )


def colour_of(records: ResidentRecords, areas=(), now: datetime = NOW):
    return evaluate(RULES, build_facts(records, list(areas), now), now)


def area(code: str, level: str, days_ago: float, name: str | None = None) -> Area:
    return Area(
        code,
        area_prefix(code),
        name,
        level,
        NOW - timedelta(days=days_ago),
        None,
        "health-commission",
        f"area-{code}",
    )


def travel(
    records: ResidentRecords,
    sid: str,
    dep_code: str,
    dep_at: datetime,
    arr_code: str,
    arr_at: datetime,
    stops: list[dict[str, str]] | None = None,
) -> None:
    records.travel.append(
        (
            1,
            "railway",
            sid,
            "rail",
            "CR",
            "G88",
            "dep",
            dep_code,
            dep_at,
            "arr",
            arr_code,
            arr_at,
            stops or [],
        )
    )


def test_a_resident_with_only_negative_tests_is_green():
    records = resident()
    add_test(records, 20, "negative", "t1")

    result = colour_of(records)

    assert result.colour == "green"
    assert result.reasons == []
    assert result.changes_at is None


def test_unconfirmed_identity_is_grey_with_its_reason():
    records = resident(state="pending")

    result = colour_of(records)

    assert result.colour == "grey"
    assert [r["rule"] for r in result.reasons] == ["GREY-IDENTITY-PENDING"]
    assert result.reasons[0]["text"]["en"] == "Identity being confirmed"


def test_a_positive_test_is_red_until_fourteen_days_pass():
    records = resident()
    add_test(records, 24, "positive", "t-pos")

    result = colour_of(records)

    assert result.colour == "red"
    assert result.reasons[0]["evidence"]["ref"] == {
        "kind": "lab-result",
        "department": "health",
        "recordId": "t-pos",
    }
    assert result.changes_at == NOW - timedelta(hours=24) + timedelta(days=14)
    assert result.changes_to == "green"


def test_two_negatives_a_day_apart_clear_a_positive():
    records = resident()
    add_test(records, 72, "positive", "p")
    add_test(records, 48, "negative", "n1")
    add_test(records, 24, "negative", "n2")

    assert colour_of(records).colour == "green"


def test_two_negatives_less_than_a_day_apart_do_not_clear_a_positive():
    records = resident()
    add_test(records, 72, "positive", "p")
    add_test(records, 30, "negative", "n1")
    add_test(records, 10, "negative", "n2")

    assert colour_of(records).colour == "red"


def test_home_observation_turns_green_by_itself_when_the_order_ends():
    records = resident()
    records.orders.append(
        (
            1,
            "health",
            "o1",
            "home-observation",
            NOW - timedelta(days=1),
            NOW + timedelta(days=6),
        )
    )

    result = colour_of(records)
    later = colour_of(records, now=NOW + timedelta(days=6))

    assert result.colour == "yellow"
    assert result.changes_at == NOW + timedelta(days=6)
    assert result.changes_to == "green"
    assert later.colour == "green"


def test_a_released_case_is_yellow_for_seven_days_then_green():
    records = resident()
    released = NOW - timedelta(days=1)
    records.cases.append(
        (1, "health", "c1", "confirmed", None, NOW - timedelta(days=15), None, released)
    )

    result = colour_of(records)

    assert result.colour == "yellow"
    assert [r["rule"] for r in result.reasons] == ["YELLOW-AFTER-RELEASE"]
    assert result.changes_at == released + timedelta(days=7)
    assert result.changes_to == "green"


def test_an_active_case_is_red_and_stays_red_until_a_new_record():
    records = resident()
    records.cases.append(
        (1, "health", "c1", "asymptomatic", None, NOW - timedelta(days=2), None, None)
    )

    result = colour_of(records)

    assert result.colour == "red"
    assert result.changes_at is None


def test_a_future_central_quarantine_order_announces_when_it_turns_red():
    records = resident()
    starts = NOW + timedelta(hours=3)
    records.orders.append((1, "health", "o2", "central-quarantine", starts, None))

    result = colour_of(records)

    assert result.colour == "green"
    assert result.changes_at == starts
    assert result.changes_to == "red"


def test_four_hours_in_a_high_risk_county_is_red():
    records = resident()
    arrived = NOW - timedelta(days=2)
    travel(records, "s1", "610112", arrived - timedelta(hours=5), "420106", arrived)
    travel(
        records,
        "s2",
        "420106",
        arrived + timedelta(hours=4),
        "610112",
        arrived + timedelta(hours=9),
    )

    result = colour_of(records, [area("420106", "high", days_ago=5)])

    assert result.colour == "red"
    reason = result.reasons[0]
    assert reason["rule"] == "RED-HIGH-RISK-STAY"
    assert reason["evidence"]["minutes"] == 240


def test_passing_through_a_high_risk_area_is_not_a_stay():
    records = resident()
    departed = NOW - timedelta(days=2)
    stops = [{"station": "武汉", "code": "420106"}]
    travel(
        records,
        "s1",
        "110105",
        departed,
        "610112",
        departed + timedelta(hours=6),
        stops,
    )

    result = colour_of(records, [area("420106", "high", days_ago=5)])

    assert result.colour == "green"


def test_a_short_connection_in_a_high_risk_area_is_not_a_stay():
    records = resident()
    arrived = NOW - timedelta(days=2)
    travel(records, "s1", "110105", arrived - timedelta(hours=4), "420106", arrived)
    travel(
        records,
        "s2",
        "420106",
        arrived + timedelta(hours=1),
        "610112",
        arrived + timedelta(hours=6),
    )

    result = colour_of(records, [area("420106", "high", days_ago=5)])

    assert result.colour == "green"


def test_a_prefecture_level_area_covers_its_districts():
    records = resident()
    arrived = NOW - timedelta(days=3)
    travel(records, "s1", "610112", arrived - timedelta(hours=5), "420106", arrived)

    result = colour_of(records, [area("420100", "medium", days_ago=5)])

    assert result.colour == "yellow"
    assert result.reasons[0]["rule"] == "YELLOW-MEDIUM-RISK-STAY"


def declare_visit(records: ResidentRecords, code: str, place: str | None) -> None:
    records.declarations.append(
        (
            1,
            "resident",
            "d1",
            NOW - timedelta(hours=2),
            False,
            False,
            code,
            place,
            NOW - timedelta(days=1, hours=6),
            NOW - timedelta(days=1),
        )
    )


def test_a_named_street_area_needs_that_street():
    records = resident()
    declare_visit(records, "610113", "小寨路街道")
    elsewhere = area("610113", "medium", days_ago=5, name="曲江街道")
    there = area("610113", "medium", days_ago=5, name="小寨路街道")

    assert colour_of(records, [elsewhere]).colour == "green"
    assert colour_of(records, [there]).colour == "yellow"


def test_a_declared_stay_in_a_high_risk_area_is_yellow_never_red():
    records = resident()
    declare_visit(records, "610113", "小寨路街道")

    result = colour_of(records, [area("610113", "high", days_ago=5)])

    assert result.colour == "yellow"
    assert [r["rule"] for r in result.reasons] == ["YELLOW-DECLARED-HIGH-RISK-STAY"]


def test_a_manifest_stay_in_a_named_street_area_needs_a_station_there():
    records = resident()
    arrived = NOW - timedelta(days=2)
    travel(records, "s1", "110105", arrived - timedelta(hours=5), "610113", arrived)

    result = colour_of(records, [area("610113", "high", days_ago=5, name="小寨路街道")])

    assert result.colour == "green"


def test_declared_fever_is_yellow_until_a_negative_test():
    records = resident()
    records.declarations.append(
        (
            1,
            "resident",
            "d1",
            NOW - timedelta(hours=3),
            True,
            False,
            None,
            None,
            None,
            None,
        )
    )

    before = colour_of(records)
    add_test(records, 1, "negative", "after-fever")
    after = colour_of(records)

    assert before.colour == "yellow"
    assert before.reasons[0]["rule"] == "YELLOW-SYMPTOMS"
    assert after.colour == "green"


@pytest.mark.parametrize("state", ["pending", "rejected"])
def test_the_worst_colour_wins_over_grey(state):
    records = resident(state=state)
    add_test(records, 5, "positive", "p")

    result = colour_of(records)

    assert result.colour == "red"
    assert {r["colour"] for r in result.reasons} == {"red", "grey"}


def test_a_rule_that_fails_on_its_data_is_reported_and_does_not_hold():
    from healthcode.rules.ruleset import parse_rule_set

    document = {
        "id": "strict",
        "version": "1.0.0",
        "rules": [
            {
                "id": "RED-ODD-TEST",
                "version": "1.0.0",
                "validFrom": "2026-01-01T00:00:00Z",
                "regions": ["*"],
                "colour": "red",
                "evidence": "tests",
                "condition": {"<": [{"var": "current.result"}, 3]},
                "reason": {"zh": "测试", "en": "test"},
                "tests": [{"data": {"current": {"result": 1}}, "expected": True}],
            }
        ],
    }
    rule_set = parse_rule_set(document)
    records = resident()
    add_test(records, 2, "positive", "p")

    result = evaluate(rule_set, build_facts(records, [], NOW), NOW)

    assert result.colour == "green"
    assert [(f.rule, f.version) for f in result.failures] == [("RED-ODD-TEST", "1.0.0")]
