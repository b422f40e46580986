"""Request and answer bodies of the HTTP service.

Field names are camelCase on the wire. Requests refuse fields they do not
know, so that a misspelt field is reported instead of silently ignored.
Free text is checked here for what the database cannot hold or a screen
should not show (NUL and other control characters, unpaired surrogates);
instants must carry an offset and lie in a sane range, because the domain
compares them with aware clocks.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from healthcode.identity.documents import DocumentKind

Colour = Literal["green", "grey", "yellow", "red"]
OverrideColour = Literal["green", "yellow", "red"]


class Request(BaseModel):
    """A request body: camelCase fields, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )


class Answer(BaseModel):
    """An answer body: camelCase fields."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _printable(value: str, *, lines: bool) -> str:
    for char in value:
        if "\ud800" <= char <= "\udfff":
            raise ValueError("the text holds an unpaired surrogate")
        category = unicodedata.category(char)
        if category == "Cc" and not (lines and char in "\n\t"):
            raise ValueError("the text holds a control character")
        if category in ("Cs", "Co"):
            raise ValueError("the text holds a character that cannot be shown")
    stripped = value.strip()
    if not stripped:
        raise ValueError("the text is empty")
    return stripped


def _one_line(value: str) -> str:
    return _printable(value, lines=False)


def _many_lines(value: str) -> str:
    return _printable(value, lines=True)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: str) -> str:
    # A JSON string may carry an escaped lone surrogate or a NUL, neither of
    # which UTF-8, the database or Redis can hold; refusing them here keeps
    # them from failing deep in a write. One search does it: every text of
    # an upload passes here, and a loop per character cost more than the
    # rest of parsing the upload.
    if _UNSTORABLE.search(value) is not None:
        raise ValueError("the text holds a NUL or an unpaired surrogate")
    return value


#: Any text a request carries passes this check.
Storable = AfterValidator(_storable)


#: A line of text such as a reason or a purpose.
Line = Annotated[
    str, StringConstraints(min_length=1, max_length=500), AfterValidator(_one_line)
]
#: A message of several lines, such as an appeal.
Message = Annotated[
    str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_many_lines)
]

_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _instant(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("the time needs an offset, such as +08:00 or Z")
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("the time lies outside the years 2000 to 2199") from None
    if not _EARLIEST <= moment < _LATEST:
        raise ValueError("the time lies outside the years 2000 to 2199")
    return moment


#: An instant with an offset, returned in UTC.
Instant = Annotated[datetime, AfterValidator(_instant)]


def _day(value: date) -> date:
    if not _EARLIEST.date() <= value < _LATEST.date():
        raise ValueError("the day lies outside the years 2000 to 2199")
    return value


#: A calendar day in a sane range.
Day = Annotated[date, AfterValidator(_day)]

#: A database id in a path or a body.
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Health(Answer):
    status: Literal["ok", "degraded"]
    version: str
    database: Literal["unreachable"] | None = Field(
        default=None, description="Present when the database does not answer."
    )
    store: Literal["unreachable"] | None = Field(
        default=None,
        description="Present when the shared store (Redis) does not answer:"
        " statuses then come from the database and phones must sign in again.",
    )


class DocumentIn(Request):
    """An identity document: its kind, number and, for passports, country."""

    kind: DocumentKind = DocumentKind.CN_ID
    number: Annotated[str, StringConstraints(min_length=1, max_length=40), Storable]
    country: Annotated[str, StringConstraints(max_length=3), Storable] = Field(
        default="", description="ISO 3166 alpha-3 issuing country, passports only."
    )


def plain(value: Any) -> Any:
    """``value`` with instants as ISO text, for free-form JSON fields."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


# Sign-in

Client = Literal["app", "page"]


class SignInCodeRequest(Request):
    phone: Annotated[str, StringConstraints(min_length=1, max_length=32), Storable] = (
        Field(description="A mainland mobile number, or +country code and number.")
    )


class SignInCodeSent(Answer):
    valid_until: datetime = Field(description="When the code stops working.")


class SignInRequest(Request):
    phone: Annotated[str, StringConstraints(min_length=1, max_length=32), Storable]
    code: Annotated[str, StringConstraints(min_length=1, max_length=12), Storable]
    client: Client = Field(
        default="app",
        description="app: answer with a bearer token; page: set a session cookie.",
    )


