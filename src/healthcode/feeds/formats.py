"""The row formats of department feeds, one pydantic model per feed kind.

A row is validated with a context made by :func:`validation_context`: it
carries the zone in which naive timestamps are read and the latest instant a
recorded fact may carry. Every message a validator here produces is a whole
sentence that may echo a bad time, date, code or choice, but never an
identity number, a name or a street, so that the import report can be shown
and logged as it is.

Cross-field checks (an end before its start, a place without its code) live
in each model's :meth:`FeedRow.problems`, so that they can name the field they
concern; pydantic's own model validators cannot.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from healthcode.feeds.errors import UnknownFeedKind
from healthcode.identity import divisions
from healthcode.identity.documents import DocumentKind
from healthcode.identity.errors import InvalidName
from healthcode.identity.names import normalize_name

__all__ = [
    "FEED_KINDS",
    "KINDS",
    "CaseRow",
    "DeclarationRow",
    "FeedKind",
    "FeedRow",
    "IdentityRow",
    "LabResultRow",
    "OrderRow",
    "ResidentRow",
    "RiskAreaRow",
    "Stop",
    "TravelRow",
    "VaccinationRow",
    "feed_kind",
    "validation_context",
]

# The longest value a department may use as its own record id; the column
# that keeps it is as wide.
MAX_RECORD_ID = 64


def validation_context(
    zone: ZoneInfo, now: datetime, future_skew: timedelta
) -> dict[str, Any]:
    """The context every row model needs: zone of naive times and the latest fact."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return {"zone": zone, "latest": now + future_skew, "now": now}


def _context(info: ValidationInfo) -> dict[str, Any]:
    # A TypeError is not turned into a validation error by pydantic: a row
    # validated without its context is a programming mistake and should fail
    # loudly instead of reading times in some guessed zone.
    if not info.context or "zone" not in info.context:
        raise TypeError("feed rows are validated with validation_context(...)")
    return info.context


def _problem(kind: str, message: str, **values: Any) -> PydanticCustomError:
    return PydanticCustomError(f"feed_{kind}", message, values)


_LONG_NUMBER = re.compile(r"[0-9]{9}")

# The shapes in which a bad value is still echoed, by what the field holds.
# A value of another shape may be anything, a name or a phone number put in
# the wrong column included, and is only called "given".
#: A date, or a date and time, in the usual ISO 8601 forms.
TIME_SHAPE = re.compile(
    r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8})(?:[T ][0-9T:.,+Z -]{0,24})?",
    re.IGNORECASE,
)
#: One lower-case word, as choices, flags and numbers are written.
WORD_SHAPE = re.compile(r"[!-@\[-~]{1,24}")
#: Digits only, as division codes are written.
DIGITS_SHAPE = re.compile(r"[0-9]{1,8}")
#: A few letters, as country codes are written.
LETTERS_SHAPE = re.compile(r"[A-Za-z]{1,3}")
#: A place name of one word, as stations are written.
PLACE_SHAPE = re.compile(r"\S{1,16}")


def _quoted(value: Any, shape: re.Pattern[str]) -> str:
    """The value in quotes for a message, or "given" where it may be personal.

    A time, code or choice is echoed so that the sender sees the typo. But a
    column shifted by one puts a name, an identity number or a phone number
    where a time belongs, so a value is shown only when it has the shape of
    what the field holds, is short, and holds no run of nine digits (identity
    and phone numbers do).
    """
    text = str(value)
    if (
        len(text) > 40
        or _LONG_NUMBER.search(text)
        or not text.isprintable()
        or not shape.fullmatch(text)
    ):
        return "given"
    return repr(text)


def _describe(delta: timedelta) -> str:
    # Rounded to the nearest unit: a time sent as "in 3 days" and read a few
    # seconds later is still 3 days ahead to its sender, not 2.
    seconds = round(delta.total_seconds())
    if seconds >= 2 * 86_400:
        return f"{round(seconds / 86_400)} days"
    if seconds >= 2 * 3600:
        return f"{round(seconds / 3600)} hours"
    if seconds >= 120:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds} seconds"


