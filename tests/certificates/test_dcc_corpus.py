"""The public EU DCC test corpus: every expectation of every case, by country.

Each case file holds a certificate in all its forms (QR image, ``HC1:`` text,
Base45, zlib stream, COSE message, CBOR, JSON), the signer's certificate and
a validation clock, and under ``EXPECTEDRESULTS`` one boolean per check. Each
check is run here through our own reader, stage by stage, and must come out
as the case expects: a true expectation passes, a false one is refused by
that stage (or, where the stage gives bytes, gives bytes other than the
case's). A check is skipped, with its reason, when the case lacks an input
it needs, or when ``known_issues.csv`` says its expectation is wrong.

The table per country is printed whatever the outcome.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cbor2
import pytest

from healthcode.certificates import dcc
from healthcode.certificates.errors import (
    CertificateSchemaError,
    InvalidCertificate,
    TrustConfigurationError,
)

CORPUS = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "eu-dcc"
).resolve()
CORPUS_ABSENT = f"The EU DCC test corpus is not at {CORPUS}."

# The corpus's known issues name the test functions of its own harness; each
# of them checks one expectation.
ISSUE_CHECKS = {
    "test_picture_decode": "EXPECTEDPICTUREDECODE",
    "test_un_prefix": "EXPECTEDUNPREFIX",
    "test_b45decode": "EXPECTEDB45DECODE",
    "test_compression": "EXPECTEDCOMPRESSION",
    "test_cose_json": "EXPECTEDDECODE",
    "test_cose_cbor": "EXPECTEDDECODE",
    "test_cbor_json": "EXPECTEDVALIDJSON",
    "test_cose_schema": "EXPECTEDSCHEMAVALIDATION",
    "test_verification_check": "EXPECTEDVERIFY",
    "test_expiration_check": "EXPECTEDEXPIRATIONCHECK",
    "test_expected_key_usage": "EXPECTEDKEYUSAGE",
}


class Skip(Exception):
    """A check that cannot run on this case, with the reason."""


@dataclass(frozen=True)
class Case:
    path: Path
    country: str
    name: str
    data: dict[str, Any]

    def field(self, key: str) -> Any:
        if key not in self.data:
            raise Skip(f"the case has no {key}")
        return self.data[key]

    def hex_field(self, key: str) -> bytes:
        return binascii.unhexlify(self.field(key))

    def signer(self) -> dcc.DocumentSigner:
        context = self.field("TESTCTX")
        if not context.get("CERTIFICATE"):
            raise Skip("the case has no signer certificate")
        return dcc.DocumentSigner.from_base64(context["CERTIFICATE"])

    def clock(self) -> datetime:
        return dcc.parse_instant(self.field("TESTCTX")["VALIDATIONCLOCK"])


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("**/*.json")):
        country = path.relative_to(CORPUS).parts[0]
        data = json.loads(path.read_text(encoding="utf-8"))
        cases.append(Case(path, country, path.stem, data))
    return cases


def load_known_issues() -> dict[tuple[str, str, str], str]:
    issues = {}
    with (CORPUS / "known_issues.csv").open(encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            check = ISSUE_CHECKS[row["test_name"]]
            issues[(check, row["country"], row["test_set"])] = row["reason"]
    return issues


def known_issue(
    issues: dict[tuple[str, str, str], str], check: str, case: Case
) -> str | None:
    return issues.get((check, case.country, case.name)) or issues.get(
        (check, case.country, "")
    )


# --------------------------------------------------------------------------
# The checks. Each returns whether our reader's output equals the case's own
# next form, or raises InvalidCertificate where our reader refuses. Where a
# case lacks a form, it is made from the form before it by our own stages
# (a case with only Base45 still has its signature checked), so a missing
# form is a skip only when nothing earlier exists either.
# --------------------------------------------------------------------------


def compressed(case: Case) -> bytes:
    if "COMPRESSED" in case.data:
        return case.hex_field("COMPRESSED")
    if "BASE45" in case.data:
        return dcc.decode_base45(case.field("BASE45"))
    return dcc.decode_base45(dcc.strip_prefix(case.field("PREFIX")))


def cose(case: Case) -> bytes:
    if "COSE" in case.data:
        return case.hex_field("COSE")
    if not {"COMPRESSED", "BASE45", "PREFIX"} & case.data.keys():
        raise Skip("the case has no COSE nor any form it comes from")
    return dcc.decompress(compressed(case))


def sign1(case: Case) -> dcc.Sign1:
    return dcc.decode_sign1(cose(case))


def payload(case: Case) -> dict[str, Any]:
    """The certificate map from the most authoritative form the case has."""
    if "CBOR" in case.data and "COSE" not in case.data:
        return cbor_map(case.hex_field("CBOR"))
    try:
        message = sign1(case)
    except Skip:
        return dict(case.field("JSON"))
    return dcc.decode_claims(message.payload).payload


def same(ours: Any, theirs: Any) -> bool:
    """Equal content, reading two date-times as equal when they are one instant.

    A case's JSON sometimes writes an instant another way than its CBOR does
    (``+00:00`` for ``Z``); that is the same certificate.
    """
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(
            same(ours[key], theirs[key]) for key in ours
        )
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(
            same(a, b) for a, b in zip(ours, theirs, strict=True)
        )
    if isinstance(ours, str) and isinstance(theirs, str) and ours != theirs:
        if "T" not in ours or "T" not in theirs:
            return False
        try:
            return dcc.parse_instant(ours) == dcc.parse_instant(theirs)
        except ValueError:
            return False
    return type(ours) is type(theirs) and ours == theirs


def cbor_map(data: bytes) -> dict[str, Any]:
    # Test systems put either the whole CWT or the certificate map alone in
    # the CBOR field; our reader has a function for each.
    try:
        return dcc.decode_claims(data).payload
    except InvalidCertificate:
        return dcc.decode_hcert(data)


def picture(case: Case) -> bytes | Path:
    """The QR image: in the case itself, or else a file in the country's png/."""
    if "2DCODE" in case.data:
        return base64.b64decode(case.field("2DCODE"))
    folder = case.path.parents[2] / "png"
    stem = case.name.removesuffix("_Raw")
    for name in (stem, stem.replace("_", "-", 1)):
        if (folder / f"{name}.png").is_file():
            return folder / f"{name}.png"
    raise Skip("the case has no 2DCODE and its country no image of that name")