class OfficialSignInRequest(Request):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64), Storable]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256), Storable]
    totp: Annotated[str, StringConstraints(min_length=1, max_length=12), Storable] = (
        Field(description="The six digits the authenticator app shows now.")
    )
    client: Client = "app"


class SessionAnswer(Answer):
    """A new session; the token is given once, and only to apps."""

    token: str | None = Field(
        default=None, description="Send as Authorization: Bearer <token>."
    )
    token_type: Literal["bearer"] | None = None
    expires_at: datetime
    caller: str = Field(description="account:<id> or official:<id>.")
    role: str | None = None


class CallerAnswer(Answer):
    caller: str = Field(description="account:<id> or official:<id>.")
    role: str | None = None


# Residents, statuses and codes


class RegisterRequest(Request):
    document: DocumentIn
    name: Annotated[str, StringConstraints(min_length=1, max_length=200), Storable] = (
        Field(description="The name exactly as the document shows it.")
    )
    region_code: (
        Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$"), Storable] | None
    ) = Field(default=None, description="GB/T 2260 county code of residence.")


class StatusAnswer(Answer):
    """A colour, every reason for it, and when it will change by itself."""

    resident_id: int
    colour: Colour
    reasons: list[dict[str, Any]] = Field(
        description="Rule, version, colour, text in zh and en, until, evidence;"
        " an official's override comes first and the reasons it overrides are"
        " marked overridden."
    )
    as_of: datetime
    changes_at: datetime | None
    changes_to: Colour | None
    rule_set: str


class ResidentAnswer(Answer):
    resident_id: int
    masked_name: str
    document: str = Field(description="The document number with its middle hidden.")
    identity_state: Literal["pending", "confirmed", "rejected"]
    holder: Literal["self", "guardian"]
    status: StatusAnswer


class CodeAnswer(Answer):
    """A code just issued; show ``text`` as a QR code in alphanumeric mode."""

    text: str
    purpose: Literal["screen", "paper"]
    colour: Colour | None = Field(description="None on paper codes.")
    masked_name: str
    region: str
    region_name: str
    key_name: str
    issued_at: datetime
    valid_until: datetime
    status_index: int | None = None


class HistoryEvent(Answer):
    at: datetime
    from_colour: Colour | None
    to_colour: Colour
    cause: str
    rules: list[str]


class Visit(Request):
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$"), Storable] = Field(
        description="GB/T 2260 code of the place visited."
    )
    place: Line | None = None
    from_: Instant | None = Field(default=None, alias="from")
    to: Instant | None = None


class DeclarationRequest(Request):
    """Today's health declaration; a visit to another place is optional."""

    fever: bool
    respiratory: bool = Field(description="Cough, sore throat, short breath.")
    visited: Visit | None = None


class DeclarationAnswer(Answer):
    record_id: str
    status: StatusAnswer


# Dependents


class DependentRequest(Request):
    document: DocumentIn
    name: Annotated[str, StringConstraints(min_length=1, max_length=200), Storable] = (
        Field(description="The dependent's name exactly as the document shows it.")
    )


class DependentAnswer(Answer):
    guardianship_id: int
    resident_id: int
    masked_name: str
    state: Literal["active", "pending", "removed"] = Field(
        description="pending: an official must approve before the code is shown."
    )
    basis: Literal["child", "elder", "approval"]
    created_at: datetime


# Feeds


class RowProblem(Answer):
    line: int = Field(description="The file line the row starts on, or row number.")
    field: str | None
    reason: str


class ImportAnswer(Answer):
    """What an import read, wrote and refused: the command line's report."""

    kind: str
    file_name: str
    department: str
    mode: Literal["all-or-nothing", "skip-bad"]
    read: int
    imported: int
    updated: int
    unchanged: int
    rejected: int
    statuses_changed: int
    committed: bool
    import_id: int | None
    errors: list[RowProblem]


class RiskAreaIn(Request):
    """A risk area, declared, changed (same record id) or ended (an end time)."""

    record_id: Annotated[
        str, StringConstraints(min_length=1, max_length=64), Storable
    ] = Field(description="The commission's own id; sending it again changes the area.")
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$"), Storable] = Field(
        description="GB/T 2260 code of the area, or of the county of a named place."
    )
    name: Line | None = Field(
        default=None, description="A street or compound inside the county, if finer."
    )
    level: Literal["high", "medium", "low"]
    starts_at: Instant
    ends_at: Instant | None = None


class RiskAreasRequest(Request):
    areas: Annotated[list[RiskAreaIn], Field(min_length=1, max_length=10_000)]