# Time values.


# The years a recorded or planned instant may fall in. Earlier or later ones
# are typing errors or "no end" sentinels such as 9999-12-31, and near the
# ends of the calendar they cannot even be converted between zones.
EARLIEST_YEAR = 1900
LATEST_YEAR = 2199


def _parse_instant(value: Any, info: ValidationInfo) -> datetime:
    context = _context(info)
    if isinstance(value, datetime):
        moment = value
        text = value.isoformat()
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _problem(
                "time",
                "The time {value} is not an ISO 8601 time such as"
                " 2026-03-02T09:15:00+08:00.",
                value=_quoted(text, TIME_SHAPE),
            ) from None
        # A bare date would silently mean midnight; a feed that knows only
        # the day of an event must say which midnight it means.
        if len(text) <= 10:
            raise _problem(
                "time",
                "The time {value} has no time of day; write it as"
                " 2026-03-02T09:15:00 or with an offset such as +08:00.",
                value=_quoted(text, TIME_SHAPE),
            )
    else:
        raise _problem("time", "A time must be written as text in ISO 8601.")
    # Checked on the time as written, before any conversion, since converting
    # a time at the edge of the calendar overflows.
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise _problem(
            "time",
            "The time {value} lies outside the years {earliest} to {latest}"
            " that a record may carry.",
            value=_quoted(text, TIME_SHAPE),
            earliest=EARLIEST_YEAR,
            latest=LATEST_YEAR,
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=context["zone"])
    return moment.astimezone(UTC)


def _fact_time(value: Any, info: ValidationInfo) -> datetime:
    moment = _parse_instant(value, info)
    latest: datetime = info.context["latest"]
    if moment > latest:
        ahead = moment - info.context["now"]
        raise _problem(
            "future",
            "The time {value} lies {ahead} after the import time, beyond the"
            " allowed clock skew; a recorded event cannot lie in the future.",
            value=_quoted(value, TIME_SHAPE),
            ahead=_describe(ahead),
        )
    return moment


def _planned_time(value: Any, info: ValidationInfo) -> datetime:
    return _parse_instant(value, info)