def check_picture(case: Case) -> bool:
    return dcc.read_qr_image(picture(case)) == case.field("PREFIX")


def check_prefix(case: Case) -> bool:
    return dcc.strip_prefix(case.field("PREFIX")) == case.field("BASE45")


def check_base45(case: Case) -> bool:
    decoded = dcc.decode_base45(case.field("BASE45"))
    if "COMPRESSED" in case.data:
        return decoded == case.hex_field("COMPRESSED")
    if "COSE" in case.data:
        return dcc.decompress(decoded) == case.hex_field("COSE")
    dcc.decode_sign1(dcc.decompress(decoded))
    return True


def check_compression(case: Case) -> bool:
    inflated = dcc.decompress(compressed(case))
    if "COSE" in case.data:
        return inflated == case.hex_field("COSE")
    dcc.decode_sign1(inflated)
    return True


def check_decode(case: Case) -> bool:
    expected = case.field("JSON")
    if "COSE" not in case.data and "CBOR" in case.data:
        return same(cbor_map(case.hex_field("CBOR")), expected)
    return same(dcc.decode_claims(sign1(case).payload).payload, expected)


def check_valid_json(case: Case) -> bool:
    if "CBOR" in case.data:
        return same(cbor_map(case.hex_field("CBOR")), case.field("JSON"))
    return same(dcc.decode_claims(sign1(case).payload).payload, case.field("JSON"))


def check_valid_object(case: Case) -> bool:
    dcc.decode_claims(sign1(case).payload)
    return True


def check_encode(case: Case) -> bool:
    # We never issue certificates, so "encode" is checked as a round trip:
    # the JSON, encoded as canonical CBOR, reads back as the case's own
    # encoding does.
    ours = dcc.decode_hcert(cbor2.dumps(case.field("JSON"), canonical=True))
    return same(ours, payload(case)) and same(ours, case.field("JSON"))


def check_schema(case: Case) -> bool:
    dcc.validate_payload(payload(case))
    return True


def check_verify(case: Case) -> bool:
    signer = case.signer()
    found = dcc.verify_signature(sign1(case), dcc.SignerList([signer]))
    return found is signer


def check_expiration(case: Case) -> bool:
    signer = case.signer()
    claims = dcc.decode_claims(sign1(case).payload)
    dcc.check_validity(claims, signer, case.clock())
    return True


def check_lifetime(case: Case) -> bool:
    # The key is misspelt in the corpus (EXPTECTEDEXPIRED), and every case
    # that has it is one whose own lifetime covers the clock, while some of
    # their signers' validity does not cover issued-at: the check it names
    # is the certificate's own expiry.
    claims = dcc.decode_claims(sign1(case).payload)
    dcc.check_lifetime(claims, case.clock())
    return True


def check_key_usage(case: Case) -> bool:
    signer = case.signer()
    kind = dcc.CertificateKind.of(payload(case))
    dcc.check_key_usage(signer, kind)
    return True


def not_a_check(case: Case) -> bool:
    raise Skip("the key names the results block itself, not a check")


CHECKS: dict[str, Callable[[Case], bool]] = {
    "EXPECTEDPICTUREDECODE": check_picture,
    "EXPECTEDUNPREFIX": check_prefix,
    "EXPECTEDB45DECODE": check_base45,
    "EXPECTEDCOMPRESSION": check_compression,
    "EXPECTEDDECODE": check_decode,
    "EXPECTEDVALIDJSON": check_valid_json,
    "EXPECTEDVALIDOBJECT": check_valid_object,
    "EXPECTEDENCODE": check_encode,
    "EXPECTEDSCHEMAVALIDATION": check_schema,
    "EXPECTEDVERIFY": check_verify,
    "EXPECTEDEXPIRATIONCHECK": check_expiration,
    "EXPTECTEDEXPIRED": check_lifetime,
    "EXPECTEDKEYUSAGE": check_key_usage,
    "EXPECTEDRESULTS": not_a_check,
}

