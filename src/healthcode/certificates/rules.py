"""EU DCC business rules, run on a certificate with our own CertLogic engine.

Rules come in the published format of the EU DCC business rules: a JSON
object with ``Identifier`` (``GR-``, ``VR-``, ``TR-``, ``RR-`` or ``IR-``,
a country and a number, as in ``VR-CN-0001``), ``Type`` (``Acceptance`` or
``Invalidation``), ``Country``, ``Version`` (semantic), ``SchemaVersion``,
``Engine`` (``CERTLOGIC``) and ``EngineVersion``, ``CertificateType``
(``General``, ``Vaccination``, ``Test`` or ``Recovery``), ``Description``
(text per language), ``ValidFrom`` and ``ValidTo``, ``AffectedFields`` and
``Logic``, a CertLogic expression that must give ``true`` for the
certificate to pass.

Which rules apply: the acceptance rules of the country where the certificate
is presented, and the invalidation rules of the country that issued it, each
of the general type or of the certificate's own type. Of the versions of one
identifier, the highest whose validity covers the clock is run
(``ValidFrom`` inclusive, ``ValidTo`` exclusive); a rule whose versions all
lie outside the clock is not run at all.

The data a rule sees is ``{"payload": <certificate>, "external": {...}}``
with the external parameters the specification names: ``validationClock``,
``valueSets``, ``countryCode``, ``issuerCountryCode``, ``exp``, ``iat``,
``kid`` and ``region``. A rule that gives ``false`` fails; one that raises
an evaluation error or gives anything but a boolean is *open*, which counts
as not passed and is reported with its problem, never silently passed.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from healthcode.certificates.dcc import (
    CertificateKind,
    DigitalCovidCertificate,
    parse_instant,
)
from healthcode.certificates.errors import InvalidBusinessRule
from healthcode.rules.certlogic import Compiled, compile_expression
from healthcode.rules.errors import CertLogicError

__all__ = [
    "BusinessRule",
    "RuleOutcome",
    "RuleReport",
    "RuleType",
    "external_parameters",
    "load_rules",
    "parse_rule",
    "run_rules",
    "select_rules",
]


class RuleType(enum.StrEnum):
    """Whether a rule decides acceptance here or invalidates at the issuer's word."""

    ACCEPTANCE = "Acceptance"
    INVALIDATION = "Invalidation"


_CERTIFICATE_TYPES = {
    "General": None,
    "Vaccination": CertificateKind.VACCINATION,
    "Test": CertificateKind.TEST,
    "Recovery": CertificateKind.RECOVERY,
}
_PREFIXES = {"General": "GR", "Vaccination": "VR", "Test": "TR", "Recovery": "RR"}
_IDENTIFIER = re.compile(r"(GR|VR|TR|RR|IR)-([A-Z]{2})-([0-9]{4})")
_VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_COUNTRY = re.compile(r"[A-Z]{2}")
_REQUIRED = (
    "Identifier",
    "Type",
    "Country",
    "Version",
    "SchemaVersion",
    "Engine",
    "EngineVersion",
    "CertificateType",
    "Description",
    "ValidFrom",
    "ValidTo",
    "AffectedFields",
    "Logic",
)


@dataclass(frozen=True)
class BusinessRule:
    """One version of one business rule, its logic compiled once."""

    identifier: str
    type: RuleType
    country: str
    version: tuple[int, int, int]
    certificate_type: str
    description: Mapping[str, str]
    valid_from: datetime
    valid_to: datetime
    affected_fields: tuple[str, ...]
    logic: Any
    schema_version: str
    engine_version: str
    compiled: Compiled = field(repr=False, compare=False)
    region: str | None = None

    @property
    def version_text(self) -> str:
        """The version as written, such as ``1.10.0``."""
        return ".".join(str(part) for part in self.version)

    def applies_to(self, kind: CertificateKind) -> bool:
        """Whether the rule is general or of ``kind``."""
        wanted = _CERTIFICATE_TYPES[self.certificate_type]
        return wanted is None or wanted is kind

    def valid_at(self, now: datetime) -> bool:
        """Whether ``now`` lies in ``[ValidFrom, ValidTo)``."""
        return self.valid_from <= now < self.valid_to

    def text(self, language: str = "en") -> str:
        """The description in ``language``, else in English, else any."""
        if language in self.description:
            return self.description[language]
        if "en" in self.description:
            return self.description["en"]
        return next(iter(self.description.values()))


