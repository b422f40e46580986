"""Business rules in the published EU format, run with our CertLogic engine."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from healthcode.certificates import dcc
from healthcode.certificates.errors import InvalidBusinessRule
from healthcode.certificates.rules import (
    RuleType,
    external_parameters,
    load_rules,
    parse_rule,
    run_rules,
    select_rules,
)

from .support import (
    NOW,
    issue_dcc,
    lab_test_payload,
    make_signer,
    vaccination_payload,
)


def rule(
    identifier: str,
    logic: Any,
    *,
    version: str = "1.0.0",
    certificate_type: str = "Vaccination",
    rule_type: str = "Acceptance",
    valid_from: str = "2025-01-01T00:00:00Z",
    valid_to: str = "2030-01-01T00:00:00Z",
    country: str | None = None,
) -> dict[str, Any]:
    return {
        "Identifier": identifier,
        "Type": rule_type,
        "Country": country or identifier.split("-")[1],
        "Version": version,
        "SchemaVersion": "1.3.0",
        "Engine": "CERTLOGIC",
        "EngineVersion": "1.3.3",
        "CertificateType": certificate_type,
        "Description": [
            {"lang": "en", "desc": f"Rule {identifier} version {version}."},
            {"lang": "zh", "desc": f"规则 {identifier}。"},
        ],
        "ValidFrom": valid_from,
        "ValidTo": valid_to,
        "AffectedFields": ["v.0.dn", "v.0.sd", "v.0.dt"],
        "Logic": logic,
    }


# The series must be complete: dose number at least the total of doses.
COMPLETE = {">=": [{"var": "payload.v.0.dn"}, {"var": "payload.v.0.sd"}]}
# The last dose at least 14 days before the clock.
FOURTEEN_DAYS = {
    "not-before": [
        {"plusTime": [{"var": "external.validationClock"}, 0, "day"]},
        {"plusTime": [{"var": "payload.v.0.dt"}, 14, "day"]},
    ]
}
# A product the receiving country lists as authorised.
AUTHORISED = {
    "in": [
        {"var": "payload.v.0.mp"},
        {"var": "external.valueSets.covid-19-vaccines-authorised"},
    ]
}
# The holder is at least 18 at the clock, a partial date of birth read as
# its last possible day.
ADULT = {
    "not-after": [
        {"plusTime": [{"dccDateOfBirth": [{"var": "payload.dob"}]}, 18, "year"]},
        {"plusTime": [{"var": "external.validationClock"}, 0, "day"]},
    ]
}
# A test no older than 72 hours.
RECENT_TEST = {
    "before": [
        {"plusTime": [{"var": "external.validationClock"}, 0, "day"]},
        {"plusTime": [{"var": "payload.t.0.sc"}, 72, "hour"]},
    ]
}

VALUE_SETS = {"covid-19-vaccines-authorised": ["EU/1/20/1528", "EU/1/20/1507"]}


def certificate(payload: dict[str, Any] | None = None) -> dcc.DigitalCovidCertificate:
    signer = make_signer()
    text = issue_dcc(payload or vaccination_payload(), signer)
    return dcc.read_certificate(text, signers=signer.signers(), now=NOW)


def run(rules, cert, now: datetime = NOW):
    return run_rules(
        load_rules(rules), cert, now=now, country="CN", value_sets=VALUE_SETS
    )


def test_rules_pass_on_a_complete_recent_enough_series() -> None:
    rules = [
        rule("VR-CN-0001", COMPLETE),
        rule("VR-CN-0002", FOURTEEN_DAYS),
        rule("VR-CN-0003", AUTHORISED),
    ]

    report = run(rules, certificate())

    assert [(o.rule.identifier, o.result) for o in report.outcomes] == [
        ("VR-CN-0001", "passed"),
        ("VR-CN-0002", "passed"),
        ("VR-CN-0003", "passed"),
    ]
    assert report.accepted


def test_an_incomplete_series_fails() -> None:
    report = run(
        [rule("VR-CN-0001", COMPLETE)], certificate(vaccination_payload(dose=1))
    )

    assert [o.result for o in report.outcomes] == ["failed"]
    assert not report.accepted


def test_too_recent_a_dose_fails_until_fourteen_days_pass() -> None:
    recent = certificate(vaccination_payload(date="2026-03-01"))

    early = run([rule("VR-CN-0002", FOURTEEN_DAYS)], recent)
    later = run(
        [rule("VR-CN-0002", FOURTEEN_DAYS)],
        recent,
        now=datetime(2026, 3, 15, tzinfo=UTC),
    )

    assert [o.result for o in early.outcomes] == ["failed"]
    assert [o.result for o in later.outcomes] == ["passed"]


def test_the_highest_version_valid_at_the_clock_is_run() -> None:
    # Version 1.1.0 tightened the rule from 1 March; 2.0.0 is not valid yet.
    rules = [
        rule("VR-CN-0001", True, version="1.0.0"),
        rule("VR-CN-0001", False, version="1.1.0", valid_from="2026-03-01T00:00:00Z"),
        rule("VR-CN-0001", True, version="2.0.0", valid_from="2026-04-01T00:00:00Z"),
        rule("VR-CN-0001", True, version="1.0.1", valid_to="2026-02-01T00:00:00Z"),
    ]
    cert = certificate()

    february = run(rules, cert, now=datetime(2026, 2, 15, tzinfo=UTC))
    march = run(rules, cert)
    april = run(rules, cert, now=datetime(2026, 4, 1, tzinfo=UTC))

    assert [o.rule.version_text for o in february.outcomes] == ["1.0.0"]
    assert [(o.rule.version_text, o.result) for o in march.outcomes] == [
        ("1.1.0", "failed")
    ]
    assert [o.rule.version_text for o in april.outcomes] == ["2.0.0"]


def test_versions_compare_as_numbers_not_text() -> None:
    rules = load_rules(
        [
            rule("VR-CN-0001", True, version="1.9.0"),
            rule("VR-CN-0001", True, version="1.10.0"),
        ]
    )

    chosen = select_rules(
        rules, now=NOW, country="CN", kind=dcc.CertificateKind.VACCINATION
    )

    assert [r.version_text for r in chosen] == ["1.10.0"]


def test_only_rules_for_the_country_and_the_kind_run() -> None:
    rules = [
        rule("GR-CN-0001", {"!": [{"var": "payload.t"}]}, certificate_type="General"),
        rule("VR-CN-0001", COMPLETE),
        rule("TR-CN-0001", RECENT_TEST, certificate_type="Test"),
        rule("VR-DE-0001", False),
    ]

    report = run(rules, certificate())

    assert [o.rule.identifier for o in report.outcomes] == ["GR-CN-0001", "VR-CN-0001"]


def test_a_test_rule_on_a_test_certificate() -> None:
    sampled = (NOW - timedelta(hours=80)).isoformat()
    old = certificate(lab_test_payload(sampled=sampled))
    rules = [rule("TR-CN-0001", RECENT_TEST, certificate_type="Test")]

    report = run(rules, old)

    assert [o.result for o in report.outcomes] == ["failed"]


def test_invalidation_rules_come_from_the_issuing_country() -> None:
    # Austria invalidates one batch of its own certificates; our acceptance
    # rules do not see Austrian acceptance rules.
    revoked = {
        "!": [
            {
                "in": [
                    {"extractFromUVCI": [{"var": "payload.v.0.ci"}, 2]},
                    ["10807843F94AEE0EE5093FBC254BD813"],
                ]
            }
        ]
    }
    rules = [
        rule(
            "IR-AT-0001", revoked, rule_type="Invalidation", certificate_type="General"
        ),
        rule("VR-AT-0001", False),
    ]

    report = run(rules, certificate())

    assert [(o.rule.identifier, o.result) for o in report.outcomes] == [
        ("IR-AT-0001", "failed")
    ]


def test_c13_an_age_rule_reads_a_partial_date_as_its_last_day() -> None:
    # 18 years from 2008-12-31 is after the clock; from 2008-02-29 it is not.
    rules = [rule("GR-CN-0001", ADULT, certificate_type="General")]

    by_year = run(rules, certificate(vaccination_payload(dob="2008")))
    by_month = run(rules, certificate(vaccination_payload(dob="2008-02")))

    assert [o.result for o in by_year.outcomes] == ["failed"]
    assert [o.result for o in by_month.outcomes] == ["passed"]


def test_a_rule_that_cannot_evaluate_is_open_not_passed() -> None:
    rules = [
        rule("VR-CN-0001", {"+": [{"var": "payload.v.0.mp"}, 1]}),
        rule("VR-CN-0002", {"var": "payload.v.0.dn"}),
    ]

    report = run(rules, certificate())

    assert [o.result for o in report.outcomes] == ["open", "open"]
    assert report.outcomes[1].problem == "The rule gave int, not a boolean."
    assert not report.accepted
    assert len(report.not_passed()) == 2


def test_external_parameters() -> None:
    cert = certificate()

    external = external_parameters(cert, now=NOW, country="CN", region="310000")

    assert external == {
        "validationClock": "2026-03-10T04:00:00Z",
        "valueSets": {},
        "countryCode": "CN",
        "issuerCountryCode": "AT",
        "exp": "2026-09-06T04:00:00Z",
        "iat": "2026-03-09T04:00:00Z",
        "kid": external["kid"],
        "region": "310000",
    }
    assert len(external["kid"]) == 12


def test_a_rule_for_a_region_applies_only_there() -> None:
    regional = rule("VR-CN-0009", False)
    regional["Region"] = "310000"
    rules = load_rules([regional])

    nowhere = select_rules(
        rules, now=NOW, country="CN", kind=dcc.CertificateKind.VACCINATION
    )
    shanghai = select_rules(
        rules,
        now=NOW,
        country="CN",
        kind=dcc.CertificateKind.VACCINATION,
        region="310000",
    )

    assert (nowhere, [r.identifier for r in shanghai]) == ([], ["VR-CN-0009"])


def test_description_by_language() -> None:
    parsed = parse_rule(rule("VR-CN-0001", True))

    assert parsed.text("zh") == "规则 VR-CN-0001。"
    assert parsed.text("fr") == "Rule VR-CN-0001 version 1.0.0."
    assert parsed.type is RuleType.ACCEPTANCE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("Logic"), "lacks Logic"),
        (lambda r: r.update(Identifier="VR-CN-1"), "not like VR-CN-0001"),
        (lambda r: r.update(Identifier="TR-CN-0001"), "should start with VR-"),
        (lambda r: r.update(Type="Advice"), "Type other than"),
        (lambda r: r.update(CertificateType="Exemption"), "unknown CertificateType"),
        (lambda r: r.update(Country="DE"), "another country"),
        (lambda r: r.update(Version="1.0"), "semantic version"),
        (lambda r: r.update(Engine="JSONLOGIC"), "CERTLOGIC"),
        (lambda r: r.update(Description="text"), "Description"),
        (lambda r: r.update(ValidTo="2024-01-01T00:00:00Z"), "ends before it begins"),
        (lambda r: r.update(ValidFrom="soon"), "ValidFrom"),
        (lambda r: r.update(AffectedFields="v.0"), "AffectedFields"),
        (lambda r: r.update(Logic={"nope": [1]}), "invalid Logic"),
    ],
)
def test_malformed_rules(change, message: str) -> None:
    document = copy.deepcopy(rule("VR-CN-0001", True))
    change(document)

    with pytest.raises(InvalidBusinessRule, match=message):
        parse_rule(document)


def test_a_repeated_version_is_refused() -> None:
    with pytest.raises(InvalidBusinessRule, match="twice"):
        load_rules([rule("VR-CN-0001", True), rule("VR-CN-0001", False)])
