"""A visitor's foreign certificate as evidence: read, match, record, recolour.

:func:`import_certificate` takes the text of an EU DCC (``HC1:``) or a SMART
Health Card (``shc:/`` QR text, its legacy chunks one per line, or the
compact JWS) for a registered resident, and in the caller's transaction:

1. reads and verifies it offline against the configured trust (document
   signers, issuer keys) at the given clock; a forged, damaged, expired or
   not yet valid certificate is refused with its reason;
2. matches its holder to the resident: the name in ICAO 9303 form against the
   passport name, the date of birth where both have one; another person's
   certificate is refused;
3. for an EU DCC, runs the configured business rules of our country; a
   certificate they do not accept is refused, naming the rules;
4. writes each vaccination, test or recovery as a record of the department
   ``eu-dcc`` or ``shc`` with the certificate's id as its record id, so that
   importing the same certificate twice adds nothing and another resident
   cannot use it;
5. recolours the resident, so the new colour commits with the records.

A recovery certificate becomes the positive test it rests on (its date of
first positive result): our rules then treat it like any positive result,
and a visitor who tested positive less than 14 days ago is red until two
negative tests, as anyone else would be.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from healthcode.certificates import dcc, shc
from healthcode.certificates.errors import (
    CertificateInUse,
    HolderMismatch,
    InvalidBusinessRule,
    InvalidCertificate,
    TrustConfigurationError,
    UnusableCertificate,
)
from healthcode.certificates.names import CertificateName, DateOfBirth, holder_matches
from healthcode.certificates.rules import (
    BusinessRule,
    RuleReport,
    load_rules,
    run_rules,
)
from healthcode.feeds.models import FeedImport, LabResult, Vaccination
from healthcode.identity.models import Resident

__all__ = [
    "DCC_DEPARTMENT",
    "SHC_DEPARTMENT",
    "CertificateEvidence",
    "CertificateTrust",
    "EvidenceRecord",
    "certificate_texts",
    "import_certificate",
]

log = structlog.get_logger(__name__)

DCC_DEPARTMENT = "eu-dcc"
SHC_DEPARTMENT = "shc"
RECOLOR_CAUSE = "certificate"
# Record ids are at most 64 characters (the column's width); a longer UVCI
# (the specification allows 80) is kept as a digest of itself.
_SOURCE_ID_LENGTH = 64

# LOINC test types of the EU DCC and what our records call them.
_DCC_TEST_METHODS = {"LP6464-4": "pcr", "LP217198-3": "antigen"}
# SNOMED CT results of the EU DCC value set.
_DCC_TEST_RESULTS = {"260415000": "negative", "260373001": "positive"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class CertificateTrust:
    """What a certificate is checked against: signers, issuers, rules.

    ``country`` is where certificates are presented, whose acceptance rules
    run; ``skew`` forgives an issuer's clock running a little ahead.
    """

    signers: dcc.SignerList = field(default_factory=dcc.SignerList)
    issuers: shc.IssuerDirectory = field(default_factory=shc.IssuerDirectory)
    rules: tuple[BusinessRule, ...] = ()
    country: str = "CN"
    value_sets: Mapping[str, Sequence[str]] = field(default_factory=dict)
    skew: timedelta = timedelta(minutes=5)

    @classmethod
    def from_files(
        cls,
        *,
        signers: Path | None = None,
        issuers: Path | None = None,
        rules: Path | None = None,
        country: str = "CN",
        skew: timedelta = timedelta(minutes=5),
    ) -> CertificateTrust:
        """Load the configured files; any that cannot be used fails at once."""
        rule_list: tuple[BusinessRule, ...] = ()
        if rules is not None:
            try:
                documents = json.loads(Path(rules).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise TrustConfigurationError(
                    f"The business rule file {rules} cannot be read as JSON."
                ) from exc
            if not isinstance(documents, list):
                raise TrustConfigurationError(
                    f"The business rule file {rules} must be a JSON array of rules."
                )
            try:
                rule_list = tuple(load_rules(documents))
            except InvalidBusinessRule as exc:
                raise TrustConfigurationError(
                    f"The business rule file {rules} holds a bad rule: {exc}"
                ) from exc
        return cls(
            signers=dcc.SignerList.from_file(signers) if signers else dcc.SignerList(),
            issuers=(
                shc.IssuerDirectory.from_file(issuers)
                if issuers
                else shc.IssuerDirectory()
            ),
            rules=rule_list,
            country=country,
            skew=skew,
        )


@dataclass(frozen=True)
class EvidenceRecord:
    """One record written (or found already written) from a certificate."""

    table: str
    source_id: str
    at: datetime
    description: str
    new: bool


@dataclass(frozen=True)
class CertificateEvidence:
    """What importing one certificate did."""

    department: str
    certificate_id: str
    resident_id: int
    kind: str
    issuer: str | None
    expires_at: datetime | None
    date_of_birth: DateOfBirth | None
    records: tuple[EvidenceRecord, ...]
    rule_report: RuleReport | None
    colour_changes: int

    @property
    def already_imported(self) -> bool:
        """True when every record was there before: nothing was written."""
        return not any(record.new for record in self.records)


@dataclass(frozen=True)
class _Reading:
    department: str
    certificate_id: str
    kind: str
    issuer: str | None
    expires_at: datetime | None
    name: CertificateName
    birth: DateOfBirth | None
    rows: list[tuple[str, dict[str, Any], str]]
    rule_report: RuleReport | None


def import_certificate(
    session: Session,
    resident: Resident,
    text: str,
    *,
    now: datetime,
    trust: CertificateTrust,
) -> CertificateEvidence:
    """Make a certificate evidence for ``resident``; raise the reason if refused."""
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise TypeError("The clock must be an aware datetime.")
    reading = _read(text, now=now, trust=trust)
    if not holder_matches(
        resident.name, resident.birth_date, reading.name, reading.birth
    ):
        raise HolderMismatch(
            "The certificate names another person than the visitor: the name or "
            "the date of birth does not match the passport."
        )
    if reading.rule_report is not None and not reading.rule_report.accepted:
        names = ", ".join(o.rule.identifier for o in reading.rule_report.not_passed())
        raise UnusableCertificate(
            f"The certificate is not accepted here: rule {names} did not pass."
        )
    for _, values, _ in reading.rows:
        moment = values.get("administered_at") or values.get("sampled_at")
        if moment > now + trust.skew:
            raise UnusableCertificate(
                "The certificate dates its vaccination or test in the future."
            )

    records, import_id = _write(session, resident, reading, now)
    changed = 0
    if import_id is not None:
        changed = _recolor(session, resident.id, now)
        session.execute(
            sa.update(FeedImport.__table__)
            .where(FeedImport.__table__.c.id == import_id)
            .values(statuses_changed=changed)
        )
    log.info(
        "certificate_imported",
        resident_id=resident.id,
        department=reading.department,
        kind=reading.kind,
        records=len(records),
        new=sum(record.new for record in records),
        colour_changes=changed,
    )
    return CertificateEvidence(
        department=reading.department,
        certificate_id=reading.certificate_id,
        resident_id=resident.id,
        kind=reading.kind,
        issuer=reading.issuer,
        expires_at=reading.expires_at,
        date_of_birth=reading.birth,
        records=tuple(records),
        rule_report=reading.rule_report,
        colour_changes=changed,
    )


def certificate_texts(paths: Sequence[Path]) -> list[str]:
    """The certificate texts in files: QR images, card files or text files.

    Several images, or a text file of several ``shc:/`` lines, are the chunks
    of one legacy SMART Health Card. A ``.smart-health-card`` file may hold
    several cards; each is one text.
    """
    if not paths:
        raise InvalidCertificate("No certificate file was given.")
    if all(Path(path).suffix.lower() in _IMAGE_SUFFIXES for path in paths):
        texts = [dcc.read_qr_image(path) for path in paths]
        if texts[0].startswith("shc:"):
            return ["\n".join(shc.read_qr_images(paths))]
        if len(texts) > 1:
            raise InvalidCertificate("Only a chunked health card spans several images.")
        return texts
    if len(paths) > 1:
        raise InvalidCertificate("Give one certificate file at a time.")
    path = Path(paths[0])
    if path.suffix == shc.FILE_SUFFIX:
        return shc.read_card_file(path)
    try:
        content = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidCertificate(
            "The certificate file cannot be read as UTF-8."
        ) from exc
    # A text file ends in a line break that is not part of the certificate;
    # anything else (a space is a Base45 character) is kept exactly.
    for ending in ("\r\n", "\n"):
        if content.endswith(ending):
            content = content[: -len(ending)]
            break
    return [content]


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _read(text: str, *, now: datetime, trust: CertificateTrust) -> _Reading:
    if not isinstance(text, str):
        raise InvalidCertificate("A certificate must be given as text.")
    if text.startswith(dcc.PREFIX):
        certificate = dcc.read_certificate(
            text, signers=trust.signers, now=now, skew=trust.skew
        )
        report = None
        if trust.rules:
            report = run_rules(
                trust.rules,
                certificate,
                now=now,
                country=trust.country,
                value_sets=trust.value_sets,
            )
        return _Reading(
            department=DCC_DEPARTMENT,
            certificate_id=certificate.identifier,
            kind=certificate.kind.label,
            issuer=certificate.claims.issuer,
            expires_at=certificate.claims.expires_at,
            name=certificate.name,
            birth=certificate.date_of_birth,
            rows=_dcc_rows(certificate),
            rule_report=report,
        )
    if text.startswith("shc:") or _JWS.fullmatch(text):
        lines = text.splitlines() if text.startswith("shc:") else [text]
        card = shc.read_card(lines, issuers=trust.issuers, now=now, skew=trust.skew)
        rows = _shc_rows(card)
        return _Reading(
            department=SHC_DEPARTMENT,
            certificate_id=card.identifier,
            kind="health card",
            issuer=card.issuer,
            expires_at=card.expires_at,
            name=card.name,
            birth=card.birth_date,
            rows=rows,
            rule_report=None,
        )
    raise InvalidCertificate(
        "The text is neither an EU DCC (HC1:) nor a SMART Health Card."
    )


def _dcc_rows(
    certificate: dcc.DigitalCovidCertificate,
) -> list[tuple[str, dict[str, Any], str]]:
    entry = certificate.entry
    kind = certificate.kind
    if kind is dcc.CertificateKind.VACCINATION:
        values = {
            "administered_at": _entry_instant(entry["dt"], "vaccination date"),
            "product": str(entry["mp"]),
            "dose_number": int(entry["dn"]),
        }
        return [("vaccinations", values, f"dose {entry['dn']} of {entry['mp']}")]
    if kind is dcc.CertificateKind.TEST:
        method = _DCC_TEST_METHODS.get(entry["tt"])
        result = _DCC_TEST_RESULTS.get(entry["tr"])
        if method is None or result is None:
            raise UnusableCertificate(
                "The test certificate names a test type or result outside the EU "
                "value sets, so it cannot be taken as a test result."
            )
        values = {
            "sampled_at": _entry_instant(entry["sc"], "sample time"),
            "reported_at": (
                _entry_instant(entry["dr"], "result time") if entry.get("dr") else None
            ),
            "method": method,
            "result": result,
            "lab": entry.get("tc") or entry.get("is"),
        }
        return [("lab_results", values, f"{method} test, {result}")]
    values = {
        "sampled_at": _entry_instant(entry["fr"], "date of the first positive test"),
        "reported_at": None,
        "method": "pcr",
        "result": "positive",
        "lab": entry.get("is"),
    }
    return [("lab_results", values, "recovery: the positive test it rests on")]


def _shc_rows(card: shc.HealthCard) -> list[tuple[str, dict[str, Any], str]]:
    rows: list[tuple[str, dict[str, Any], str]] = []
    for immunization in card.immunizations:
        values = {
            "administered_at": immunization.occurred_at,
            "product": f"{immunization.system}:{immunization.code}",
            "dose_number": immunization.dose_number,
            "_source_id": _source_id(f"{card.identifier}/{immunization.entry}"),
        }
        rows.append(
            (
                "vaccinations",
                values,
                f"dose {immunization.dose_number} of {values['product']}",
            )
        )
    for lab in card.lab_results:
        if lab.method is None or lab.result is None:
            continue
        values = {
            "sampled_at": lab.effective_at,
            "reported_at": None,
            "method": lab.method,
            "result": lab.result,
            "lab": lab.performer,
            "_source_id": _source_id(f"{card.identifier}/{lab.entry}"),
        }
        rows.append(("lab_results", values, f"{lab.method} test, {lab.result}"))
    if not rows:
        raise UnusableCertificate(
            "The card holds no immunization and no COVID-19 test result we can "
            "take as evidence."
        )
    return rows


def _entry_instant(value: Any, what: str) -> datetime:
    # Dates without a time (vaccination, first positive test) are midnight
    # UTC, as CertLogic reads them; several issuers write a date-time where
    # the specification names a date, and then the instant counts.
    try:
        return dcc.parse_instant(str(value))
    except ValueError:
        raise UnusableCertificate(
            f"The certificate's {what} is not a date or date-time."
        ) from None


def _source_id(identifier: str) -> str:
    if len(identifier) <= _SOURCE_ID_LENGTH:
        return identifier
    digest = hashlib.sha256(identifier.encode("utf-8")).hexdigest()
    return "sha256:" + digest[: _SOURCE_ID_LENGTH - len("sha256:")]


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _write(
    session: Session, resident: Resident, reading: _Reading, now: datetime
) -> tuple[list[EvidenceRecord], int | None]:
    """Write the records that are new; the import row's id if any was."""
    tables = {"vaccinations": Vaccination, "lab_results": LabResult}
    planned = []
    for table, values, description in reading.rows:
        values = dict(values)
        source_id = values.pop("_source_id", None) or _source_id(reading.certificate_id)
        model = tables[table]
        held = session.execute(
            sa.select(model.id, model.resident_id).where(
                model.department == reading.department, model.source_id == source_id
            )
        ).one_or_none()
        if held is not None and held.resident_id != resident.id:
            raise CertificateInUse(
                "The certificate is already evidence for another resident."
            )
        planned.append((model, table, values, description, source_id, held is None))

    import_id = None
    records = []
    for model, table, values, description, source_id, new in planned:
        moment = values.get("administered_at") or values["sampled_at"]
        if new:
            if import_id is None:
                import_id = _import_row(session, reading, now, len(planned))
            session.add(
                model(
                    resident_id=resident.id,
                    department=reading.department,
                    source_id=source_id,
                    content_hash=_digest(values),
                    import_id=import_id,
                    **values,
                )
            )
        records.append(EvidenceRecord(table, source_id, moment, description, new))
    session.flush()
    return records, import_id


