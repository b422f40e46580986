"""Row models: times and zones, choices, flags, codes, stops, cross-field checks."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from healthcode.feeds.errors import UnknownFeedKind
from healthcode.feeds.formats import (
    FEED_KINDS,
    KINDS,
    CaseRow,
    DeclarationRow,
    FeedRow,
    IdentityRow,
    LabResultRow,
    OrderRow,
    RiskAreaRow,
    TravelRow,
    feed_kind,
    validation_context,
)

from .conftest import EXAMPLES, NOW, SHANGHAI, SKEW, ZHANG

CONTEXT = validation_context(SHANGHAI, NOW, SKEW)
DOCS = EXAMPLES.parent / "feeds.md"

LAB = {
    "record_id": "L-1",
    "doc_number": ZHANG,
    "sampled_at": "2026-03-09T08:00:00",
    "method": "pcr",
    "result": "negative",
}
TRAVEL = {
    "record_id": "CR-1",
    "doc_number": ZHANG,
    "mode": "rail",
    "carrier": "CR",
    "service_number": "G87",
    "service_date": "2026-03-07",
    "dep_station": "北京西",
    "dep_code": "110106",
    "dep_at": "2026-03-07T14:00:00",
    "arr_station": "西安北",
    "arr_code": "610112",
    "arr_at": "2026-03-07T18:32:00",
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def faults(model: type[FeedRow], values: dict[str, Any]) -> list[tuple[str, str]]:
    """The (field, message) pairs that validation gives for these values."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(values, context=CONTEXT)
    return [(str(e["loc"][0]), e["msg"]) for e in caught.value.errors()]


def lab(**changes: Any) -> LabResultRow:
    return LabResultRow.model_validate({**LAB, **changes}, context=CONTEXT)


# Times.


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-03-09T08:00:00", utc(2026, 3, 9, 0, 0)),
        ("2026-03-09 08:00", utc(2026, 3, 9, 0, 0)),
        ("2026-03-09T08:00:00+08:00", utc(2026, 3, 9, 0, 0)),
        ("2026-03-09T08:00:00Z", utc(2026, 3, 9, 8, 0)),
        ("2026-03-09T08:00:00.250-05:00", utc(2026, 3, 9, 13, 0, 0, 250_000)),
    ],
)
def test_times_are_read_in_the_feed_zone_unless_they_carry_an_offset(
    text: str, instant: datetime
) -> None:
    row = lab(sampled_at=text)

    assert row.sampled_at == instant
    assert row.sampled_at.tzinfo is UTC


def test_bare_date_is_not_a_time() -> None:
    assert faults(LabResultRow, {**LAB, "sampled_at": "2026-03-09"}) == [
        (
            "sampled_at",
            "The time '2026-03-09' has no time of day; write it as"
            " 2026-03-02T09:15:00 or with an offset such as +08:00.",
        )
    ]


def test_time_beyond_the_skew_names_how_far_ahead_it_lies() -> None:
    ahead = (NOW + SKEW + timedelta(minutes=55)).isoformat()

    assert faults(LabResultRow, {**LAB, "reported_at": ahead}) == [
        (
            "reported_at",
            f"The time {ahead!r} lies 60 minutes after the import time, beyond"
            " the allowed clock skew; a recorded event cannot lie in the future.",
        )
    ]


def test_planned_end_may_lie_in_the_future() -> None:
    row = OrderRow.model_validate(
        {
            "record_id": "O-1",
            "doc_number": ZHANG,
            "kind": "home-observation",
            "starts_at": "2026-03-09T22:00:00",
            "ends_at": "2026-04-09T22:00:00",
        },
        context=CONTEXT,
    )

    assert row.ends_at == utc(2026, 4, 9, 14, 0)


def test_rows_need_the_validation_context() -> None:
    with pytest.raises(TypeError, match="validation_context"):
        LabResultRow.model_validate(LAB)


def test_context_refuses_a_naive_clock() -> None:
    with pytest.raises(ValueError, match="aware"):
        validation_context(SHANGHAI, datetime(2026, 3, 10), SKEW)


