"""Importing foreign certificates as evidence, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthcode.certificates.errors import (
    CertificateInUse,
    ExpiredCertificate,
    ForgedCertificate,
    HolderMismatch,
    InvalidCertificate,
    UnknownSigner,
    UnusableCertificate,
)
from healthcode.certificates.rules import load_rules
from healthcode.certificates.services import (
    CertificateTrust,
    certificate_texts,
    import_certificate,
)
from healthcode.certificates.shc import IssuerDirectory
from healthcode.codes import qr
from healthcode.feeds.models import FeedImport, LabResult, Vaccination
from healthcode.identity.documents import parse_document
from healthcode.identity.services import register_resident
from healthcode.status.services import (
    current_status,
    recolor_residents,
)

from .support import (
    NOW,
    SHC_ABSENT,
    SHC_DATA,
    SPEC_ISSUER,
    card_payload,
    immunization_bundle,
    issue_dcc,
    lab_bundle,
    lab_test_payload,
    make_signer,
    numeric,
    recovery_payload,
    sign_card,
    vaccination_payload,
)

PASSPORT_NAME = "Gabriele Musterfrau-Gößinger"

SIGNER = make_signer()


@pytest.fixture
def trust() -> CertificateTrust:
    return CertificateTrust(signers=SIGNER.signers())


def visitor(
    session: Session,
    *,
    number: str = "C01X00T47",
    name: str = PASSPORT_NAME,
    confirmed: bool = True,
):
    document = parse_document("passport", number, "DEU", today=NOW.date())
    resident = register_resident(session, document, name, NOW - timedelta(days=2))
    if confirmed:
        # The entry record that confirms a visitor is another domain's;
        # here the visitor simply arrives confirmed.
        resident.identity_state = "confirmed"
        resident.identity_confirmed_at = NOW - timedelta(days=2)
        session.flush()
        recolor_residents(session, [resident.id], NOW, "identity")
    return resident


def rows(session: Session, model) -> list[tuple]:
    return [
        tuple(row)
        for row in session.execute(
            sa.select(model.resident_id, model.department, model.source_id).order_by(
                model.id
            )
        )
    ]


def test_a_vaccination_becomes_a_record(engine, trust) -> None:
    text = issue_dcc(vaccination_payload(), SIGNER)

    with Session(engine) as session, session.begin():
        resident = visitor(session)
        evidence = import_certificate(session, resident, text, now=NOW, trust=trust)
        stored = session.execute(
            sa.select(
                Vaccination.administered_at,
                Vaccination.product,
                Vaccination.dose_number,
            )
        ).all()
        vaccinations = rows(session, Vaccination)
        colour = current_status(session, resident.id, NOW).colour
        resident_id = resident.id

    uvci = "URN:UVCI:01:AT:10807843F94AEE0EE5093FBC254BD813#B"
    assert vaccinations == [(resident_id, "eu-dcc", uvci)]
    assert stored == [(datetime(2026, 1, 20, tzinfo=UTC), "EU/1/20/1528", 2)]
    assert evidence.certificate_id == uvci
    assert evidence.department == "eu-dcc"
    assert [(r.table, r.new) for r in evidence.records] == [("vaccinations", True)]
    assert (colour, evidence.colour_changes) == ("green", 0)


def test_a_positive_test_turns_the_visitor_red_with_its_source(engine, trust) -> None:
    text = issue_dcc(lab_test_payload(result="260373001"), SIGNER)

    with Session(engine) as session, session.begin():
        resident = visitor(session)
        before = current_status(session, resident.id, NOW).colour
        evidence = import_certificate(session, resident, text, now=NOW, trust=trust)
        after = current_status(session, resident.id, NOW)
        labs = session.execute(
            sa.select(
                LabResult.sampled_at, LabResult.method, LabResult.result, LabResult.lab
            )
        ).all()

    assert (before, after.colour) == ("green", "red")
    assert evidence.colour_changes == 1
    assert labs == [
        (
            datetime(2026, 3, 9, 7, 30, tzinfo=UTC),
            "pcr",
            "positive",
            "Testing center Vienna 1",
        )
    ]
    (reason,) = after.reasons
    assert reason["rule"] == "RED-POSITIVE-TEST"
    assert reason["evidence"]["ref"] == {
        "kind": "lab-result",
        "department": "eu-dcc",
        "recordId": "URN:UVCI:01:AT:71EE2559DE38C6BF7304FB65A1A451ECE#3",
    }


def test_a_recovery_is_the_positive_test_it_rests_on(engine, trust) -> None:
    text = issue_dcc(recovery_payload(first_positive="2026-03-01"), SIGNER)

    with Session(engine) as session, session.begin():
        resident = visitor(session)
        import_certificate(session, resident, text, now=NOW, trust=trust)
        labs = session.execute(
            sa.select(LabResult.sampled_at, LabResult.method, LabResult.result)
        ).all()
        colour = current_status(session, resident.id, NOW).colour

    assert labs == [(datetime(2026, 3, 1, tzinfo=UTC), "pcr", "positive")]
    assert colour == "red"


def test_the_passport_name_in_another_order_and_script(engine, trust) -> None:
    text = issue_dcc(vaccination_payload(), SIGNER)

    with Session(engine) as session, session.begin():
        resident = visitor(session, name="MUSTERFRAU-GÖSSINGER GABRIELE")
        evidence = import_certificate(session, resident, text, now=NOW, trust=trust)

    assert evidence.records[0].new


def test_another_persons_certificate_is_refused(engine, trust) -> None:
    text = issue_dcc(vaccination_payload(), SIGNER)

    with Session(engine) as session, session.begin():
        resident = visitor(session, name="Stanisław Rogaliński-Król")
        with pytest.raises(HolderMismatch) as refused:
            import_certificate(session, resident, text, now=NOW, trust=trust)
        written = rows(session, Vaccination)

    assert written == []
    assert "Rogali" not in str(refused.value)
    assert "Gabriele" not in str(refused.value)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (
            lambda: issue_dcc(vaccination_payload(), make_signer(key="rsa", serial=9)),
            UnknownSigner,
        ),
        (
            lambda: issue_dcc(
                vaccination_payload(), SIGNER, expires_at=NOW - timedelta(days=1)
            ),
            ExpiredCertificate,
        ),
        (
            lambda: issue_dcc(vaccination_payload(), SIGNER).replace("NCF", "NCG", 1),
            InvalidCertificate,
        ),
    ],
)
def test_forged_unknown_or_expired_certificates_are_refused(
    engine, trust, make, error
) -> None:
    with Session(engine) as session, session.begin():
        resident = visitor(session)
        with pytest.raises(error):
            import_certificate(session, resident, make(), now=NOW, trust=trust)
        imports = session.scalars(sa.select(FeedImport.id)).all()

    assert imports == []


def test_a_tampered_certificate_is_forged(engine, trust) -> None:
    other = make_signer(key="impostor", serial=3)
    text = issue_dcc(vaccination_payload(), other)
    # The impostor puts our signer's key id on a certificate it signed.
    forged = issue_dcc(vaccination_payload(), other, kid=SIGNER.kid)

    with Session(engine) as session, session.begin():
        resident = visitor(session)
        with pytest.raises(ForgedCertificate):
            import_certificate(session, resident, forged, now=NOW, trust=trust)
        with pytest.raises(UnknownSigner):
            import_certificate(session, resident, text, now=NOW, trust=trust)


def test_the_same_certificate_twice_adds_nothing(engine, trust) -> None:
    text = issue_dcc(vaccination_payload(), SIGNER)

    with Session(engine) as session, session.begin():
        resident = visitor(session)
        first = import_certificate(session, resident, text, now=NOW, trust=trust)
        second = import_certificate(
            session, resident, text, now=NOW + timedelta(hours=1), trust=trust
        )
        count = len(rows(session, Vaccination))
        imports = len(session.scalars(sa.select(FeedImport.id)).all())

    assert (first.already_imported, second.already_imported) == (False, True)
    assert (count, imports) == (1, 1)


def test_one_certificate_cannot_serve_two_visitors(engine, trust) -> None:
    text = issue_dcc(vaccination_payload(), SIGNER)

    with Session(engine) as session, session.begin():
        first = visitor(session)
        second = visitor(session, number="C01X00T48")
        import_certificate(session, first, text, now=NOW, trust=trust)
        with pytest.raises(CertificateInUse):
            import_certificate(session, second, text, now=NOW, trust=trust)


def test_business_rules_can_refuse_a_certificate(engine) -> None:
    rules = load_rules(
        [
            {
                "Identifier": "VR-CN-0001",
                "Type": "Acceptance",
                "Country": "CN",
                "Version": "1.0.0",
                "SchemaVersion": "1.3.0",
                "Engine": "CERTLOGIC",
                "EngineVersion": "1.3.3",
                "CertificateType": "Vaccination",
                "Description": [{"lang": "en", "desc": "The series is complete."}],
                "ValidFrom": "2025-01-01T00:00:00Z",
                "ValidTo": "2030-01-01T00:00:00Z",
                "AffectedFields": ["v.0.dn", "v.0.sd"],
                "Logic": {">=": [{"var": "payload.v.0.dn"}, {"var": "payload.v.0.sd"}]},
            }
        ]
    )
    trust = CertificateTrust(signers=SIGNER.signers(), rules=tuple(rules))
    complete = issue_dcc(vaccination_payload(), SIGNER)
    partial = issue_dcc(
        vaccination_payload(dose=1, uvci="URN:UVCI:01:AT:1111#Q"), SIGNER
    )

    with Session(engine) as session, session.begin():
        resident = visitor(session)
        accepted = import_certificate(session, resident, complete, now=NOW, trust=trust)
        with pytest.raises(UnusableCertificate, match="VR-CN-0001"):
            import_certificate(session, resident, partial, now=NOW, trust=trust)

    assert accepted.rule_report is not None
    assert [o.result for o in accepted.rule_report.outcomes] == ["passed"]


def test_a_test_type_outside_the_value_sets_is_not_evidence(engine, trust) -> None:
    text = issue_dcc(lab_test_payload(kind="94558-4"), SIGNER)

    with Session(engine) as session, session.begin():
        resident = visitor(session)
        with pytest.raises(UnusableCertificate):
            import_certificate(session, resident, text, now=NOW, trust=trust)


def test_a_long_uvci_becomes_a_digest_of_itself(engine, trust) -> None:
    uvci = "URN:UVCI:01:AT:" + "A" * 60 + "#Z"
    text = issue_dcc(vaccination_payload(uvci=uvci), SIGNER)

    with Session(engine) as session, session.begin():
        resident = visitor(session)
        evidence = import_certificate(session, resident, text, now=NOW, trust=trust)

    source_id = evidence.records[0].source_id
    assert source_id.startswith("sha256:") and len(source_id) == 64
    assert evidence.certificate_id == uvci


@pytest.mark.skipif(not SHC_DATA.is_dir(), reason=SHC_ABSENT)
def test_a_smart_health_card_becomes_records(engine) -> None:
    issuers = IssuerDirectory.from_jwks_file(
        SPEC_ISSUER, SHC_DATA / "spec-issuer" / "jwks.json"
    )
    trust = CertificateTrust(issuers=issuers)
    immunized = "shc:/" + numeric(sign_card(card_payload(immunization_bundle())))
    tested = sign_card(
        card_payload(
            lab_bundle(),
            types=["https://smarthealth.cards#health-card"],
        )
    )

    with Session(engine) as session, session.begin():
        resident = visitor(session, name="John B. Anyperson")
        doses = import_certificate(session, resident, immunized, now=NOW, trust=trust)
        test = import_certificate(session, resident, tested, now=NOW, trust=trust)
        vaccinations = session.execute(
            sa.select(
                Vaccination.department, Vaccination.product, Vaccination.dose_number
            )
        ).all()
        labs = session.execute(
            sa.select(LabResult.department, LabResult.method, LabResult.result)
        ).all()

    assert vaccinations == [("shc", "cvx:207", 1), ("shc", "cvx:207", 2)]
    assert labs == [("shc", "antigen", "negative")]
    assert doses.records[0].source_id == f"{doses.certificate_id}/resource:1"
    assert test.department == "shc"


def test_certificate_texts_from_files(tmp_path: Path) -> None:
    text = issue_dcc(vaccination_payload(), SIGNER)
    typed = tmp_path / "certificate.txt"
    typed.write_text(text + "\n", encoding="utf-8")
    image = tmp_path / "certificate.png"
    qr.write_png(text, image)
    card = tmp_path / "cards.smart-health-card"
    card.write_text(json.dumps({"verifiableCredential": ["a.b.c", "d.e.f"]}))

    assert certificate_texts([typed]) == [text]
    assert certificate_texts([image]) == [text]
    assert certificate_texts([card]) == ["a.b.c", "d.e.f"]
    with pytest.raises(InvalidCertificate):
        certificate_texts([typed, card])


def test_text_that_is_no_certificate(engine, trust) -> None:
    with Session(engine) as session, session.begin():
        resident = visitor(session)
        with pytest.raises(InvalidCertificate, match="neither an EU DCC"):
            import_certificate(session, resident, "hello", now=NOW, trust=trust)