# Expectations of the corpus that are wrong in ways known_issues.csv does not
# list; the corpus's own harness fails on each of them too. Each is skipped
# with its reason, by path and check.
_VALUE_SETS = (
    "expects a value-set check that the schema does not make: the schema "
    "annotates value sets without enforcing them, and other cases of the same "
    "version expect codes outside them (729999, ORG-1000030215, NEGATIVO) to "
    "validate"
)
_OTHER_PERSON = "the case's JSON names another person than its COSE and CBOR"
ERRATA = {
    **{
        (f"PL/{version}/2DCode/raw/{name}.json", "EXPECTEDSCHEMAVALIDATION"): (
            _VALUE_SETS
        )
        for version in ("1.0.0", "1.2.1", "1.3.0")
        for name in ("7", "8", "9")
    },
    **{
        (f"PL/1.3.0/2DCode/raw/{name}.json", check): _OTHER_PERSON
        for name in ("1", "5")
        for check in ("EXPECTEDDECODE", "EXPECTEDVALIDJSON")
    },
    ("PL/1.3.0/2DCode/raw/6.json", "EXPECTEDEXPIRATIONCHECK"): (
        "the certificate expires 47 seconds after its signer certificate does"
    ),
}


@dataclass
class Outcome:
    case: Case
    check: str
    status: str  # "passed", "failed" or "skipped"
    detail: str = ""


def run_check(case: Case, check: str, expected: Any) -> Outcome:
    function = CHECKS.get(check)
    if function is None:
        return Outcome(case, check, "failed", f"no check is known for {check}")
    try:
        try:
            result = function(case)
        except (InvalidCertificate, CertificateSchemaError) as exc:
            refused = f"refused ({exc.code}: {exc})"
            if expected is False:
                return Outcome(case, check, "passed", refused)
            return Outcome(case, check, "failed", refused)
    except Skip as skip:
        return Outcome(case, check, "skipped", str(skip))
    except TrustConfigurationError as exc:
        return Outcome(case, check, "skipped", f"the signer is unusable: {exc}")
    if result is (expected is True):
        return Outcome(case, check, "passed")
    return Outcome(case, check, "failed", f"gave {result}, expected {expected}")


def run_corpus() -> list[Outcome]:
    issues = load_known_issues()
    outcomes = []
    for case in load_cases():
        for check, expected in case.data["EXPECTEDRESULTS"].items():
            issue = known_issue(issues, check, case)
            if issue:
                outcomes.append(Outcome(case, check, "skipped", f"known issue {issue}"))
                continue
            erratum = ERRATA.get((case.path.relative_to(CORPUS).as_posix(), check))
            if erratum:
                outcomes.append(Outcome(case, check, "skipped", erratum))
                continue
            outcomes.append(run_check(case, check, expected))
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        counts[outcome.case.country][outcome.status] += 1
        if outcome.status == "skipped":
            reason = outcome.detail
            if reason.startswith("known issue"):
                reason = "known issue"
            elif reason in ERRATA.values():
                reason = "erratum"
            reasons[outcome.case.country][reason] += 1
    lines = [
        "EU DCC corpus: checks per country",
        f"{'country':<8} {'passed':>7} {'failed':>7} {'skipped':>8}  skipped because",
    ]
    total: Counter[str] = Counter()
    for country in sorted(counts):
        row = counts[country]
        total.update(row)
        why = "; ".join(
            f"{n} {reason}" for reason, n in sorted(reasons[country].items())
        )
        lines.append(
            f"{country:<8} {row['passed']:>7} {row['failed']:>7} "
            f"{row['skipped']:>8}  {why}"
        )
    lines.append(
        f"{'total':<8} {total['passed']:>7} {total['failed']:>7} {total['skipped']:>8}"
    )
    return "\n".join(lines)


def test_every_expectation_of_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    if not CORPUS.is_dir():
        pytest.skip(CORPUS_ABSENT)

    outcomes = run_corpus()

    with capsys.disabled():
        print("\n" + table(outcomes))
    failed = [
        f"{o.case.path.relative_to(CORPUS)} {o.check}: {o.detail}"
        for o in outcomes
        if o.status == "failed"
    ]
    assert failed == []
    statuses = Counter(outcome.status for outcome in outcomes)
    # Every expectation in the corpus is accounted for, and the checks that
    # ran are the great majority: a loader that silently found nothing, or
    # a helper that skips too eagerly, shows here.
    assert sum(statuses.values()) == sum(
        len(case.data["EXPECTEDRESULTS"]) for case in load_cases()
    )
    assert statuses["passed"] > 9 * statuses["skipped"]
