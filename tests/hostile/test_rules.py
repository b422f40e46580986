"""Hostile rule-set files: each must be refused with an InvalidRuleSet, not crash."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from healthcode.rules.errors import InvalidRuleSet
from healthcode.rules.ruleset import load_rule_set


def default_document() -> dict[str, Any]:
    shipped = resources.files("healthcode.rules") / "data" / "default.json"
    return json.loads(shipped.read_text(encoding="utf-8"))


def with_rule(**fields: Any) -> dict[str, Any]:
    """The default rule set with one more rule, built from ``fields``."""
    rule: dict[str, Any] = {
        "id": "RED-HOSTILE",
        "version": "1.0.0",
        "validFrom": "2026-01-01T00:00:00Z",
        "validTo": None,
        "regions": ["*"],
        "colour": "red",
        "reason": {"zh": "测试", "en": "test"},
    }
    rule.update(fields)
    document = default_document()
    document["rules"].append(rule)
    return document


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "rules.json"
    path.write_bytes(content)
    return path


def test_deeply_nested_json_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b"[" * 100_000 + b"]" * 100_000)

    with pytest.raises(InvalidRuleSet):
        load_rule_set(path)


def test_integer_of_five_thousand_digits_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path, b'{"id": "x", "version": "1.0.0", "rules": [' + b"1" * 5000 + b"]}"
    )

    with pytest.raises(InvalidRuleSet):
        load_rule_set(path)


def test_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    text = json.dumps(default_document(), ensure_ascii=False)
    path = write(tmp_path, text.encode("gb18030"))

    with pytest.raises(InvalidRuleSet):
        load_rule_set(path)


def test_plus_time_with_an_enormous_amount_is_refused(tmp_path: Path) -> None:
    document = with_rule(
        colour="yellow",
        evidence="exposures",
        condition={
            "after": [
                {"plusTime": [{"var": "current.at"}, 10**20, "day"]},
                {"plusTime": [{"var": "data.now"}, 0, "day"]},
            ]
        },
        tests=[
            {
                "data": {
                    "current": {"at": "2026-01-01T00:00:00Z"},
                    "data": {"now": "2026-01-01T00:00:00Z"},
                },
                "expected": True,
            }
        ],
    )
    path = write(tmp_path, json.dumps(document).encode())

    with pytest.raises(InvalidRuleSet):
        load_rule_set(path)


@pytest.mark.parametrize(
    ("evidence", "reads"),
    [
        ("tests", "data.exposures"),
        ("orders", "data.declarations"),
        ("cases", "data.declaredRiskStays"),
    ],
)
def test_red_rule_resting_on_weak_evidence_through_its_condition_is_refused(
    tmp_path: Path, evidence: str, reads: str
) -> None:
    # Holds for any record of an authoritative kind, a negative test say,
    # as soon as the resident has a single item of a weak kind.
    document = with_rule(
        evidence=evidence,
        condition={"!": [{"!": [{"var": reads}]}]},
        tests=[
            {"data": {"current": {}, "data": {reads[5:]: [{}]}}, "expected": True},
            {"data": {"current": {}, "data": {reads[5:]: []}}, "expected": False},
        ],
    )
    path = write(tmp_path, json.dumps(document).encode())

    with pytest.raises(InvalidRuleSet, match="authoritative"):
        load_rule_set(path)


@pytest.mark.parametrize("expected", [1, "x"])
def test_rule_whose_tests_expect_a_non_boolean_is_refused(
    tmp_path: Path, expected: object
) -> None:
    document = with_rule(
        colour="yellow",
        evidence="declarations",
        condition={"var": "current.fever"},
        tests=[{"data": {"current": {"fever": expected}}, "expected": expected}],
    )
    path = write(tmp_path, json.dumps(document).encode())

    with pytest.raises(InvalidRuleSet, match="boolean"):
        load_rule_set(path)