# Appeals


class AppealRequest(Request):
    message: Message = Field(description="What is wrong with the colour, and why.")


class AppealAnswer(Answer):
    appeal_id: int
    resident_id: int
    colour: Colour = Field(description="The colour appealed against.")
    rules: list[str] = Field(description="The rules behind it when filed.")
    message: str
    state: Literal["open", "upheld", "corrected"]
    created_at: datetime
    reviewed_at: datetime | None
    review_note: str | None
    override_id: int | None


class ReviewRequest(Request):
    outcome: Literal["upheld", "corrected"]
    note: Line = Field(description="Shown to the resident; a correction's reason.")
    colour: OverrideColour | None = Field(
        default=None, description="A correction's colour."
    )
    expires_at: Instant | None = Field(
        default=None, description="When a correction's override ends."
    )


# Overrides


class OverrideRequest(Request):
    resident_ids: Annotated[list[Id], Field(min_length=1, max_length=100_000)]
    colour: OverrideColour
    reason: Line = Field(description="Shown to each resident with their status.")
    expires_at: Instant
    legal_basis: Line | None = Field(
        default=None,
        description="Needed when more residents than the bulk threshold are named.",
    )


class OverrideAnswer(Answer):
    state: Literal["applied", "pending-approval"]
    override_ids: list[int]
    bulk_override_id: int | None
    residents: int


class BulkOverrideAnswer(Answer):
    bulk_override_id: int
    colour: OverrideColour
    reason: str
    legal_basis: str
    expires_at: datetime
    residents: int
    author_id: int
    created_at: datetime
    state: Literal["pending", "approved", "rejected"]
    decided_by: int | None
    decided_at: datetime | None
    decision_note: str | None


class DecisionRequest(Request):
    note: Line | None = None


class RejectionRequest(Request):
    note: Line


# Search, residents seen by officials, statistics


Purpose = Annotated[
    str,
    StringConstraints(min_length=5, max_length=500),
    AfterValidator(_one_line),
]


class SearchRequest(Request):
    """A document, or a name; and why the search is made, which is audited."""

    document: DocumentIn | None = None
    name: (
        Annotated[str, StringConstraints(min_length=1, max_length=200), Storable] | None
    ) = None
    born_in: int | None = Field(
        default=None,
        ge=1900,
        le=2100,
        description="With a name: the residents born this year whose name begins"
        " with it (a surname, say). Without: the exact full name.",
    )
    purpose: Purpose = Field(description="Why: kept in the audit log.")


class ResidentFound(Answer):
    resident_id: int
    name: str
    document: str = Field(description="The number with its middle hidden.")
    region_code: str | None
    identity_state: str
    colour: Colour


class OfficialResidentAnswer(Answer):
    resident_id: int
    name: str
    document: str
    region_code: str | None
    identity_state: str
    status: StatusAnswer
    appeals: list[AppealAnswer]


class DistrictCount(Answer):
    district: str | None
    colour: Colour
    residents: int


class DayCount(Answer):
    day: str = Field(description="The local day, YYYY-MM-DD.")
    colour: Colour = Field(description="The colour residents turned that day.")
    changes: int


class StatisticsAnswer(Answer):
    by_colour: dict[str, int]
    by_district: list[DistrictCount]
    by_day: list[DayCount]


class GuardianshipAnswer(Answer):
    guardianship_id: int
    guardian_id: int
    dependent_id: int
    state: Literal["active", "pending", "removed"]
    basis: Literal["child", "elder", "approval"]
    created_at: datetime


# Administration


class ApiKeyRequest(Request):
    kind: Literal["venue", "checkpoint", "department"]
    scope: Annotated[str, StringConstraints(min_length=1, max_length=64), Storable] = (
        Field(description="Venue id, checkpoint id, or the department's name.")
    )
    feed_kinds: list[Annotated[str, StringConstraints(max_length=24), Storable]] = (
        Field(default_factory=list, max_length=16)
    )
    label: Annotated[str, StringConstraints(max_length=200), Storable] = ""


class ApiKeyAnswer(Answer):
    api_key_id: int
    kind: str
    scope: str
    feed_kinds: list[str]
    label: str
    created_at: datetime
    revoked_at: datetime | None
    key: str | None = Field(default=None, description="Given once, when made.")


class StaffRequest(Request):
    username: Annotated[str, StringConstraints(min_length=3, max_length=64), Storable]
    role: Literal["health-official", "community-worker", "administrator"]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256), Storable]