# Choices, flags, numbers, codes.


def test_choices_ignore_case_and_name_the_allowed_values() -> None:
    assert lab(method=" PCR ").method == "pcr"
    assert faults(LabResultRow, {**LAB, "method": "pcrr"}) == [
        ("method", "The value 'pcrr' is not one of: pcr, antigen.")
    ]


@pytest.mark.parametrize(
    ("value", "flag"),
    [("true", True), ("YES", True), ("1", True), (1, True), (True, True)]
    + [("false", False), ("no", False), ("0", False), (0, False), (False, False)],
)
def test_flags_take_the_documented_spellings(value: object, flag: bool) -> None:
    row = DeclarationRow.model_validate(
        {
            "record_id": "D-1",
            "doc_number": ZHANG,
            "declared_at": "2026-03-09T08:00:00",
            "fever": value,
            "respiratory": "no",
        },
        context=CONTEXT,
    )

    assert row.fever is flag


def test_other_flag_spellings_are_refused() -> None:
    values = {
        "record_id": "D-1",
        "doc_number": ZHANG,
        "declared_at": "2026-03-09T08:00:00",
        "fever": "maybe",
        "respiratory": 2,
    }

    assert [field for field, _ in faults(DeclarationRow, values)] == [
        "fever",
        "respiratory",
    ]


def test_division_codes_must_be_in_use() -> None:
    assert faults(
        RiskAreaRow,
        {
            "record_id": "R-1",
            "code": "610199",
            "level": "high",
            "starts_at": "2026-03-09T00:00:00",
        },
    ) == [("code", "The code '610199' is not a GB/T 2260 division code in use.")]


def test_personal_values_in_a_shifted_column_are_not_echoed() -> None:
    values = {**LAB, "sampled_at": ZHANG, "method": "张晓明", "result": "13912345678"}

    assert faults(LabResultRow, values) == [
        (
            "sampled_at",
            "The time given is not an ISO 8601 time such as 2026-03-02T09:15:00+08:00.",
        ),
        ("method", "The value given is not one of: pcr, antigen."),
        ("result", "The value given is not one of: negative, positive."),
    ]


def test_record_id_is_bounded() -> None:
    assert faults(LabResultRow, {**LAB, "record_id": "x" * 65}) == [
        ("record_id", "The record id is longer than 64 characters.")
    ]
    assert lab(record_id=12345).record_id == "12345"


def test_document_number_is_never_echoed() -> None:
    messages = [
        message for _, message in faults(LabResultRow, {**LAB, "doc_number": [ZHANG]})
    ]

    assert messages == ["The document number must be text."]


def test_names_are_kept_in_nfc() -> None:
    row = IdentityRow.model_validate(
        {
            "record_id": "P-1",
            "doc_number": ZHANG,
            "name": "Ame\u0301lie",
            "region_code": "610113",
            "outcome": "confirmed",
            "confirmed_at": "2026-03-01T09:00:00",
        },
        context=CONTEXT,
    )

    assert row.name == "Am\u00e9lie"


# Stops.


def test_csv_stops_read_as_station_and_code() -> None:
    row = TravelRow.model_validate(
        {**TRAVEL, "stops": "石家庄:130104; 郑州东:410105;"}, context=CONTEXT
    )

    assert row.stops == (
        {"station": "石家庄", "code": "130104"},
        {"station": "郑州东", "code": "410105"},
    )


def test_ndjson_stops_read_the_same() -> None:
    stops = [{"station": "石家庄", "code": "130104"}]

    row = TravelRow.model_validate({**TRAVEL, "stops": stops}, context=CONTEXT)

    assert row.stops == ({"station": "石家庄", "code": "130104"},)


@pytest.mark.parametrize(
    ("stops", "message"),
    [
        (
            "石家庄",
            "The stop '石家庄' has no code; write stops as name:code;name:code.",
        ),
        (
            "石家庄:130104;郑州东:999999",
            "Stop 2: The code '999999' is not a GB/T 2260 division code in use.",
        ),
        (
            [{"station": "石家庄"}],
            "Stop 1 is not an object with exactly station and code.",
        ),
        ([{"station": " ", "code": "130104"}], "Stop 1 has no station name."),
    ],
)
def test_bad_stops_say_which_stop(stops: object, message: str) -> None:
    assert faults(TravelRow, {**TRAVEL, "stops": stops}) == [("stops", message)]