def _day(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        raise _problem(
            "date",
            "The date {value} is not a date written as YYYY-MM-DD.",
            value=_quoted(text, TIME_SHAPE),
        )
    raise _problem("date", "A date must be written as text, YYYY-MM-DD.")


# A recorded event: an error when it lies beyond the clock skew in the future.
FactTime = Annotated[datetime, PlainValidator(_fact_time)]
# A planned instant (the end of an order, the start of a risk area announced
# ahead); it may lie in the future.
PlannedTime = Annotated[datetime, PlainValidator(_planned_time)]
Day = Annotated[date, PlainValidator(_day)]


# Text, choices, numbers.


def _record_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _problem("record_id", "The record id must be text or a whole number.")
    text = str(value).strip()
    if not text:
        raise _problem("record_id", "The record id is empty.")
    if len(text) > MAX_RECORD_ID:
        raise _problem(
            "record_id",
            "The record id is longer than {limit} characters.",
            limit=MAX_RECORD_ID,
        )
    if not text.isprintable():
        raise _problem("record_id", "The record id contains control characters.")
    return text


def _text(limit: int | None = None) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _problem("text", "The value must be text.")
        text = unicodedata.normalize("NFC", value.strip())
        if not text:
            raise _problem("text", "The value is empty.")
        if limit is not None and len(text) > limit:
            raise _problem(
                "text", "The value is longer than {limit} characters.", limit=limit
            )
        if not text.isprintable():
            raise _problem("text", "The value contains control characters.")
        return text

    return check


def _choice(*options: str) -> Callable[[Any], str]:
    allowed = ", ".join(options)

    def check(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in options:
            raise _problem(
                "choice",
                "The value {value} is not one of: {allowed}.",
                value=_quoted(value, WORD_SHAPE),
                allowed=allowed,
            )
        return text

    return check


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _problem(
        "flag",
        "The value {value} is not a yes-or-no value; write true, false, 1, 0,"
        " yes or no.",
        value=_quoted(value, WORD_SHAPE),
    )


def _dose(value: Any) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= 20:
        raise _problem(
            "dose",
            "The dose number {value} is not a whole number from 1 to 20.",
            value=_quoted(value, WORD_SHAPE),
        )
    return number


def _division(value: Any) -> str:
    text = str(value).strip() if isinstance(value, str | int) else ""
    if len(text) != 6 or not text.isdigit():
        raise _problem(
            "division",
            "The code {value} is not a six-digit GB/T 2260 division code.",
            value=_quoted(value, DIGITS_SHAPE),
        )
    if not divisions.is_known(text):
        raise _problem(
            "division",
            "The code {value} is not a GB/T 2260 division code in use.",
            value=_quoted(text, DIGITS_SHAPE),
        )
    return text


def _doc_number(value: Any) -> str:
    # Never echo the value: it is an identity number, or meant to be one.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _problem("document", "The document number must be text.")
    text = str(value).strip()
    if not text:
        raise _problem("document", "The document number is empty.")
    if len(text) > 32:
        raise _problem("document", "The document number is longer than 32 characters.")
    return text


_doc_kind = _choice(*(kind.value for kind in DocumentKind))


def _country(value: Any) -> str:
    text = value.strip().upper() if isinstance(value, str) else ""
    if len(text) != 3 or not text.isalpha() or not text.isascii():
        raise _problem(
            "country",
            "The country {value} is not an ISO 3166 three-letter code.",
            value=_quoted(value, LETTERS_SHAPE),
        )
    return text


RecordId = Annotated[str, PlainValidator(_record_id)]
ShortText = Annotated[str, PlainValidator(_text(64))]
LongText = Annotated[str, PlainValidator(_text(200))]
Code16 = Annotated[str, PlainValidator(_text(16))]
Code8 = Annotated[str, PlainValidator(_text(8))]
Flag = Annotated[bool, PlainValidator(_flag)]
Dose = Annotated[int, PlainValidator(_dose)]
Division = Annotated[str, PlainValidator(_division)]
DocKind = Annotated[str, PlainValidator(_doc_kind)]
DocNumber = Annotated[str, PlainValidator(_doc_number)]
Country = Annotated[str, PlainValidator(_country)]


def _person_name(value: Any) -> str:
    # The stored form of registration, so that a name brought by the
    # registry and one typed by the resident are one and the same text, and
    # every name stored can be masked and put on a code.
    if not isinstance(value, str):
        raise _problem("name", "The name must be text.")
    try:
        return normalize_name(value)
    except InvalidName as exc:
        raise _problem("name", str(exc)) from None


# The earliest birth year a document may carry, as identity numbers are read.
EARLIEST_BIRTH_YEAR = 1890


def _birth_day(value: Any, info: ValidationInfo) -> date:
    day = _day(value)
    context = _context(info)
    today = context["now"].astimezone(context["zone"]).date()
    if day > today:
        raise _problem("birth_date", "The birth date lies in the future.")
    if day.year < EARLIEST_BIRTH_YEAR:
        raise _problem(
            "birth_date",
            "The birth date lies before {year}.",
            year=EARLIEST_BIRTH_YEAR,
        )
    return day


PersonName = Annotated[str, PlainValidator(_person_name)]
BirthDay = Annotated[date, PlainValidator(_birth_day)]


def _county_level(code: str) -> bool:
    return divisions.division(code).level == "county"


# The row models.


class FeedRow(BaseModel):
    """Columns that every feed row has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields that are part of the resident reference rather than the record,
    # and fields whose values may never appear in a message or a log line.
    sensitive: ClassVar[frozenset[str]] = frozenset()

    record_id: RecordId

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field faults as (field, sentence) pairs; empty for a sound row."""
        return []


class ResidentRow(FeedRow):
    """A row about one resident, who is named by an identity document."""

    sensitive: ClassVar[frozenset[str]] = frozenset({"doc_number"})

    doc_kind: DocKind = "cn-id"
    doc_number: DocNumber
    doc_country: Country | None = None


class IdentityRow(ResidentRow):
    """The identity registry's answer about one resident."""

    sensitive: ClassVar[frozenset[str]] = frozenset({"doc_number", "name", "street"})

    name: PersonName
    birth_date: BirthDay | None = None
    region_code: Division
    street: LongText | None = None
    outcome: Annotated[str, PlainValidator(_choice("confirmed", "rejected"))]
    confirmed_at: FactTime

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not _county_level(self.region_code):
            found.append(
                (
                    "region_code",
                    f"The region code {self.region_code} names a province or city;"
                    " a resident's region is a county-level division.",
                )
            )
        return found


class LabResultRow(ResidentRow):
    """A nucleic acid (PCR) or antigen test result."""

    sampled_at: FactTime
    reported_at: FactTime | None = None
    method: Annotated[str, PlainValidator(_choice("pcr", "antigen"))]
    result: Annotated[str, PlainValidator(_choice("negative", "positive"))]
    lab: LongText | None = None

    def problems(self) -> list[tuple[str, str]]:
        if self.reported_at is not None and self.reported_at < self.sampled_at:
            return [
                ("reported_at", "The result is reported before its sample was taken.")
            ]
        return []


class VaccinationRow(ResidentRow):
    """One dose of a vaccine given to a resident."""

    administered_at: FactTime
    product: ShortText
    dose_number: Dose


class CaseRow(ResidentRow):
    """A confirmed or asymptomatic case."""

    classification: Annotated[str, PlainValidator(_choice("confirmed", "asymptomatic"))]
    onset_at: FactTime | None = None
    diagnosed_at: FactTime
    isolated_at: FactTime | None = None
    released_at: FactTime | None = None

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.released_at is not None:
            if self.released_at < self.diagnosed_at:
                found.append(
                    ("released_at", "The case is released before its diagnosis.")
                )
            if self.isolated_at is not None and self.released_at < self.isolated_at:
                found.append(
                    ("released_at", "The case is released before its isolation.")
                )
        return found


class OrderRow(ResidentRow):
    """A quarantine or home-observation order."""

    kind: Annotated[
        str, PlainValidator(_choice("central-quarantine", "home-observation"))
    ]
    starts_at: FactTime
    ends_at: PlannedTime | None = None

    def problems(self) -> list[tuple[str, str]]:
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            return [("ends_at", "The order ends before it starts.")]
        return []


# A station or airport passed through without leaving the train or plane,
# as {"station": name, "code": GB/T 2260 code}.
Stop = dict[str, str]

# The most stops one row may list. The longest train services in China stop
# at a few dozen stations; a row with hundreds is a broken export, and each
# stop is stored and searched with the row.
MAX_STOPS = 100

_station_name = _text(64)


def _stops(value: Any) -> tuple[Stop, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = []
        for part in value.split(";"):
            part = part.strip()
            if not part:
                continue
            station, sep, code = part.rpartition(":")
            if not sep:
                raise _problem(
                    "stops",
                    "The stop {value} has no code; write stops as name:code;name:code.",
                    value=_quoted(part, PLACE_SHAPE),
                )
            items.append({"station": station, "code": code})
    elif isinstance(value, list):
        items = value
    else:
        raise _problem(
            "stops",
            "Stops are written as name:code;name:code in CSV and as a list of"
            " objects with station and code in NDJSON.",
        )
    if len(items) > MAX_STOPS:
        raise _problem(
            "stops",
            "The row lists {count} stops; at most {limit} are accepted.",
            count=len(items),
            limit=MAX_STOPS,
        )
    stops = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or set(item) != {"station", "code"}:
            raise _problem(
                "stops",
                "Stop {number} is not an object with exactly station and code.",
                number=number,
            )
        station = item["station"]
        if not isinstance(station, str) or not station.strip():
            raise _problem("stops", "Stop {number} has no station name.", number=number)
        try:
            # A station is text like any other: no control characters, no
            # unbounded length, whichever format it came in.
            name = _station_name(station)
            code = _division(item["code"])
        except PydanticCustomError as exc:
            raise _problem(
                "stops", "Stop {number}: {reason}", number=number, reason=exc.message()
            ) from None
        stops.append({"station": name, "code": code})
    return tuple(stops)


MODE_DEPARTMENTS = {"rail": "railway", "air": "civil-aviation"}


class TravelRow(ResidentRow):
    """One passenger on one train or flight, from boarding to alighting."""

    mode: Annotated[str, PlainValidator(_choice(*MODE_DEPARTMENTS))]
    carrier: Code16
    service_number: Code16
    service_date: Day
    carriage: Code8 | None = None
    seat: Code8 | None = None
    dep_station: ShortText
    dep_code: Division
    dep_at: FactTime
    arr_station: ShortText
    arr_code: Division
    arr_at: FactTime
    stops: Annotated[tuple[Stop, ...], PlainValidator(_stops)] = ()

    def problems(self) -> list[tuple[str, str]]:
        if self.arr_at < self.dep_at:
            return [("arr_at", "The arrival is earlier than the departure.")]
        return []


class RiskAreaRow(FeedRow):
    """A county, or a named street or compound within it, declared at risk."""

    code: Division
    name: LongText | None = None
    level: Annotated[str, PlainValidator(_choice("high", "medium", "low"))]
    starts_at: PlannedTime
    ends_at: PlannedTime | None = None

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            found.append(("ends_at", "The risk area ends before it starts."))
        if self.name is not None and not _county_level(self.code):
            found.append(
                (
                    "name",
                    f"A named area lies within a county, but {self.code} names a"
                    " province or city.",
                )
            )
        return found


class DeclarationRow(ResidentRow):
    """A resident's own health declaration, with a place visited if any."""

    declared_at: FactTime
    fever: Flag
    respiratory: Flag
    visited_code: Division | None = None
    visited_place: LongText | None = None
    visited_from: FactTime | None = None
    visited_to: FactTime | None = None

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.visited_code is None:
            for field in ("visited_place", "visited_from", "visited_to"):
                if getattr(self, field) is not None:
                    found.append((field, "A visit needs its visited_code."))
        if (
            self.visited_from is not None
            and self.visited_to is not None
            and self.visited_to < self.visited_from
        ):
            found.append(("visited_to", "The visit ends before it starts."))
        return found


@dataclass(frozen=True)
class FeedKind:
    """One kind of feed: its name, row model and usual sending department."""

    name: str
    row: type[FeedRow]
    # None where the department follows from the rows (travel: by mode).
    department: str | None
    about: str

    @property
    def has_resident(self) -> bool:
        return issubclass(self.row, ResidentRow)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.row.model_fields)

    @property
    def required(self) -> frozenset[str]:
        return frozenset(
            name for name, field in self.row.model_fields.items() if field.is_required()
        )


KINDS: dict[str, FeedKind] = {
    kind.name: kind
    for kind in (
        FeedKind(
            "identities",
            IdentityRow,
            "public-security",
            "The identity registry confirms or rejects residents.",
        ),
        FeedKind("lab-results", LabResultRow, "health", "Test results."),
        FeedKind("vaccinations", VaccinationRow, "health", "Vaccine doses."),
        FeedKind("cases", CaseRow, "health", "Confirmed and asymptomatic cases."),
        FeedKind("orders", OrderRow, "health", "Quarantine and observation orders."),
        FeedKind("travel", TravelRow, None, "Train and flight manifests."),
        FeedKind(
            "risk-areas",
            RiskAreaRow,
            "health-commission",
            "Declared high, medium and low risk areas.",
        ),
        FeedKind(
            "declarations", DeclarationRow, "resident", "Residents' own declarations."
        ),
    )
}

FEED_KINDS: tuple[str, ...] = tuple(KINDS)


def feed_kind(name: str) -> FeedKind:
    """The kind called ``name``; :class:`UnknownFeedKind` if there is none."""
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownFeedKind(
            f"There is no feed kind {name!r}; the kinds are {', '.join(FEED_KINDS)}."
        ) from None
