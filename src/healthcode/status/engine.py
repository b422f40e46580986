"""Apply a rule set to one resident's facts: colour, reasons, next change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import structlog

from healthcode.rules.certlogic import parse_datetime
from healthcode.rules.errors import CertLogicError
from healthcode.rules.ruleset import SEVERITY, Rule, RuleSet

log = structlog.get_logger(__name__)

# How many future instants are tried when looking for the next change of
# colour. Each try is one evaluation of the resident's rules; a resident with
# more pending edges than this still gets a correct ``recheck_at``, only the
# promise of "changes at" stops at the horizon.
NEXT_CHANGE_TRIES = 12


@dataclass(slots=True)
class RuleFailure:
    """A rule that could not be evaluated; it counted as not holding."""

    rule: str
    version: str
    message: str


@dataclass(slots=True)
class Evaluation:
    colour: str
    reasons: list[dict[str, Any]]
    as_of: datetime
    changes_at: datetime | None = None
    changes_to: str | None = None
    recheck_at: datetime | None = None
    failures: list[RuleFailure] = field(default_factory=list)


def evaluate(
    rule_set: RuleSet, facts: dict[str, Any], now: datetime, *, explain: bool = True
) -> Evaluation:
    """Colour a resident at ``now`` and say when that will change by itself."""
    rules = rule_set.select(facts["resident"]["regionCode"], now)
    computed, hits, edges, failures = _apply(rules, facts, now)
    # An official's override sets the colour while it lasts; the rules' own
    # reasons stay listed, marked as overridden, and its expiry is an edge
    # at which the computed colour comes back by itself.
    override = _override_at(facts, now)
    edges.extend(item["expiresAt"] for item in facts.get("overrides", ()))
    colour = override["colour"] if override is not None else computed
    result = Evaluation(colour=colour, reasons=[], as_of=now, failures=failures)
    if explain:
        result.reasons = [_reason(rule, item, until) for rule, item, until in hits]
        if override is not None:
            result.reasons = [
                _override_reason(override),
                *(dict(reason, overridden=True) for reason in result.reasons),
            ]
    future = sorted(edge for edge in edges if edge > now)
    if not future:
        return result
    result.recheck_at = future[0]
    for moment in future[:NEXT_CHANGE_TRIES]:
        later = dict(facts, now=moment)
        later_rules = rule_set.select(facts["resident"]["regionCode"], moment)
        later_colour = _apply(later_rules, later, moment)[0]
        later_override = _override_at(facts, moment)
        if later_override is not None:
            later_colour = later_override["colour"]
        if later_colour != colour:
            result.changes_at = moment
            result.changes_to = later_colour
            break
    return result


def _apply(
    rules: Sequence[Rule], facts: dict[str, Any], now: datetime
) -> tuple[
    str,
    list[tuple[Rule, dict[str, Any] | None, datetime | None]],
    list[datetime],
    list[RuleFailure],
]:
    colour = "green"
    hits: list[tuple[Rule, dict[str, Any] | None, datetime | None]] = []
    edges: list[datetime] = []
    failures: list[RuleFailure] = []
    for rule in rules:
        items = facts[rule.evidence] if rule.evidence else (None,)
        for item in items:
            context = {"current": item, "data": facts}
            try:
                outcome = rule.condition(context)
                if not isinstance(outcome, bool):
                    raise CertLogicError(
                        f"The condition gave {type(outcome).__name__}, not a boolean."
                    )
                holds = outcome
                if holds:
                    until = _instant(rule.until, context)
                else:
                    until = None
                    start = _instant(rule.starts, context)
                    if start is not None:
                        edges.append(start)
            except CertLogicError as exc:
                failures.append(RuleFailure(rule.id, rule.version, str(exc)))
                log.warning(
                    "rule_evaluation_failed",
                    rule=rule.id,
                    version=rule.version,
                    error=exc.code,
                )
                continue
            if not holds:
                continue
            hits.append((rule, item, until))
            if until is not None:
                edges.append(until)
            if SEVERITY[rule.colour] > SEVERITY[colour]:
                colour = rule.colour
    return colour, hits, edges, failures


def _override_at(facts: dict[str, Any], moment: datetime) -> dict[str, Any] | None:
    """The newest override in force at ``moment``, if any."""
    for item in facts.get("overrides", ()):
        if item["setAt"] <= moment < item["expiresAt"]:
            return item  # type: ignore[no-any-return]
    return None


def _override_reason(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule": "OFFICIAL-OVERRIDE",
        "version": "1.0.0",
        "colour": item["colour"],
        "text": {
            "zh": f"工作人员调整（{item['authorRole']}）：{item['reason']}",
            "en": f"Set by an official ({item['authorRole']}): {item['reason']}",
        },
        "until": item["expiresAt"].isoformat(),
        "override": True,
        "evidence": {key: _plain(value) for key, value in item.items()},
    }


def _instant(expression: Any, context: dict[str, Any]) -> datetime | None:
    if expression is None:
        return None
    value = expression(context)
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value)
    raise CertLogicError(f"An until or from expression gave {type(value).__name__}.")


def _reason(
    rule: Rule, item: dict[str, Any] | None, until: datetime | None
) -> dict[str, Any]:
    reason: dict[str, Any] = {
        "rule": rule.id,
        "version": rule.version,
        "colour": rule.colour,
        "text": {"zh": rule.reason_zh, "en": rule.reason_en},
        "until": until.isoformat() if until else None,
    }
    if item is not None:
        reason["evidence"] = {key: _plain(value) for key, value in item.items()}
    return reason


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value