@dataclass(frozen=True)
class RuleOutcome:
    """What one rule said: ``passed``, ``failed`` or ``open`` (with the problem)."""

    rule: BusinessRule
    result: str
    problem: str | None = None


@dataclass(frozen=True)
class RuleReport:
    """The outcomes of every rule that applied, in identifier order."""

    outcomes: tuple[RuleOutcome, ...]

    @property
    def accepted(self) -> bool:
        """True when every applicable rule passed (none failed, none open)."""
        return all(outcome.result == "passed" for outcome in self.outcomes)

    def not_passed(self) -> list[RuleOutcome]:
        """The outcomes that failed or stayed open."""
        return [outcome for outcome in self.outcomes if outcome.result != "passed"]


def parse_rule(document: Mapping[str, Any]) -> BusinessRule:
    """Check one rule document and compile its logic; raise if it is malformed.

    Messages name the rule's identifier (when it has one) and the field.
    """
    if not isinstance(document, Mapping):
        raise InvalidBusinessRule("A business rule must be a JSON object.")
    identifier = document.get("Identifier")
    name = identifier if isinstance(identifier, str) else "without an identifier"
    missing = [key for key in _REQUIRED if key not in document]
    if missing:
        raise InvalidBusinessRule(f"Business rule {name} lacks {', '.join(missing)}.")
    match = _IDENTIFIER.fullmatch(identifier) if isinstance(identifier, str) else None
    if match is None:
        raise InvalidBusinessRule(
            f"Business rule {name} has an Identifier that is not like VR-CN-0001."
        )
    try:
        rule_type = RuleType(document["Type"])
    except ValueError:
        raise InvalidBusinessRule(
            f"Business rule {name} has a Type other than Acceptance or Invalidation."
        ) from None
    certificate_type = document["CertificateType"]
    if certificate_type not in _CERTIFICATE_TYPES:
        raise InvalidBusinessRule(
            f"Business rule {name} has an unknown CertificateType."
        )
    expected_prefix = (
        "IR" if rule_type is RuleType.INVALIDATION else _PREFIXES[certificate_type]
    )
    if match.group(1) != expected_prefix:
        raise InvalidBusinessRule(
            f"Business rule {name} should start with {expected_prefix}- for its "
            "type and certificate type."
        )
    country = document["Country"]
    if not isinstance(country, str) or not _COUNTRY.fullmatch(country):
        raise InvalidBusinessRule(
            f"Business rule {name} has a Country that is not two capital letters."
        )
    if match.group(2) != country:
        raise InvalidBusinessRule(
            f"Business rule {name} names another country than its Country field."
        )
    version = _version(document["Version"], name)
    if document["Engine"] != "CERTLOGIC":
        raise InvalidBusinessRule(
            f"Business rule {name} is not for the CERTLOGIC engine."
        )
    description = _description(document["Description"], name)
    valid_from = _instant(document["ValidFrom"], "ValidFrom", name)
    valid_to = _instant(document["ValidTo"], "ValidTo", name)
    if valid_to <= valid_from:
        raise InvalidBusinessRule(f"Business rule {name} ends before it begins.")
    fields = document["AffectedFields"]
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InvalidBusinessRule(
            f"Business rule {name} has AffectedFields that are not a list of text."
        )
    region = document.get("Region")
    if region is not None and not isinstance(region, str):
        raise InvalidBusinessRule(
            f"Business rule {name} has a Region that is not text."
        )
    try:
        compiled = compile_expression(document["Logic"])
    except CertLogicError as exc:
        raise InvalidBusinessRule(
            f"Business rule {name} has invalid Logic: {exc}"
        ) from exc
    return BusinessRule(
        identifier=identifier,
        type=rule_type,
        country=country,
        version=version,
        certificate_type=certificate_type,
        description=description,
        valid_from=valid_from,
        valid_to=valid_to,
        affected_fields=tuple(fields),
        logic=document["Logic"],
        schema_version=str(document["SchemaVersion"]),
        engine_version=str(document["EngineVersion"]),
        compiled=compiled,
        region=region or None,
    )