class StaffAnswer(Answer):
    official_id: int
    username: str
    role: str
    totp_uri: str = Field(description="Enrol this in an authenticator app, once.")


class AuditVerifyAnswer(Answer):
    entries: int
    intact: bool
    first_broken: int | None
    problem: str | None


# Checkpoints


CodeText = Annotated[str, StringConstraints(min_length=1, max_length=1000), Storable]


class VerifyRequest(Request):
    code: CodeText = Field(
        description="The code's text exactly as scanned: never trimmed or decoded."
    )


class VerifyAnswer(Answer):
    """A code accepted online; ``colour`` is the holder's colour right now."""

    valid: Literal[True]
    purpose: Literal["screen", "paper"]
    colour: Colour
    code_colour: Colour | None = Field(description="The colour the code shows.")
    masked_name: str
    region: str
    region_name: str = Field(default="", description="The issuing region's name.")
    valid_until: datetime
    as_of: datetime


class LookupRequest(Request):
    document: DocumentIn


class LookupAnswer(Answer):
    """Only what a door needs: the colour and the masked name."""

    colour: Colour
    masked_name: str
    as_of: datetime


# Venues and check-ins


Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:\-]{1,64}$"), Storable]


class VenueRequest(Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200), Storable]
    address: Annotated[str, StringConstraints(min_length=1, max_length=500), Storable]
    region_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$"), Storable] = (
        Field(description="GB/T 2260 county code of the venue.")
    )
    venue_type: Annotated[
        str, StringConstraints(min_length=1, max_length=16), Storable
    ] = Field(
        description="shop, restaurant, office, hospital, station, park, compound."
    )
    default_stay_minutes: Annotated[int, Field(ge=1, le=1440)] | None = Field(
        default=None, description="The stay assumed without a check-out."
    )


class VenueAnswer(Answer):
    venue_id: int
    name: str
    address: str
    region_code: str
    venue_type: str
    default_stay_minutes: int
    created_at: datetime
    operator_key: str | None = Field(
        default=None, description="The venue operator's API key, given once."
    )


class VenueCodeAnswer(Answer):
    text: str = Field(description="Print as an alphanumeric-mode QR code.")
    valid_until: datetime


class HourCount(Answer):
    hour: int
    checkins: int


class CountsAnswer(Answer):
    venue_id: int
    day: str
    hours: list[HourCount]


class ResidentCheckinRequest(Request):
    """A resident's phone scanned a venue's poster."""

    venue_code: CodeText
    idempotency_key: Key = Field(description="Unique per scan; resend it on retry.")
    checked_in_at: Instant | None = Field(
        default=None, description="When scanned, for scans queued offline; else now."
    )
    checked_out_at: Instant | None = None


class DoorScan(Request):
    """A checkpoint scanned a resident's code at a venue's door."""

    code: CodeText
    idempotency_key: Key
    checked_in_at: Instant
    checked_out_at: Instant | None = None


class DoorScansRequest(Request):
    scans: Annotated[list[DoorScan], Field(min_length=1, max_length=1000)]


class CheckinRefusal(Answer):
    index: int
    idempotency_key: str | None
    code: str
    message: str


class CheckinAnswer(Answer):
    accepted: int
    duplicates: int
    extended: int
    refused: list[CheckinRefusal]


# Other regions

RegionCode = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{5}$")]


class PeerQueryRequest(Request):
    """An official's question to a peer region about one of its residents."""

    region: RegionCode = Field(description="GB/T 2260 code of the peer region.")
    document: DocumentIn
    purpose: Purpose = Field(description="Why: kept in both regions' audit logs.")


class PeerStatusRequest(Request):
    """What a peer instance sends: the document, its official's reference, why."""

    document: DocumentIn
    official: Annotated[
        str, StringConstraints(pattern=r"^[a-z][a-z-]{0,19}:[A-Za-z0-9-]{1,40}$")
    ] = Field(description="The asking official, as the calling instance names them.")
    purpose: Purpose


class PeerStatusAnswer(Answer):
    """Only what a door needs, from the region that holds the resident."""

    region: str
    region_name: str = ""
    colour: Colour
    masked_name: str
    as_of: datetime
    next_change_at: datetime | None = Field(
        default=None, description="When the colour changes if nothing new arrives."
    )
    next_colour: Colour | None = None
    query: str | None = Field(
        default=None, description="The query's nonce, in both regions' audit logs."
    )
