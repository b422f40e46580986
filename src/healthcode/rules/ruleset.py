"""Rule sets: versioned data files that turn a resident's records into colours.

A rule set is a JSON document with an ``id``, a semantic ``version`` and a list
of rules. Each rule has:

``id`` and ``version``
    For one id, the rule in force is the highest version whose validity
    (``validFrom`` to ``validTo``) covers the clock, so a changed threshold is
    shipped as a new version with a start date rather than an edit.
``regions``
    GB/T 2260 code prefixes the rule applies to (``"*"`` for everywhere; an
    empty list switches the rule off until a region lists itself).
``colour``
    What the rule gives while it holds.
``evidence`` (optional)
    A collection of the resident's facts (see :mod:`healthcode.status.facts`).
    The rule is then tried on each item, and each item it holds for becomes a
    reason of its own, so every reason points at the record behind it.
``condition``
    A CertLogic expression over ``{"current": item, "data": facts}``; it must
    give exactly ``true`` for the rule to hold.
``until`` and ``from`` (optional)
    CertLogic expressions giving the instant a holding rule stops holding, and
    the instant a rule that does not hold yet will start to, if nothing new
    arrives. They are how a status knows when it will change next.
``reason``
    Text in Chinese and English that the resident sees.
``tests``
    Cases in the form of the CertLogic test suite (``data`` and ``expected``),
    run when the rule set loads: a rule whose own tests fail is refused.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from healthcode.rules.certlogic import compile_expression, parse_datetime
from healthcode.rules.errors import CertLogicError, InvalidRuleSet

COLOURS = ("green", "grey", "yellow", "red")
# Worse colours win: a person is as red as any rule that holds makes them.
SEVERITY = {colour: rank for rank, colour in enumerate(COLOURS)}

# Red is a serious restriction; it may rest only on records that an authority
# made (a case report, an order, a laboratory result, a carrier's manifest),
# never on a check-in or a tracing match alone, which anyone can cause by
# scanning a forwarded venue code.
EVIDENCE_COLLECTIONS = {
    "cases": True,
    "orders": True,
    "tests": True,
    "riskStays": True,
    "declaredRiskStays": False,
    "vaccinations": False,
    "declarations": False,
    "exposures": False,
}

_RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_REGION = re.compile(r"^(\*|\d{2}|\d{4}|\d{6})$")

Compiled = Callable[[Any], Any]


@dataclass(frozen=True)
class Rule:
    id: str
    version: str
    valid_from: datetime
    valid_to: datetime | None
    regions: tuple[str, ...]
    colour: str
    evidence: str | None
    condition: Compiled = field(repr=False)
    until: Compiled | None = field(repr=False)
    starts: Compiled | None = field(repr=False)
    reason_zh: str
    reason_en: str
    #: The furthest back in time the rule looks: the largest constant amount
    #: of any ``plusTime`` in its expressions.
    lookback: timedelta = timedelta(0)

    @property
    def version_key(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.version.split("."))

    def in_force(self, now: datetime) -> bool:
        if now < self.valid_from:
            return False
        return self.valid_to is None or now < self.valid_to

    def applies_to(self, region_code: str | None) -> bool:
        if "*" in self.regions:
            return True
        if not region_code:
            return False
        return any(region_code.startswith(prefix) for prefix in self.regions)


@dataclass(frozen=True)
class RuleSet:
    id: str
    version: str
    rules: tuple[Rule, ...]
    _edges: tuple[float, ...] = field(default=(), repr=False, compare=False)
    _selection: dict[tuple[str | None, int], tuple[Rule, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        edges = {rule.valid_from.timestamp() for rule in self.rules}
        edges |= {rule.valid_to.timestamp() for rule in self.rules if rule.valid_to}
        object.__setattr__(self, "_edges", tuple(sorted(edges)))

    @property
    def label(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def lookback(self) -> timedelta:
        """The furthest back any rule of the set looks at a record."""
        return max((rule.lookback for rule in self.rules), default=timedelta(0))

    def select(self, region_code: str | None, now: datetime) -> tuple[Rule, ...]:
        """The rules in force at ``now`` for a resident of ``region_code``.

        Per rule id the highest version valid at the clock wins. The choice
        can only change where some rule's validity starts or ends, so it is
        cached per region and per interval between such edges, which makes a
        full recolour pay for it once per district instead of per resident.
        """
        key = (region_code, bisect.bisect_right(self._edges, now.timestamp()))
        cached = self._selection.get(key)
        if cached is not None:
            return cached
        best: dict[str, Rule] = {}
        for rule in self.rules:
            if not rule.in_force(now) or not rule.applies_to(region_code):
                continue
            held = best.get(rule.id)
            if held is None or rule.version_key > held.version_key:
                best[rule.id] = rule
        chosen = tuple(best.values())
        self._selection[key] = chosen
        return chosen


def load_rule_set(source: str | Path = "default") -> RuleSet:
    """Load, validate and test a rule set: a shipped name or a file path."""
    return parse_rule_set_text(rule_set_text(source))


def rule_set_text(source: str | Path = "default") -> str:
    """The text of a rule set document: a shipped name or a file path.

    A batch job on other machines is given this text rather than the name,
    so that every machine evaluates the very rules the job was started with.
    """
    path = Path(source)
    if path.suffix == ".json" or path.exists():
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise InvalidRuleSet(f"The rule set file {path} cannot be read.") from exc
        except UnicodeDecodeError as exc:
            raise InvalidRuleSet(
                f"The rule set file {path} is not UTF-8 (byte {exc.start})."
            ) from None
    else:
        if not re.fullmatch(r"[a-z0-9-]+", str(source)):
            raise InvalidRuleSet(f"No shipped rule set is named {source!r}.")
        shipped = resources.files("healthcode.rules") / "data" / f"{source}.json"
        if not shipped.is_file():
            raise InvalidRuleSet(f"No shipped rule set is named {source!r}.")
        text = shipped.read_text(encoding="utf-8")
    return text


def parse_rule_set_text(text: str) -> RuleSet:
    """Validate and test the rule set that ``text`` holds."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRuleSet(
            f"The rule set is not valid JSON (line {exc.lineno}): {exc.msg}."
        ) from None
    except RecursionError:
        raise InvalidRuleSet(
            "The rule set nests deeper than JSON can be read."
        ) from None
    except ValueError as exc:
        # The standard library refuses integers of thousands of digits.
        raise InvalidRuleSet(
            f"The rule set holds a value that cannot be read: {exc}."
        ) from None
    return parse_rule_set(document)


