"""Tracing on SQLite and PostgreSQL: windows, venues, journeys, colours."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from healthcode.checkins.reference import reference_exposures
from healthcode.checkins.services import purge_checkins
from healthcode.checkins.tracing import (
    find_exposures,
    infectious_windows,
    seat_row,
)
from healthcode.status.services import current_status

from .support import NOW, SHANGHAI, World, at, policy


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def shared(world: World) -> list[tuple[int, datetime, datetime, int]]:
    """(contact, start, end, minutes) of every exposure, in local time."""
    return [
        (rid, start.astimezone(SHANGHAI), end.astimezone(SHANGHAI), minutes)
        for rid, _case, _kind, _place, start, end, minutes in world.exposures()
    ]


@pytest.fixture
def cafe(world: World) -> dict[str, int]:
    """A case who was at a cafe from 10:00 to 11:00 on 9 March, and others."""
    case, *others = world.residents(6)
    venue = world.venue("restaurant", "Cafe")
    world.visit(case, venue, at(9, 10, 0), at(9, 11, 0))
    world.case(case, onset=at(9, 20, 0), diagnosed=at(10, 8, 0), isolated=at(10, 9, 0))
    return {"case": case, "venue": venue, **dict(zip("abcde", others, strict=True))}


def test_a_visit_overlapping_the_case_is_an_exposure_of_its_shared_minutes(world, cafe):
    world.visit(cafe["a"], cafe["venue"], at(9, 9, 0), at(9, 10, 30))

    report = world.trace()

    assert shared(world) == [(cafe["a"], at(9, 10, 0), at(9, 10, 30), 30)]
    assert (report.found, report.written) == (1, 1)
    assert report.cases[0].venue_found == 1


def test_the_decay_reaches_30_minutes_past_the_case_leaving_and_no_further(world, cafe):
    world.visit(cafe["a"], cafe["venue"], at(9, 11, 20), at(9, 11, 40))
    world.visit(cafe["b"], cafe["venue"], at(9, 11, 30), at(9, 12, 0))
    world.visit(cafe["c"], cafe["venue"], at(9, 11, 29), at(9, 11, 50))

    world.trace()

    assert shared(world) == [
        (cafe["a"], at(9, 11, 20), at(9, 11, 30), 10),
        (cafe["c"], at(9, 11, 29), at(9, 11, 30), 1),
    ]


def test_without_decay_only_the_case_s_own_time_counts(world, cafe):
    world.visit(cafe["a"], cafe["venue"], at(9, 11, 20), at(9, 11, 40))
    world.visit(cafe["b"], cafe["venue"], at(9, 10, 50), at(9, 11, 40))

    world.trace(policy=policy(decay=timedelta(0)))

    assert shared(world) == [(cafe["b"], at(9, 10, 50), at(9, 11, 0), 10)]


def test_c05_visits_without_check_out_get_the_default_stay_and_miss_the_case(world):
    case, early, late = world.residents(3)
    venue = world.venue("park", "Canteen garden")
    world.visit(early, venue, at(9, 9, 0))
    world.visit(late, venue, at(9, 13, 0))
    world.visit(case, venue, at(9, 11, 30), at(9, 12, 30))
    world.case(case, onset=at(9, 18, 0), diagnosed=at(10, 8, 0))

    report = world.trace()

    assert report.found == 0
    assert world.exposures() == []


def test_c07_a_forty_minute_overlap_is_forty_minutes(world, cafe):
    world.visit(cafe["a"], cafe["venue"], at(9, 10, 5), at(9, 10, 45))

    world.trace()

    assert shared(world) == [(cafe["a"], at(9, 10, 5), at(9, 10, 45), 40)]


def test_a_visit_with_no_check_out_counts_until_its_default_stay(world, cafe):
    world.visit(cafe["a"], cafe["venue"], at(9, 8, 45))
    world.visit(cafe["b"], cafe["venue"], at(9, 8, 25))

    world.trace()

    assert shared(world) == [(cafe["a"], at(9, 10, 0), at(9, 10, 15), 15)]


def test_the_case_is_never_a_contact_of_themselves(world, cafe):
    world.visit(cafe["case"], cafe["venue"], at(9, 11, 10), at(9, 11, 40))

    report = world.trace()

    assert report.found == 0


def test_visits_outside_the_infectious_window_do_not_count(world):
    case, early, late = world.residents(3)
    venue = world.venue("shop")
    world.visit(case, venue, at(5, 10, 0), at(5, 11, 0))
    world.visit(early, venue, at(5, 10, 0), at(5, 11, 0))
    world.visit(case, venue, at(8, 10, 0), at(8, 11, 0))
    world.visit(late, venue, at(8, 10, 30), at(8, 11, 0))
    world.case(case, onset=at(9, 8, 0), diagnosed=at(9, 20, 0))

    world.trace()

    assert [rid for rid, *_ in shared(world)] == [late]


def test_c08_purged_check_ins_never_produce_an_exposure(world):
    case, contact = world.residents(2)
    venue = world.venue("restaurant")
    then = datetime(2026, 2, 10, 10, 0, tzinfo=SHANGHAI)
    world.visit(
        case, venue, then, then + timedelta(hours=1), now=then + timedelta(hours=2)
    )
    world.visit(
        contact, venue, then, then + timedelta(hours=1), now=then + timedelta(hours=2)
    )
    world.case(case, onset=then + timedelta(days=1), diagnosed=then + timedelta(days=2))

    before_purge = world.trace()
    with Session(world.engine) as session, session.begin():
        purged = purge_checkins(session, NOW, zone=SHANGHAI)
    after_purge = world.trace()
    back_then = world.trace(now=then + timedelta(days=3))

    assert (before_purge.found, after_purge.found) == (0, 0)
    assert purged == 2
    assert back_then.found == 0
    assert world.exposures() == []


def test_check_ins_past_retention_are_ignored_even_before_the_purge(world):
    case, contact = world.residents(2)
    venue = world.venue("restaurant")
    then = datetime(2026, 2, 10, 10, 0, tzinfo=SHANGHAI)
    world.visit(
        case, venue, then, then + timedelta(hours=1), now=then + timedelta(hours=2)
    )
    world.visit(
        contact, venue, then, then + timedelta(hours=1), now=then + timedelta(hours=2)
    )
    world.case(case, onset=then + timedelta(days=1), diagnosed=then + timedelta(days=2))

    at_the_time = world.trace(now=then + timedelta(days=3))
    today = world.count("exposures")
    traced_today = world.trace().found
    with Session(world.engine) as session, session.begin():
        purge_checkins(session, NOW, zone=SHANGHAI)

    assert at_the_time.found == 1
    assert today == 1
    assert traced_today == 0
    assert world.count("exposures") == 0


def test_tracing_the_same_data_again_adds_nothing_and_changes_no_colour(world, cafe):
    world.visit(cafe["a"], cafe["venue"], at(9, 9, 0), at(9, 10, 30))
    world.visit(cafe["b"], cafe["venue"], at(9, 10, 45))

    first = world.trace()
    again = world.trace(now=NOW + timedelta(minutes=5))

    assert (first.written, first.statuses_changed) == (2, 2)
    assert (again.found, again.written, again.statuses_changed) == (2, 0, 0)
    assert world.count("exposures") == 2


def test_an_exposure_is_explained_on_the_contact_s_status(world, cafe):
    world.visit(cafe["a"], cafe["venue"], at(9, 9, 0), at(9, 10, 30))

    world.trace()
    with Session(world.engine) as session, session.begin():
        view = current_status(session, cafe["a"], NOW)

    assert view.colour == "yellow"
    [reason] = view.reasons
    assert reason["rule"] == "YELLOW-EXPOSURE"
    evidence = reason["evidence"]
    assert evidence["place"] == "Cafe"
    assert evidence["kind"] == "venue"
    assert evidence["minutes"] == 30
    assert evidence["at"] == utc(at(9, 10, 30)).isoformat()
    assert evidence["ref"]["kind"] == "exposure"
    assert evidence["ref"]["department"] == "health"
    assert evidence["ref"]["recordId"].startswith("REC-")
    assert evidence["ref"]["place"] == f"venue:{cafe['venue']}"
    assert reason["until"] == utc(at(23, 10, 30)).isoformat()


def test_a_negative_test_three_days_after_the_exposure_lifts_the_yellow(world, cafe):
    world.visit(cafe["a"], cafe["venue"], at(9, 9, 0), at(9, 10, 30))
    world.trace()

    world.test_result(cafe["a"], at(12, 11, 0), "negative")
    with Session(world.engine) as session, session.begin():
        from healthcode.status.services import recolor_residents

        recolor_residents(session, [cafe["a"]], at(13, 8, 0), "test")
        view = current_status(session, cafe["a"], at(13, 8, 0))

    assert view.colour == "green"


@pytest.mark.parametrize(
    ("onset", "positive", "isolated", "expected"),
    [
        (at(8, 20, 0), None, at(10, 7, 0), (at(6, 20, 0), at(10, 7, 0), "onset")),
        (None, at(9, 6, 0), None, (at(7, 6, 0), at(10, 8, 0), "first-positive")),
        (None, None, None, (at(8, 8, 0), at(10, 8, 0), "diagnosis")),
    ],
)
def test_the_infectious_window_opens_before_onset_or_the_first_positive_sample(
    world, onset, positive, isolated, expected
):
    [case] = world.residents(1)
    if positive is not None:
        world.test_result(case, positive - timedelta(days=30), "positive")
        world.test_result(case, positive, "positive")
        world.test_result(case, positive + timedelta(hours=5), "positive")
    world.case(case, onset=onset, diagnosed=at(10, 8, 0), isolated=isolated)

    with world.engine.connect() as connection:
        [window] = infectious_windows(connection, NOW, policy())

    assert (window.start, window.end, window.basis) == (
        utc(expected[0]),
        utc(expected[1]),
        expected[2],
    )


def test_the_window_before_onset_is_configurable(world):
    [case] = world.residents(1)
    world.case(case, onset=at(8, 20, 0), diagnosed=at(10, 8, 0))

    with world.engine.connect() as connection:
        [window] = infectious_windows(
            connection, NOW, policy(before_onset=timedelta(days=4))
        )

    assert window.start == utc(at(4, 20, 0))


def flight(world: World, resident: int, seat: str | None, **changes) -> None:
    values = {
        "number": "CA1234",
        "day": date(2026, 3, 8),
        "dep": at(8, 9, 0),
        "arr": at(8, 11, 30),
        "seat": seat,
        "mode": "air",
        "carrier": "CA",
        **changes,
    }
    world.segment(resident, **values)


def test_flight_passengers_within_the_seat_rows_are_contacts(world):
    case, near, far, unknown, other_day = world.residents(5)
    flight(world, case, "20C")
    flight(world, near, "23A")
    flight(world, far, "24A")
    flight(world, unknown, None)
    flight(world, other_day, "20D", day=date(2026, 3, 9), dep=at(9, 9), arr=at(9, 11))
    world.case(case, onset=at(9, 8, 0), diagnosed=at(10, 8, 0))

    report = world.trace()
    places = {place for _, _, _, place, *_ in world.exposures()}

    assert sorted(rid for rid, *_ in shared(world)) == [near, unknown]
    assert places == {"air:CA:CA1234:2026-03-08"}
    assert report.cases[0].travel_found == 2
    assert {minutes for *_, minutes in shared(world)} == {150}


def test_the_seat_row_distance_is_configurable(world):
    case, one_row, far = world.residents(3)
    flight(world, case, "20C")
    flight(world, one_row, "21C")
    flight(world, far, "35C")
    world.case(case, onset=at(9, 8, 0), diagnosed=at(10, 8, 0))

    world.trace(policy=policy(seat_rows=0))
    tight = [rid for rid, *_ in shared(world)]
    world.trace(policy=policy(seat_rows=None))
    cabin = sorted({rid for rid, *_ in shared(world)})

    assert tight == []
    assert cabin == [one_row, far]


def test_train_passengers_share_a_carriage_and_overlapping_time(world):
    case, same, next_car, got_off, unknown_car = world.residents(5)
    train = {"number": "G87", "day": date(2026, 3, 7)}
    world.segment(
        case, **train, dep=at(7, 14), arr=at(7, 18, 32), carriage="05", seat="12F"
    )
    world.segment(
        same, **train, dep=at(7, 16), arr=at(7, 18, 32), carriage="05", seat="14A"
    )
    world.segment(
        next_car, **train, dep=at(7, 14), arr=at(7, 18), carriage="06", seat="12F"
    )
    world.segment(
        got_off, **train, dep=at(7, 12), arr=at(7, 14), carriage="05", seat="12D"
    )
    world.segment(unknown_car, **train, dep=at(7, 14), arr=at(7, 15))
    world.case(case, onset=at(8, 8, 0), diagnosed=at(9, 8, 0))

    world.trace()

    assert [
        (rid, place, minutes) for rid, _, _, place, _, _, minutes in world.exposures()
    ] == sorted(
        [
            (same, "rail:CR:G87:2026-03-07:05", 152),
            (unknown_car, "rail:CR:G87:2026-03-07:05", 60),
        ]
    )


@pytest.mark.parametrize(
    ("seat", "row"),
    [("12F", 12), ("05A", 5), ("3", 3), (None, -1), ("", -1), ("A1", -1)],
)
def test_seat_rows_are_read_from_the_leading_digits(seat, row):
    assert seat_row(seat) == row


def test_the_fast_matcher_agrees_with_the_reference_on_random_data(world):
    rng = random.Random(7)
    people = world.residents(60)
    venues = [world.venue(kind) for kind in ("shop", "restaurant", "office", "park")]
    items = []
    for _ in range(400):
        start = at(3, 0) + timedelta(minutes=rng.randrange(0, 7 * 24 * 60))
        end = None
        if rng.random() < 0.6:
            end = start + timedelta(
                minutes=rng.randrange(1, 300), seconds=rng.randrange(60)
            )
        items.append(world.item(rng.choice(people), rng.choice(venues), start, end))
    world.upload(items)
    for index, person in enumerate(people[:30]):
        dep = at(5, 8) + timedelta(minutes=rng.randrange(0, 120))
        world.segment(
            person,
            number="G87" if index % 2 else "G651",
            day=date(2026, 3, 5),
            dep=dep,
            arr=dep + timedelta(minutes=rng.randrange(30, 300)),
            carriage=rng.choice(["01", "02", None]),
            seat=rng.choice([f"{rng.randrange(1, 18)}A", None]),
        )
    for case in people[:4]:
        world.case(
            case,
            onset=at(5, 0) + timedelta(hours=rng.randrange(0, 48)),
            diagnosed=at(8, 12),
            isolated=at(8, 14),
        )
    chosen = policy()

    with world.engine.connect() as connection:
        windows = infectious_windows(connection, NOW, chosen)
        fast = find_exposures(connection, windows, NOW, chosen).rows
        slow = reference_exposures(connection, windows, NOW, chosen)

    found = {
        (
            row["resident_id"],
            row["case_resident_id"],
            row["case_report_id"],
            row["kind"],
            row["place"],
            row["starts_at"],
            row["ends_at"],
            row["overlap_minutes"],
        )
        for row in fast
    }
    assert len(found) == len(fast)
    assert len(slow) > 20
    assert {kind for *_, kind, _, _, _, _ in slow} == {"venue", "travel"}
    assert found == slow