def _import_row(session: Session, reading: _Reading, now: datetime, rows: int) -> int:
    # Every record points at the import that brought it; a certificate is a
    # one-record "file" whose name is its department and whose digest is of
    # its id, so the row says where the records came from without keeping
    # the certificate's personal content a second time.
    result = session.execute(
        sa.insert(FeedImport.__table__).returning(FeedImport.__table__.c.id),
        {
            "kind": "certificate",
            "department": reading.department,
            "file_name": f"{reading.department} certificate",
            "sha256": hashlib.sha256(reading.certificate_id.encode()).hexdigest(),
            "zone": "UTC",
            "mode": "certificate",
            "started_at": now,
            "finished_at": now,
            "rows_read": rows,
            "rows_imported": rows,
            "rows_updated": 0,
            "rows_unchanged": 0,
            "rows_rejected": 0,
            "statuses_changed": 0,
        },
    )
    return int(result.scalar_one())


def _digest(values: Mapping[str, Any]) -> str:
    canonical = orjson.dumps(
        {key: _jsonable(value) for key, value in values.items()},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()[:32]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _recolor(session: Session, resident_id: int, now: datetime) -> int:
    from healthcode.status.services import recolor_residents

    return recolor_residents(session, [resident_id], now, RECOLOR_CAUSE)