def parse_rule_set(document: Any) -> RuleSet:
    if not isinstance(document, dict):
        raise InvalidRuleSet("A rule set must be a JSON object.")
    set_id = document.get("id")
    version = document.get("version")
    if not isinstance(set_id, str) or not set_id:
        raise InvalidRuleSet("The rule set has no id.")
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise InvalidRuleSet(f"The rule set version {version!r} is not x.y.z.")
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise InvalidRuleSet("The rule set has no rules.")

    rules = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, index)
        if (rule.id, rule.version) in seen:
            raise InvalidRuleSet(
                f"Rule {rule.id} version {rule.version} appears twice."
            )
        seen.add((rule.id, rule.version))
        _run_rule_tests(rule, raw)
        rules.append(rule)
    return RuleSet(id=set_id, version=version, rules=tuple(rules))


def _parse_rule(raw: Any, index: int) -> Rule:
    if not isinstance(raw, dict):
        raise InvalidRuleSet(f"Rule number {index + 1} is not a JSON object.")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        raise InvalidRuleSet(
            f"Rule number {index + 1} has id {rule_id!r}; ids look like RED-CASE."
        )

    def problem(message: str) -> InvalidRuleSet:
        return InvalidRuleSet(f"Rule {rule_id}: {message}")

    version = raw.get("version")
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise problem(f"version {version!r} is not x.y.z.")
    colour = raw.get("colour")
    if colour not in COLOURS or colour == "green":
        raise problem(f"colour {colour!r} is not one of grey, yellow, red.")
    evidence = raw.get("evidence")
    if evidence is not None and evidence not in EVIDENCE_COLLECTIONS:
        raise problem(
            f"evidence {evidence!r} is not one of {', '.join(EVIDENCE_COLLECTIONS)}."
        )
    if colour == "red" and not EVIDENCE_COLLECTIONS.get(evidence or "", False):
        raise problem(
            "a red rule must rest on an authoritative record"
            " (cases, orders, tests or riskStays)."
        )
    if colour == "red":
        for key in ("condition", "until", "from"):
            weak = _weak_reads(raw.get(key))
            if weak:
                raise problem(
                    f"a red rule's {key} may read only authoritative records,"
                    f" but it reads {weak}."
                )
    regions = raw.get("regions", ["*"])
    if not isinstance(regions, list) or not all(
        isinstance(r, str) and _REGION.match(r) for r in regions
    ):
        raise problem("regions must be a list of GB/T 2260 prefixes or '*'.")
    reason = raw.get("reason")
    if not (
        isinstance(reason, dict)
        and isinstance(reason.get("zh"), str)
        and reason["zh"]
        and isinstance(reason.get("en"), str)
        and reason["en"]
    ):
        raise problem("reason must give text in both zh and en.")
    valid_from = _instant(raw.get("validFrom"), "validFrom", problem)
    valid_to = (
        None
        if raw.get("validTo") is None
        else _instant(raw.get("validTo"), "validTo", problem)
    )
    if valid_from is None:
        raise problem("validFrom is required.")
    if valid_to is not None and valid_to <= valid_from:
        raise problem("validTo is not after validFrom.")

    def compiled(key: str, required: bool) -> Compiled | None:
        if key not in raw:
            if required:
                raise problem(f"{key} is missing.")
            return None
        try:
            return compile_expression(raw[key])
        except CertLogicError as exc:
            raise problem(f"{key} is not a valid CertLogic expression: {exc}") from None

    condition = compiled("condition", True)
    if condition is None:
        raise problem("condition is missing.")
    return Rule(
        id=rule_id,
        version=version,
        valid_from=valid_from,
        valid_to=valid_to,
        regions=tuple(regions),
        colour=colour,
        evidence=evidence,
        condition=condition,
        until=compiled("until", False),
        starts=compiled("from", False),
        reason_zh=reason["zh"],
        reason_en=reason["en"],
        lookback=max(
            (_lookback(raw.get(key)) for key in ("condition", "until", "from")),
            default=timedelta(0),
        ),
    )