# Cross-field checks.


def test_cross_field_problems_name_their_field() -> None:
    late_report = lab(reported_at="2026-03-09T07:00:00")
    order = OrderRow.model_validate(
        {
            "record_id": "O-1",
            "doc_number": ZHANG,
            "kind": "central-quarantine",
            "starts_at": "2026-03-09T22:00:00",
            "ends_at": "2026-03-09T21:00:00",
        },
        context=CONTEXT,
    )
    case = CaseRow.model_validate(
        {
            "record_id": "C-1",
            "doc_number": ZHANG,
            "classification": "confirmed",
            "diagnosed_at": "2026-03-05T10:00:00",
            "released_at": "2026-03-04T10:00:00",
        },
        context=CONTEXT,
    )
    visit = DeclarationRow.model_validate(
        {
            "record_id": "D-1",
            "doc_number": ZHANG,
            "declared_at": "2026-03-09T08:00:00",
            "fever": "no",
            "respiratory": "no",
            "visited_place": "郑州东站",
        },
        context=CONTEXT,
    )
    area = RiskAreaRow.model_validate(
        {
            "record_id": "R-1",
            "code": "610100",
            "name": "电子城街道",
            "level": "medium",
            "starts_at": "2026-03-06T00:00:00",
        },
        context=CONTEXT,
    )
    trip = TravelRow.model_validate(
        {**TRAVEL, "arr_at": "2026-03-07T13:00:00"}, context=CONTEXT
    )

    assert late_report.problems() == [
        ("reported_at", "The result is reported before its sample was taken.")
    ]
    assert order.problems() == [("ends_at", "The order ends before it starts.")]
    assert case.problems() == [
        ("released_at", "The case is released before its diagnosis.")
    ]
    assert visit.problems() == [("visited_place", "A visit needs its visited_code.")]
    assert area.problems() == [
        (
            "name",
            "A named area lies within a county, but 610100 names a province or city.",
        )
    ]
    assert trip.problems() == [("arr_at", "The arrival is earlier than the departure.")]


# The kinds, their documentation and their examples.


def test_kinds_are_the_documented_eight() -> None:
    assert FEED_KINDS == (
        "identities",
        "lab-results",
        "vaccinations",
        "cases",
        "orders",
        "travel",
        "risk-areas",
        "declarations",
    )
    with pytest.raises(UnknownFeedKind, match="the kinds are identities, lab-results"):
        feed_kind("lab")


@pytest.mark.parametrize("kind", FEED_KINDS)
def test_every_column_is_documented(kind: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"## `{kind}`")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else None]

    undocumented = [
        column for column in KINDS[kind].columns if f"| `{column}` |" not in section
    ]

    assert undocumented == []


@pytest.mark.parametrize("kind", FEED_KINDS)
def test_every_csv_example_shows_every_column_in_order(kind: str) -> None:
    header = (EXAMPLES / f"{kind}.csv").read_text(encoding="utf-8").splitlines()[0]

    assert tuple(header.split(",")) == KINDS[kind].columns


@pytest.mark.parametrize("kind", FEED_KINDS)
def test_example_lines_in_the_documentation_are_valid_rows(kind: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"## `{kind}`")
    end = text.find("\n## ", start + 1)
    blocks = text[start : end if end > 0 else None].split("```")[1::2]
    model = KINDS[kind].row

    for block in blocks:
        if block.startswith("json"):
            raw = json.loads(block.removeprefix("json"))
        else:
            cells = next(csv.reader([block.strip()]))
            raw = dict(zip(KINDS[kind].columns, cells, strict=True))
        values = {key: value for key, value in raw.items() if value not in ("", None)}

        row = model.model_validate(values, context=CONTEXT)

        assert row.problems() == []
    assert len(blocks) >= 2
