"""Overrides as facts: the colour they set, their reason first, their expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from healthcode.rules.ruleset import load_rule_set
from healthcode.status.engine import evaluate
from healthcode.status.facts import ResidentRecords, build_facts

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
RULES = load_rule_set("default")


def resident() -> ResidentRecords:
    return ResidentRecords(1, "confirmed", "cn-id", "610113", None)


def override(
    records: ResidentRecords,
    number: int,
    colour: str,
    *,
    set_hours_ago: float = 1,
    lasts_hours: float = 48,
    ended_hours_ago: float | None = None,
    reason: str = "Close contact of a confirmed case, pending the trace.",
) -> None:
    set_at = NOW - timedelta(hours=set_hours_ago)
    ended = None if ended_hours_ago is None else NOW - timedelta(hours=ended_hours_ago)
    records.overrides.append(
        (
            1,
            number,
            colour,
            reason,
            "health-official",
            set_at,
            set_at + timedelta(hours=lasts_hours),
            ended,
        )
    )


def home_observation(records: ResidentRecords) -> None:
    records.orders.append(
        (1, "health", "ORD-1", "home-observation", NOW - timedelta(days=1), None)
    )


def colour_of(records: ResidentRecords, now: datetime = NOW):
    return evaluate(RULES, build_facts(records, [], now), now)


def test_an_override_sets_the_colour_and_explains_itself_first() -> None:
    records = resident()
    override(records, 7, "red")

    result = colour_of(records)

    assert result.colour == "red"
    first = result.reasons[0]
    assert first["rule"] == "OFFICIAL-OVERRIDE"
    assert first["text"]["en"] == (
        "Set by an official (health-official): Close contact of a confirmed case,"
        " pending the trace."
    )
    assert first["until"] == "2026-03-12T03:00:00+00:00"
    assert first["evidence"]["authorRole"] == "health-official"
    assert first["evidence"]["ref"] == {
        "kind": "override",
        "department": "officials",
        "recordId": "override-7",
    }


def test_its_expiry_is_the_next_change_back_to_the_computed_colour() -> None:
    records = resident()
    override(records, 7, "red")

    result = colour_of(records)

    expiry = NOW + timedelta(hours=47)
    assert (result.changes_at, result.changes_to) == (expiry, "green")
    assert result.recheck_at == expiry
    assert colour_of(records, expiry).colour == "green"


def test_a_green_override_corrects_a_wrong_colour_and_keeps_the_rules_listed() -> None:
    records = resident()
    home_observation(records)
    override(records, 8, "green", reason="The order named the wrong person.")

    result = colour_of(records)

    assert result.colour == "green"
    assert [r["rule"] for r in result.reasons][0] == "OFFICIAL-OVERRIDE"
    overridden = result.reasons[1:]
    assert overridden and all(reason["overridden"] for reason in overridden)
    assert {reason["colour"] for reason in overridden} == {"yellow"}
    assert result.changes_to == "yellow"


def test_an_override_ended_early_or_expired_no_longer_applies() -> None:
    ended, expired = resident(), resident()
    override(ended, 1, "red", ended_hours_ago=0.5)
    override(expired, 2, "red", set_hours_ago=50, lasts_hours=48)

    assert colour_of(ended).colour == "green"
    assert colour_of(expired).colour == "green"
    assert colour_of(ended).reasons == []


def test_the_newest_override_wins() -> None:
    records = resident()
    override(records, 1, "red", set_hours_ago=5)
    override(records, 2, "yellow", set_hours_ago=1, lasts_hours=2)

    now_colour = colour_of(records)
    later = colour_of(records, NOW + timedelta(hours=1, minutes=1))

    assert now_colour.colour == "yellow"
    assert (now_colour.changes_at, now_colour.changes_to) == (
        NOW + timedelta(hours=1),
        "red",
    )
    assert later.colour == "red"
