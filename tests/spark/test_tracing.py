"""Tracing on Spark writes exactly the exposures the single-machine trace writes.

A small city from the tracing bench's generator (check-ins over a fortnight,
trains and flights with carriages and seats, cases with and without a
symptom onset) is loaded, the database copied exactly, and one copy traced
with :func:`trace`, the other with the Spark job in local mode. Every
exposure is compared column by column, ids and provenance included, and so
is every status the tracing recoloured.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from healthcode.checkins.bench import NOW, BenchSize, generate, load
from healthcode.checkins.spark import trace_on_spark
from healthcode.checkins.tracing import TracingPolicy, trace

from .support import exposures, statuses, twin

pytestmark = pytest.mark.slow

SIZE = BenchSize(
    residents=2000,
    venues=150,
    checkins=30_000,
    days=14,
    cases=12,
    trains_per_day=4,
    flights_per_day=3,
    rail_passengers=2500,
    air_passengers=1200,
    sample=2,
    seed=2022,
)


@pytest.fixture(scope="module")
def city():
    return generate(SIZE)


def test_spark_tracing_writes_the_same_exposures_as_the_single_machine(
    engine, city, spark, tmp_path
):
    load(engine, city, SIZE, lambda *_: None)
    policy = TracingPolicy()
    with twin(engine, tmp_path) as copy:
        with Session(engine) as session, session.begin():
            single = trace(session, now=NOW, policy=policy)
        spread = trace_on_spark(
            copy, spark, str(tmp_path / "work"), NOW, policy=policy, partitions=3
        )

        expected = exposures(engine)
        assert exposures(copy) == expected
        assert statuses(copy) == statuses(engine)

    kinds = {row[4] for row in expected}
    assert kinds == {"venue", "travel"}
    assert spread.written == single.written == len(expected) > 50
    assert spread.statuses_changed == single.statuses_changed > 0
    assert [
        (case.case_report_id, case.venue_found, case.travel_found, case.written)
        for case in spread.cases
    ] == [
        (case.case_report_id, case.venue_found, case.travel_found, case.written)
        for case in single.cases
    ]
