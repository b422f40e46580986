"""Loading, validating and selecting rules from rule-set documents."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from healthcode.rules.errors import InvalidRuleSet
from healthcode.rules.ruleset import load_rule_set, parse_rule_set

SHIPPED = load_rule_set("default")


def default_document() -> dict:
    from importlib import resources

    text = (resources.files("healthcode.rules") / "data" / "default.json").read_text()
    return json.loads(text)


def rule_of(document: dict, rule_id: str) -> dict:
    return next(rule for rule in document["rules"] if rule["id"] == rule_id)


def test_the_default_rule_set_loads_with_every_rule_of_the_design():
    ids = {rule.id for rule in SHIPPED.rules}

    assert SHIPPED.label == "default@1.0.0"
    assert ids == {
        "GREY-IDENTITY-PENDING",
        "GREY-IDENTITY-REJECTED",
        "RED-CASE",
        "RED-CENTRAL-QUARANTINE",
        "RED-POSITIVE-TEST",
        "RED-HIGH-RISK-STAY",
        "YELLOW-HOME-OBSERVATION",
        "YELLOW-AFTER-RELEASE",
        "YELLOW-MEDIUM-RISK-STAY",
        "YELLOW-DECLARED-HIGH-RISK-STAY",
        "YELLOW-DECLARED-MEDIUM-RISK-STAY",
        "YELLOW-SYMPTOMS",
        "YELLOW-EXPOSURE",
        "YELLOW-NO-RECENT-TEST",
    }


def test_every_default_rule_carries_tests_for_both_outcomes():
    for rule in default_document()["rules"]:
        outcomes = {case["expected"] for case in rule["tests"]}

        assert outcomes == {True, False}, rule["id"]


def test_the_no_recent_test_rule_is_off_until_a_region_lists_itself():
    now = datetime(2026, 3, 1, tzinfo=UTC)

    chosen = {rule.id for rule in SHIPPED.select("610113", now)}

    assert "YELLOW-NO-RECENT-TEST" not in chosen
    assert "RED-CASE" in chosen


def test_a_region_switches_a_rule_on_by_its_code_prefix():
    document = default_document()
    rule_of(document, "YELLOW-NO-RECENT-TEST")["regions"] = ["6101"]
    rule_set = parse_rule_set(document)
    now = datetime(2026, 3, 1, tzinfo=UTC)

    in_xian = {rule.id for rule in rule_set.select("610113", now)}
    in_beijing = {rule.id for rule in rule_set.select("110105", now)}

    assert "YELLOW-NO-RECENT-TEST" in in_xian
    assert "YELLOW-NO-RECENT-TEST" not in in_beijing


def test_the_highest_version_valid_at_the_clock_is_in_force():
    document = default_document()
    newer = copy.deepcopy(rule_of(document, "RED-CASE"))
    newer["version"] = "1.1.0"
    newer["validFrom"] = "2026-06-01T00:00:00Z"
    document["rules"].append(newer)
    rule_set = parse_rule_set(document)

    before = [
        r
        for r in rule_set.select(None, datetime(2026, 5, 31, tzinfo=UTC))
        if r.id == "RED-CASE"
    ]
    after = [
        r
        for r in rule_set.select(None, datetime(2026, 6, 1, tzinfo=UTC))
        if r.id == "RED-CASE"
    ]

    assert [r.version for r in before] == ["1.0.0"]
    assert [r.version for r in after] == ["1.1.0"]


def refused(document: dict) -> str:
    with pytest.raises(InvalidRuleSet) as caught:
        parse_rule_set(document)
    return str(caught.value)


def test_a_rule_whose_own_test_fails_is_refused_by_name():
    document = default_document()
    rule_of(document, "RED-POSITIVE-TEST")["tests"][0]["expected"] = False

    message = refused(document)

    assert message.startswith("Rule RED-POSITIVE-TEST: test 'recent positive'")


def test_a_red_rule_resting_on_a_check_in_or_exposure_is_refused():
    document = default_document()
    rule_of(document, "YELLOW-EXPOSURE")["colour"] = "red"

    message = refused(document)

    assert "YELLOW-EXPOSURE" in message
    assert "authoritative record" in message


def test_an_invalid_condition_is_refused_with_its_path():
    document = default_document()
    rule_of(document, "RED-CASE")["condition"] = {"and": [{"var": 3}]}

    message = refused(document)

    assert message.startswith("Rule RED-CASE: condition is not a valid CertLogic")


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("id", "red case", "ids look like"),
        ("version", "1.0", "is not x.y.z"),
        ("colour", "purple", "is not one of grey, yellow, red"),
        ("colour", "green", "is not one of grey, yellow, red"),
        ("regions", ["61x"], "regions must be"),
        ("reason", {"zh": "只有中文"}, "both zh and en"),
        ("evidence", "checkins", "is not one of"),
        ("validTo", "2025-01-01T00:00:00Z", "validTo is not after validFrom"),
        ("tests", [], "it has no tests"),
    ],
)
def test_malformed_fields_are_refused_with_the_problem(field, value, fragment):
    document = default_document()
    rule_of(document, "RED-CASE")[field] = value

    assert fragment in refused(document)


def test_an_unknown_shipped_name_is_refused():
    with pytest.raises(InvalidRuleSet, match="No shipped rule set is named"):
        load_rule_set("no-such-set")


def test_a_file_that_is_not_json_is_refused_with_its_line(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('{"id": "x",\n oops}', encoding="utf-8")

    with pytest.raises(InvalidRuleSet, match=r"not valid JSON \(line 2\)"):
        load_rule_set(path)
