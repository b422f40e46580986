"""Venues and check-ins on SQLite and PostgreSQL: uploads, visits, counts, purge."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthcode.checkins.errors import InvalidVenue, UnknownVenue
from healthcode.checkins.models import Checkin
from healthcode.checkins.services import (
    checkin_counts,
    purge_checkins,
    register_venue,
    resident_visits,
    retention_cutoff,
)
from healthcode.db import make_engine

from .support import NOW, SHANGHAI, World, at


def visits_of(world: World, resident: int):
    with Session(world.engine) as session:
        return resident_visits(session, resident, zone=SHANGHAI)


def test_c04_a_rescan_while_still_checked_in_extends_the_one_visit(world):
    [resident] = world.residents(1)
    venue = world.venue("restaurant")

    first = world.upload([world.item(resident, venue, at(9, 10, 0))])
    again = world.upload([world.item(resident, venue, at(9, 10, 5))])
    visits = visits_of(world, resident)

    assert (first.accepted, again.accepted, again.extended) == (1, 0, 1)
    assert len(visits) == 1
    assert visits[0].checked_in_at == at(9, 10, 0)
    assert visits[0].ends_at == at(9, 11, 35)
    assert visits[0].estimated_end


def test_c06_the_same_instant_in_two_offsets_is_one_visit_shown_in_local_time(world):
    [resident] = world.residents(1)
    venue = world.venue("shop")

    result = world.upload(
        [
            world.item(resident, venue, "2026-03-02T09:15:00+08:00"),
            world.item(resident, venue, "2026-03-02T01:15:00Z"),
        ]
    )
    later = world.upload([world.item(resident, venue, "2026-03-02T01:15:00+00:00")])
    visits = visits_of(world, resident)

    assert (result.accepted, result.duplicates, result.extended) == (1, 1, 0)
    assert (later.accepted, later.duplicates) == (0, 1)
    assert len(visits) == 1
    assert visits[0].checked_in_at.strftime("%Y-%m-%d %H:%M") == "2026-03-02 09:15"
    assert world.count("checkins") == 1


def test_c07_a_forty_minute_visit_is_forty_minutes_not_forty_five(world):
    [resident] = world.residents(1)
    venue = world.venue("shop")

    world.visit(resident, venue, at(9, 14, 0), at(9, 14, 40))
    [visit] = visits_of(world, resident)

    assert visit.duration == timedelta(minutes=40)
    assert visit.minutes == 40
    assert not visit.estimated_end


def test_exact_seconds_are_kept(world):
    [resident] = world.residents(1)
    venue = world.venue("shop")

    world.visit(resident, venue, at(9, 14, 0, 7), at(9, 14, 40, 52))
    [visit] = visits_of(world, resident)

    assert visit.duration == timedelta(minutes=40, seconds=45)
    assert visit.checked_in_at == at(9, 14, 0, 7)


def test_a_retried_upload_adds_nothing(world):
    people = world.residents(3)
    venue = world.venue("office")
    batch = [
        world.item(person, venue, at(9, 8, 30 + index))
        for index, person in enumerate(people)
    ]

    first = world.upload(batch)
    retry = world.upload(batch)
    partly = world.upload([*batch[:2], world.item(people[0], venue, at(9, 19, 0))])

    assert (first.accepted, first.duplicates) == (3, 0)
    assert (retry.accepted, retry.duplicates, retry.extended) == (0, 3, 0)
    assert (partly.accepted, partly.duplicates) == (1, 2)
    assert world.count("checkins") == 4


def test_a_retried_rescan_is_a_duplicate_not_a_second_extension(world):
    [resident] = world.residents(1)
    venue = world.venue("restaurant")
    world.visit(resident, venue, at(9, 12, 0))
    rescan = world.item(resident, venue, at(9, 12, 30))

    first = world.upload([rescan])
    retry = world.upload([rescan])

    assert (first.extended, first.duplicates) == (1, 0)
    assert (retry.extended, retry.duplicates) == (0, 1)
    assert world.count("checkin_rescans") == 1


def test_a_late_upload_of_the_first_scan_joins_the_visit_it_began(world):
    [resident] = world.residents(1)
    venue = world.venue("restaurant")

    world.upload([world.item(resident, venue, at(9, 10, 5), source="checkpoint-scan")])
    late = world.upload([world.item(resident, venue, at(9, 10, 0))])
    [visit] = visits_of(world, resident)

    assert late.extended == 1
    assert visit.checked_in_at == at(9, 10, 0)
    assert visit.ends_at == at(9, 11, 35)


def test_a_scan_in_one_upload_with_its_rescan_is_one_visit(world):
    [resident] = world.residents(1)
    venue = world.venue("restaurant")

    result = world.upload(
        [
            world.item(resident, venue, at(9, 18, 5)),
            world.item(resident, venue, at(9, 18, 0)),
        ]
    )

    assert (result.accepted, result.extended) == (1, 1)
    assert [v.checked_in_at for v in visits_of(world, resident)] == [at(9, 18, 0)]


def test_a_scan_after_the_visit_ended_opens_a_new_one(world):
    [resident] = world.residents(1)
    venue = world.venue("restaurant")
    world.visit(resident, venue, at(9, 10, 0))

    later = world.upload([world.item(resident, venue, at(9, 11, 30))])
    closed = world.upload([world.item(resident, venue, at(9, 15, 0), at(9, 15, 20))])
    inside = world.upload([world.item(resident, venue, at(9, 15, 10))])

    assert later.accepted == 1
    assert closed.accepted == 1
    assert inside.extended == 1
    assert [v.checked_in_at for v in visits_of(world, resident)] == [
        at(9, 10, 0),
        at(9, 11, 30),
        at(9, 15, 0),
    ]


def test_a_visit_never_grows_past_a_day(world):
    [resident] = world.residents(1)
    venue = world.venue("compound")

    result = world.upload(
        [
            world.item(resident, venue, at(8, 0, 0)),
            world.item(resident, venue, at(8, 11, 0)),
            world.item(resident, venue, at(8, 22, 0)),
        ]
    )
    visits = visits_of(world, resident)

    assert (result.accepted, result.extended) == (2, 1)
    assert [(v.checked_in_at, v.ends_at) for v in visits] == [
        (at(8, 0, 0), at(8, 23, 0)),
        (at(8, 22, 0), at(9, 10, 0)),
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"checked_in_at": "2026-03-09T10:00:00"}, "without a UTC offset"),
        ({"checked_in_at": "yesterday"}, "not an ISO 8601 time"),
        ({"checked_in_at": NOW + timedelta(minutes=6)}, "in the future"),
        ({"checked_out_at": at(9, 9, 0)}, "not after its check-in"),
        ({"checked_out_at": at(10, 10, 1)}, "longer than 24 hours"),
        ({"checked_in_at": at(1, 10, 0) - timedelta(days=30)}, "retention period"),
        ({"source": "guessed"}, "has source 'guessed'"),
        ({"idempotency_key": ""}, "idempotency key"),
        ({"idempotency_key": "x" * 65}, "idempotency key"),
        ({"venue_id": 999_999}, "names venue 999999, not registered"),
        ({"resident_id": 999_999}, "names a resident who is not registered"),
        ({"device_id": ""}, "device id"),
    ],
)
def test_a_bad_scan_is_refused_with_its_reason_and_the_rest_recorded(
    world, change, reason
):
    [resident] = world.residents(1)
    venue = world.venue("restaurant")
    fields = {
        "resident_id": resident,
        "venue_id": venue,
        "checked_in_at": at(9, 10, 0),
        "checked_out_at": None,
        **change,
    }
    good = world.item(resident, venue, at(9, 8, 0))
    bad = world.item(
        fields.pop("resident_id"),
        fields.pop("venue_id"),
        fields.pop("checked_in_at"),
        fields.pop("checked_out_at"),
        **fields,
    )

    result = world.upload([good, bad])

    assert result.accepted == 1
    [refusal] = result.refused
    assert refusal.index == 1
    assert refusal.code == "invalid_checkin"
    assert reason in refusal.message
    assert world.count("checkins") == 1


def test_a_batch_is_stored_field_for_field(world):
    # A batch reaches PostgreSQL as one document and its lookups as array
    # literals; text that needs quoting there, and instants to the
    # microsecond, come back exactly as they were sent.
    people = world.residents(4)
    venue = world.venue("office")
    devices = ['gate "A"', "back\\slash", "𠅤明 gate", "NULL"]
    batch = [
        world.item(
            person,
            venue,
            at(9, 8, index, 0) + timedelta(microseconds=123_457 * (index + 1)),
            at(9, 9, index) if index % 2 else None,
            source="checkpoint-scan",
            device_id=device,
        )
        for index, (person, device) in enumerate(zip(people, devices, strict=True))
    ]

    result = world.upload(batch)
    with world.engine.connect() as connection:
        stored = connection.execute(
            sa.select(
                Checkin.resident_id,
                Checkin.checked_in_at,
                Checkin.checked_out_at,
                Checkin.idempotency_key,
                Checkin.device_id,
            ).order_by(Checkin.resident_id)
        ).all()

    assert result.accepted == 4
    assert [tuple(row) for row in stored] == [
        (
            item.resident_id,
            item.checked_in_at,
            item.checked_out_at,
            item.idempotency_key,
            item.device_id,
        )
        for item in batch
    ]


def test_accepted_check_ins_are_there_for_a_fresh_connection(world):
    people = world.residents(2)
    venue = world.venue("shop")

    world.upload([world.item(person, venue, at(9, 9, 0)) for person in people])
    other = make_engine(world.engine.url.render_as_string(hide_password=False))
    with other.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT count(*) FROM checkins")
        ).scalar_one()
    other.dispose()

    assert stored == 2


def test_venue_types_set_the_default_stay(world):
    with Session(world.engine) as session, session.begin():
        office = register_venue(
            session,
            name=" Tower\u00a0B ",
            address="2 Keji Road",
            region_code="610113",
            venue_type="office",
            now=NOW,
        )
        park = register_venue(
            session,
            name="Park",
            address="Qujiang",
            region_code="610113",
            venue_type="park",
            now=NOW,
            default_stay_minutes=45,
        )

        assert office.default_stay_minutes == 480
        assert office.name == "Tower\u00a0B"
        assert park.default_stay_minutes == 45


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"venue_type": "casino"}, "The venue type 'casino' is not one of"),
        ({"region_code": "610100"}, "The venue region '610100' is not"),
        ({"region_code": "999999"}, "The venue region '999999' is not"),
        ({"region_code": "61011"}, "The venue region '61011' is not"),
        ({"name": "  "}, "The venue name must be 1 to 200"),
        ({"address": "a\x00b"}, "The venue address holds a control character"),
        ({"default_stay_minutes": 1441}, "A default stay of 1441 minutes"),
    ],
)
def test_a_venue_that_cannot_work_is_refused(world, fields, message):
    values = {
        "name": "Shop",
        "address": "3 Road",
        "region_code": "610113",
        "venue_type": "shop",
        **fields,
    }

    with Session(world.engine) as session, pytest.raises(InvalidVenue) as raised:
        register_venue(session, now=NOW, **values)

    assert str(raised.value).startswith(message)


def test_counts_by_local_hour_give_numbers_never_people(world):
    people = world.residents(5)
    venue = world.venue("shop")
    elsewhere = world.venue("shop", "Elsewhere")
    world.upload(
        [
            world.item(people[0], venue, at(9, 9, 5)),
            world.item(people[1], venue, at(9, 9, 40)),
            world.item(people[2], venue, at(9, 9, 59, 59)),
            world.item(people[3], venue, at(9, 14, 0)),
            world.item(people[4], venue, at(8, 23, 59)),
            world.item(people[4], venue, at(10, 0, 0)),
            world.item(people[0], elsewhere, at(9, 9, 30)),
        ]
    )

    with Session(world.engine) as session:
        counts = checkin_counts(session, venue, date(2026, 3, 9), SHANGHAI)
        with pytest.raises(UnknownVenue):
            checkin_counts(session, 999_999, date(2026, 3, 9), SHANGHAI)

    assert len(counts) == 24
    assert [(hour, n) for hour, n in counts if n] == [(9, 3), (14, 1)]
    assert all(isinstance(n, int) for _, n in counts)


def test_retention_is_counted_in_local_days():
    cutoff = retention_cutoff(NOW, timedelta(days=21), SHANGHAI)

    assert cutoff == datetime(2026, 2, 17, tzinfo=SHANGHAI)


def test_purge_removes_visits_older_than_the_retention_period(world):
    [resident] = world.residents(1)
    venue = world.venue("restaurant")
    then = datetime(2026, 2, 17, 3, 0, tzinfo=SHANGHAI)
    old = datetime(2026, 2, 16, 23, 0, tzinfo=SHANGHAI)
    first_kept = datetime(2026, 2, 17, 0, 0, tzinfo=SHANGHAI)
    world.visit(resident, venue, old, now=then)
    world.upload([world.item(resident, venue, old + timedelta(minutes=10))], now=then)
    world.visit(resident, venue, first_kept + timedelta(hours=2), now=then)
    world.visit(resident, venue, at(9, 10, 0))

    with Session(world.engine) as session, session.begin():
        purged = purge_checkins(session, NOW, zone=SHANGHAI)

    assert purged == 1
    assert [v.checked_in_at for v in visits_of(world, resident)] == [
        first_kept + timedelta(hours=2),
        at(9, 10, 0),
    ]
    assert world.count("checkin_rescans") == 0
