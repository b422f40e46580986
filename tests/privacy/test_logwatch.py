"""The watch over the run's log lines, and a run it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import structlog

from healthcode.identity.documents import mod11_2_check

from .logwatch import LogWatch, installed_watch

HERE = Path(__file__).resolve().parent
NUMBER = "61011319900101123" + mod11_2_check("61011319900101123")


def test_the_watch_is_installed_for_the_whole_run() -> None:
    watch = installed_watch()

    assert watch is not None
    assert structlog.get_config()["processors"][0] is watch


def test_the_watch_records_a_number_masked_and_passes_the_event_on() -> None:
    watch = LogWatch()
    event = {"event": "resident_found", "doc": NUMBER, "resident_id": 12}

    passed = watch(None, "info", event)

    assert passed is event
    assert [(leak.event, leak.number) for leak in watch.leaks] == [
        ("resident_found", "61**************" + NUMBER[-2:])
    ]


def test_the_watch_looks_inside_nested_values_and_exceptions() -> None:
    watch = LogWatch()

    watch(None, "error", {"event": "a", "rows": [{"doc": NUMBER}]})
    watch(None, "error", {"event": "b", "exc_info": ValueError(f"bad {NUMBER}")})
    watch(None, "info", {"event": "c", "resident_id": 12, "count": 610113})

    assert [leak.event for leak in watch.leaks] == ["a", "b"]


def _run(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(body, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(HERE))
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "logwatch",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_a_run_whose_code_logs_a_number_fails_and_names_the_test(
    tmp_path: Path,
) -> None:
    body = (
        "import structlog\n"
        "log = structlog.get_logger('sample')\n"
        "def test_logs_a_number():\n"
        f"    log.info('resident_found', doc='{NUMBER}')\n"
    )

    run = _run(tmp_path, body)

    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    assert "identity numbers in log lines" in run.stdout
    assert "test_logs_a_number" in run.stdout
    assert NUMBER not in run.stdout.split("identity numbers in log lines")[1]


def test_a_run_whose_code_logs_ids_only_passes(tmp_path: Path) -> None:
    body = (
        "import structlog\n"
        "log = structlog.get_logger('sample')\n"
        "def test_logs_an_id():\n"
        "    log.info('resident_found', resident_id=12)\n"
    )

    run = _run(tmp_path, body)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "identity numbers in log lines" not in run.stdout