def load_rules(documents: Iterable[Mapping[str, Any]]) -> list[BusinessRule]:
    """Parse every rule document; one identifier may not repeat a version."""
    rules = [parse_rule(document) for document in documents]
    seen: set[tuple[str, tuple[int, int, int]]] = set()
    for rule in rules:
        key = (rule.identifier, rule.version)
        if key in seen:
            raise InvalidBusinessRule(
                f"Business rule {rule.identifier} has version {rule.version_text} "
                "twice."
            )
        seen.add(key)
    return rules


def select_rules(
    rules: Iterable[BusinessRule],
    *,
    now: datetime,
    country: str,
    kind: CertificateKind,
    rule_type: RuleType = RuleType.ACCEPTANCE,
    region: str | None = None,
) -> list[BusinessRule]:
    """The rules to run: per identifier, the highest version valid at ``now``.

    A rule for a region applies only when ``region`` names it; rules without
    a region apply to the whole country.
    """
    chosen: dict[str, BusinessRule] = {}
    for rule in rules:
        if (
            rule.type is not rule_type
            or rule.country != country
            or not rule.applies_to(kind)
            or not rule.valid_at(now)
            or (rule.region is not None and rule.region != region)
        ):
            continue
        held = chosen.get(rule.identifier)
        if held is None or rule.version > held.version:
            chosen[rule.identifier] = rule
    return [chosen[identifier] for identifier in sorted(chosen)]


def external_parameters(
    certificate: DigitalCovidCertificate,
    *,
    now: datetime,
    country: str,
    value_sets: Mapping[str, Sequence[str]] | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The ``external`` object that the specification gives every rule."""
    return {
        "validationClock": _iso(now),
        "valueSets": {key: list(codes) for key, codes in (value_sets or {}).items()},
        "countryCode": country,
        "issuerCountryCode": _issuer_country(certificate),
        "exp": _iso(certificate.claims.expires_at),
        "iat": _iso(certificate.claims.issued_at),
        "kid": base64.b64encode(certificate.key_id).decode("ascii"),
        "region": region or "",
    }


def run_rules(
    rules: Iterable[BusinessRule],
    certificate: DigitalCovidCertificate,
    *,
    now: datetime,
    country: str,
    value_sets: Mapping[str, Sequence[str]] | None = None,
    region: str | None = None,
) -> RuleReport:
    """Run the acceptance rules of ``country`` and the issuer's invalidation rules."""
    rules = list(rules)
    issuer = _issuer_country(certificate)
    applicable = select_rules(
        rules, now=now, country=country, kind=certificate.kind, region=region
    )
    if issuer:
        applicable += select_rules(
            rules,
            now=now,
            country=issuer,
            kind=certificate.kind,
            rule_type=RuleType.INVALIDATION,
        )
    data = {
        "payload": certificate.payload,
        "external": external_parameters(
            certificate, now=now, country=country, value_sets=value_sets, region=region
        ),
    }
    return RuleReport(tuple(_outcome(rule, data) for rule in applicable))


def _outcome(rule: BusinessRule, data: Mapping[str, Any]) -> RuleOutcome:
    try:
        result = rule.compiled(data)
    except CertLogicError as exc:
        return RuleOutcome(rule, "open", str(exc))
    if result is True:
        return RuleOutcome(rule, "passed")
    if result is False:
        return RuleOutcome(rule, "failed")
    return RuleOutcome(
        rule, "open", f"The rule gave {type(result).__name__}, not a boolean."
    )


def _issuer_country(certificate: DigitalCovidCertificate) -> str:
    issuer = certificate.claims.issuer or certificate.signer.country or ""
    return issuer.upper()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _version(value: Any, name: str) -> tuple[int, int, int]:
    match = _VERSION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidBusinessRule(
            f"Business rule {name} has a Version that is not a semantic version."
        )
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch)


def _description(value: Any, name: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    if isinstance(value, list):
        for item in value:
            if (
                isinstance(item, Mapping)
                and isinstance(item.get("lang"), str)
                and isinstance(item.get("desc"), str)
            ):
                texts[item["lang"]] = item["desc"]
            else:
                texts = {}
                break
    if not texts:
        raise InvalidBusinessRule(
            f"Business rule {name} has a Description that is not a list of "
            "lang and desc pairs."
        )
    return texts


def _instant(value: Any, key: str, name: str) -> datetime:
    try:
        return parse_instant(value)
    except ValueError:
        raise InvalidBusinessRule(
            f"Business rule {name} has a {key} that is not an ISO date-time."
        ) from None
