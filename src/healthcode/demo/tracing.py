"""The demo's tracing step: check-ins around the reported case, then a trace.

On day two the reported case's check-ins of the previous days are uploaded
as devices would send them, together with those of the case's six contacts
(who shared a noodle bar or an office lift lobby with the case) and of three
plain residents who ate at the same bar hours later. Tracing the reported
case then finds the contacts and only them: the plain residents' visits did
not overlap the case's, so they stay green, which is what the demo's colour
checks expect of them. Each exposure is shown with the colour it caused and
the rule that gives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.checkins.models import Exposure
from healthcode.checkins.services import CheckinItem, record_checkins, register_venue
from healthcode.checkins.tracing import TraceReport, TracingPolicy, trace
from healthcode.demo.city import STREET_DISTRICT, City, Person
from healthcode.feeds.models import CaseReport
from healthcode.identity.models import Resident
from healthcode.identity.names import mask_name
from healthcode.status.services import current_status

#: The case record that day two's case feed reports.
REPORTED_CASE = "CASE2-000001"


@dataclass
class DemoTrace:
    """What the demo's trace found, for the printout and the checks."""

    report: TraceReport | None = None
    exposed: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    bystanders: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def trace_reported_case(
    console: Console, engine: Engine, city: City, resident_ids: dict[int, int]
) -> DemoTrace:
    """Upload the check-ins around the reported case, trace it, show it."""
    outcome = DemoTrace()
    reported = city.by_role("reported-case")
    contacts = city.by_role("contact")
    plain = city.by_role("plain")[:3]
    if not reported or len(contacts) < 2:
        outcome.problems.append("The demo city has no reported case to trace.")
        return outcome
    now = city.day_two
    with Session(engine) as session, session.begin():
        bar, office = _venues(session, now)
        items = _visits(
            city, resident_ids, reported[0], contacts, plain, bar, office, now
        )
        uploaded = record_checkins(session, items, now=now, zone=city.zone)
        case_ids = list(
            session.scalars(
                sa.select(CaseReport.id).where(CaseReport.source_id == REPORTED_CASE)
            )
        )
        if not case_ids:
            outcome.problems.append(f"Case {REPORTED_CASE} was not imported.")
            return outcome
        policy = TracingPolicy(zone=city.zone)
        outcome.report = trace(session, now=now, policy=policy, case_ids=case_ids)
        _print(console, session, city, outcome.report, uploaded.accepted, now)
        for person in contacts:
            view = current_status(session, resident_ids[person.index], now)
            rules = tuple(reason["rule"] for reason in view.reasons)
            outcome.exposed[person.index] = (view.colour, rules)
            if "YELLOW-EXPOSURE" not in rules:
                outcome.problems.append(
                    f"Contact {person.index} of the reported case shows no exposure."
                )
        for person in plain:
            view = current_status(session, resident_ids[person.index], now)
            outcome.bystanders[person.index] = view.colour
            if view.colour != "green":
                outcome.problems.append(
                    f"Resident {person.index}, at the bar hours after the case, is"
                    f" {view.colour}, not green."
                )
    if outcome.report.written != len(contacts):
        outcome.problems.append(
            f"Tracing wrote {outcome.report.written} exposures for"
            f" {len(contacts)} contacts."
        )
    return outcome


def _venues(session: Session, now: datetime) -> tuple[int, int]:
    bar = register_venue(
        session,
        name="小寨牛肉面馆",
        address="小寨东路 12 号",
        region_code=STREET_DISTRICT,
        venue_type="restaurant",
        now=now - timedelta(days=40),
    )
    office = register_venue(
        session,
        name="长安大厦 B 座",
        address="长安南路 88 号",
        region_code=STREET_DISTRICT,
        venue_type="office",
        now=now - timedelta(days=40),
    )
    return bar.id, office.id


