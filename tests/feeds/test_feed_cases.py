"""Cases C09 and C10 from ../shared/cases/README.md, with their expected values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from healthcode.feeds.services import RowError

from .conftest import AYGUL, LI, NOW, RARE, ZHANG, count, resident_id, rows, run

FUTURE_REASON = (
    "The time '2026-03-13T12:00:00' lies 3 days after the import time, beyond"
    " the allowed clock skew; a recorded event cannot lie in the future."
)

# C09: the second data row (file line 3) was sampled 3 days after the import
# clock, 2026-03-10 12:00 in Shanghai.
C09_FILE = (
    "record_id,doc_number,sampled_at,method,result\n"
    f"LAB-C09-1,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
    f"LAB-C09-2,{LI},2026-03-13T12:00:00,pcr,negative\n"
    f"LAB-C09-3,{AYGUL},2026-03-10T11:00:00,antigen,negative\n"
)

C10_FILE = (
    "record_id,doc_number,sampled_at,method,result\n"
    f"LAB-C10-1,{ZHANG},2026-03-08T08:00:00,pcr,negative\n"
    f"LAB-C10-2,{LI},2026-03-08T09:00:00,pcr,negative\n"
    f"LAB-C10-3,{AYGUL},2026-03-08T10:00:00,pcr,positive\n"
    f"LAB-C10-4,{RARE},2026-03-08T11:00:00,antigen,negative\n"
)

# C10, second part: a new file whose middle row (file line 4) has an hour 25.
C10_MALFORMED = (
    "record_id,doc_number,sampled_at,method,result\n"
    f"LAB-C10-5,{ZHANG},2026-03-09T08:00:00,pcr,negative\n"
    f"LAB-C10-6,{LI},2026-03-09T09:00:00,pcr,negative\n"
    f"LAB-C10-7,{AYGUL},2026-03-09T25:00:00,pcr,negative\n"
    f"LAB-C10-8,{RARE},2026-03-09T11:00:00,pcr,negative\n"
    f"LAB-C10-9,{ZHANG},2026-03-10T08:00:00,antigen,negative\n"
)
MALFORMED_REASON = (
    "The time '2026-03-09T25:00:00' is not an ISO 8601 time such as"
    " 2026-03-02T09:15:00+08:00."
)


class RecolorRecorder:
    """A stand-in for the colour engine that remembers how it was called."""

    def __init__(self) -> None:
        self.calls: list[tuple[set[int], datetime, str]] = []

    def __call__(
        self, session: Session, residents: set[int], now: datetime, cause: str
    ) -> int:
        self.calls.append((set(residents), now, cause))
        return len(residents)


def lab_ids(engine: Engine) -> list[str]:
    return [
        row[0] for row in rows(engine, "SELECT source_id FROM lab_results ORDER BY 1")
    ]


def test_c09_future_sample_refuses_the_whole_file_by_default(
    registered: Engine, write: Callable[[str, str], Path]
) -> None:
    path = write("labs.csv", C09_FILE)

    report = run(registered, "lab-results", path)

    assert report.committed is False
    assert report.errors == [RowError(3, "sampled_at", FUTURE_REASON)]
    assert (report.read, report.rejected, report.imported) == (3, 1, 0)
    assert count(registered, "lab_results") == 0
    assert count(registered, "feed_imports") == 1  # the identities import only


def test_c09_future_sample_is_skipped_with_skip_bad(
    registered: Engine, write: Callable[[str, str], Path]
) -> None:
    path = write("labs.csv", C09_FILE)

    report = run(registered, "lab-results", path, skip_bad=True)

    assert report.committed is True
    assert report.errors == [RowError(3, "sampled_at", FUTURE_REASON)]
    assert (report.read, report.imported, report.rejected) == (3, 2, 1)
    assert lab_ids(registered) == ["LAB-C09-1", "LAB-C09-3"]


def test_c09_reason_never_names_the_resident(
    registered: Engine, write: Callable[[str, str], Path]
) -> None:
    path = write("labs.csv", C09_FILE)

    report = run(registered, "lab-results", path)

    assert LI not in report.errors[0].reason
    assert "李娜" not in report.errors[0].reason


def test_c10_second_import_of_the_same_file_adds_nothing(
    registered: Engine, write: Callable[[str, str], Path]
) -> None:
    path = write("labs.csv", C10_FILE)
    recorder = RecolorRecorder()

    first = run(registered, "lab-results", path, recolor=recorder)
    second = run(registered, "lab-results", path, recolor=recorder)

    expected_residents = {
        resident_id(registered, number) for number in (ZHANG, LI, AYGUL, RARE)
    }
    assert (first.imported, first.statuses_changed) == (4, 4)
    assert recorder.calls == [(expected_residents, NOW, f"import:{first.import_id}")]
    assert (second.committed, second.read, second.unchanged) == (True, 4, 4)
    assert (second.imported, second.updated, second.statuses_changed) == (0, 0, 0)
    assert second.affected_residents == set()
    assert len(recorder.calls) == 1
    assert count(registered, "lab_results") == 4


def test_c10_second_import_changes_no_status(
    registered: Engine, write: Callable[[str, str], Path]
) -> None:
    services = pytest.importorskip("healthcode.status.services")
    path = write("labs.csv", C10_FILE)
    run(registered, "lab-results", path, recolor=services.recolor_residents)
    statuses = rows(registered, "SELECT * FROM statuses ORDER BY resident_id")
    events = count(registered, "status_events")

    second = run(registered, "lab-results", path, recolor=services.recolor_residents)

    assert second.statuses_changed == 0
    assert rows(registered, "SELECT * FROM statuses ORDER BY resident_id") == statuses
    assert count(registered, "status_events") == events


def test_c10_malformed_middle_row_is_reported_by_line_and_nothing_written(
    registered: Engine, write: Callable[[str, str], Path]
) -> None:
    run(registered, "lab-results", write("labs.csv", C10_FILE))
    path = write("labs-next.csv", C10_MALFORMED)

    report = run(registered, "lab-results", path)

    assert report.committed is False
    assert report.errors == [RowError(4, "sampled_at", MALFORMED_REASON)]
    assert (report.read, report.rejected) == (5, 1)
    assert lab_ids(registered) == [f"LAB-C10-{n}" for n in range(1, 5)]
    assert count(registered, "feed_imports") == 2


def test_c10_malformed_middle_row_never_becomes_a_partial_record(
    registered: Engine, write: Callable[[str, str], Path]
) -> None:
    run(registered, "lab-results", write("labs.csv", C10_FILE))
    path = write("labs-next.csv", C10_MALFORMED)

    report = run(registered, "lab-results", path, skip_bad=True)

    assert report.committed is True
    assert report.errors == [RowError(4, "sampled_at", MALFORMED_REASON)]
    assert (report.imported, report.rejected) == (4, 1)
    assert lab_ids(registered) == [f"LAB-C10-{n}" for n in (1, 2, 3, 4, 5, 6, 8, 9)]