# A month and a year as their longest, so that a lookback is never short.
_UNITS = {
    "year": timedelta(days=366),
    "month": timedelta(days=31),
    "day": timedelta(days=1),
    "hour": timedelta(hours=1),
    "minute": timedelta(minutes=1),
}


def _lookback(expression: Any) -> timedelta:
    """The largest constant ``plusTime`` shift in ``expression``.

    A rule that asks whether a record's time plus 14 days is still after now
    needs records 14 days old; the shift says how old a record a rule can
    still read. A shift computed from data cannot be bounded here and counts
    as nothing, so a rule set that wants one must be given retention periods
    long enough by its region's configuration.
    """
    found = timedelta(0)
    if isinstance(expression, list):
        for item in expression:
            found = max(found, _lookback(item))
    elif isinstance(expression, dict):
        for operator, operands in expression.items():
            if (
                operator == "plusTime"
                and isinstance(operands, list)
                and len(operands) == 3
                and isinstance(operands[1], int | float)
                and not isinstance(operands[1], bool)
                and operands[2] in _UNITS
            ):
                try:
                    shift = abs(operands[1]) * _UNITS[operands[2]]
                except OverflowError:
                    # Beyond any calendar; evaluating the rule refuses it.
                    shift = timedelta.max
                found = max(found, shift)
            found = max(found, _lookback(operands))
    return found


def _weak_reads(expression: Any) -> str | None:
    """The first ``var`` path in ``expression`` that reaches weak evidence.

    A path that names the whole document (``""``, ``data``) counts as weak,
    since through it anything can be read.
    """
    if isinstance(expression, list):
        for item in expression:
            found = _weak_reads(item)
            if found:
                return found
        return None
    if not isinstance(expression, dict):
        return None
    for operation, operands in expression.items():
        if operation == "var":
            path = operands[0] if isinstance(operands, list) and operands else operands
            if not isinstance(path, str):
                continue
            parts = path.split(".")
            if path in ("", "data") or (
                len(parts) > 1
                and parts[0] == "data"
                and parts[1] in EVIDENCE_COLLECTIONS
                and not EVIDENCE_COLLECTIONS[parts[1]]
            ):
                return repr(path)
            continue
        found = _weak_reads(operands)
        if found:
            return found
    return None


def _instant(
    value: Any, key: str, problem: Callable[[str], InvalidRuleSet]
) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise problem(f"{key} must be a date-time string.")
    try:
        return parse_datetime(value)
    except CertLogicError:
        raise problem(f"{key} {value!r} is not a date-time.") from None


def _run_rule_tests(rule: Rule, raw: dict[str, Any]) -> None:
    tests = raw.get("tests")
    if not isinstance(tests, list) or not tests:
        raise InvalidRuleSet(f"Rule {rule.id}: it has no tests.")
    for number, case in enumerate(tests, start=1):
        if not isinstance(case, dict) or "data" not in case or "expected" not in case:
            raise InvalidRuleSet(
                f"Rule {rule.id}: test {number} needs 'data' and 'expected'."
            )
        if not isinstance(case["expected"], bool):
            raise InvalidRuleSet(
                f"Rule {rule.id}: test {number} expects a non-boolean; a condition"
                " must give true or false."
            )
        try:
            outcome = rule.condition(case["data"])
        except CertLogicError as exc:
            raise InvalidRuleSet(
                f"Rule {rule.id}: test {number} fails to evaluate: {exc}"
            ) from None
        if outcome is not case["expected"]:
            label = case.get("message") or f"test {number}"
            raise InvalidRuleSet(
                f"Rule {rule.id}: test '{label}' expected {case['expected']!r}"
                f" but the condition gave {outcome!r}."
            )