def _visits(
    city: City,
    resident_ids: dict[int, int],
    case: Person,
    contacts: list[Person],
    plain: list[Person],
    bar: int,
    office: int,
    now: datetime,
) -> list[CheckinItem]:
    """The check-ins of the previous two days, in the case's window.

    The case was at the bar for lunch the day before yesterday and in the
    office yesterday morning. Half the contacts lunched with the case (one
    arrived a quarter of an hour after the case left, inside the decay), the
    others shared the office; the plain residents ate at the bar that
    evening.
    """
    local = now.astimezone(city.zone)
    lunch = local.replace(hour=12, minute=5, second=0, microsecond=0) - timedelta(
        days=2
    )
    morning = local.replace(hour=8, minute=50, second=0, microsecond=0) - timedelta(
        days=1
    )
    items = [
        _item(resident_ids, case, bar, lunch, lunch + timedelta(minutes=40), "case-1"),
        _item(resident_ids, case, office, morning, None, "case-2"),
    ]
    half = len(contacts) // 2
    for number, person in enumerate(contacts[:half]):
        start = lunch + timedelta(minutes=10 * number)
        if number == half - 1:
            start = lunch + timedelta(minutes=55)
        items.append(
            _item(
                resident_ids,
                person,
                bar,
                start,
                start + timedelta(minutes=35),
                f"contact-{number}",
            )
        )
    for number, person in enumerate(contacts[half:], start=half):
        start = morning + timedelta(minutes=25 * number)
        items.append(_item(resident_ids, person, office, start, None, f"c-{number}"))
    evening = lunch.replace(hour=19, minute=0)
    for number, person in enumerate(plain):
        start = evening + timedelta(minutes=15 * number)
        items.append(
            _item(
                resident_ids,
                person,
                bar,
                start,
                start + timedelta(minutes=50),
                f"plain-{number}",
            )
        )
    return items


def _item(
    resident_ids: dict[int, int],
    person: Person,
    venue: int,
    start: datetime,
    end: datetime | None,
    key: str,
) -> CheckinItem:
    return CheckinItem(
        idempotency_key=f"demo-phone:{key}",
        venue_id=venue,
        resident_id=resident_ids[person.index],
        checked_in_at=start,
        checked_out_at=end,
        source="resident-scan",
    )


def _print(
    console: Console,
    session: Session,
    city: City,
    report: TraceReport,
    uploaded: int,
    now: datetime,
) -> None:
    rows = session.execute(
        sa.select(
            Exposure.resident_id,
            Exposure.place_label,
            Exposure.starts_at,
            Exposure.ends_at,
            Exposure.overlap_minutes,
            Resident.name,
        )
        .join(Resident, Resident.id == Exposure.resident_id)
        .join(CaseReport, CaseReport.id == Exposure.case_report_id)
        .where(CaseReport.source_id == REPORTED_CASE)
        .order_by(Exposure.starts_at, Exposure.resident_id)
    ).all()
    table = Table(
        "contact",
        "where",
        "shared time",
        "minutes",
        "colour now",
        "because",
        title=f"Exposures traced from case {REPORTED_CASE}",
    )
    for rid, place, starts, ends, minutes, name in rows:
        view = current_status(session, rid, now)
        because = [
            reason["rule"]
            for reason in view.reasons
            if reason["rule"] == "YELLOW-EXPOSURE"
            and reason.get("evidence", {}).get("place") == place
        ]
        table.add_row(
            mask_name(name),
            place,
            f"{_local(starts, city)} - {ends.astimezone(city.zone):%H:%M}",
            str(minutes),
            view.colour,
            ", ".join(dict.fromkeys(because)) or "-",
        )
    console.print(table)
    window = report.cases[0].window if report.cases else None
    opened = (
        f" The case's infectious window ran from {_local(window.start, city)}"
        f" ({window.basis}) to {_local(window.end, city)}."
        if window
        else ""
    )
    console.print(
        f"Tracing: {uploaded} check-ins uploaded, {report.found} exposures found,"
        f" {report.written} written, {report.statuses_changed} residents changed"
        f" colour.{opened} The three residents who ate there that evening did not"
        " overlap the case and stay green."
    )


def _local(moment: datetime, city: City) -> str:
    return moment.astimezone(city.zone).strftime("%m-%d %H:%M")
