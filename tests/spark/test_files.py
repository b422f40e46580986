"""The snapshot codec and the Java lookup, without starting Spark."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from healthcode.checkins.spark import JOURNEY_ROW, VISIT_ROW
from healthcode.spark import submit
from healthcode.spark.errors import SnapshotError, SparkUnavailable
from healthcode.spark.files import (
    PartWriter,
    RowCodec,
    read_json,
    read_manifest,
    read_parts,
    read_summary,
    spark_uri,
    write_json,
)
from healthcode.spark.session import java_home
from healthcode.status.spark import snapshot_schema


def test_instants_dates_json_and_booleans_come_back_equal(tmp_path):
    codec = RowCodec(
        ["at", "day", "doc", "flag", "count", "text"],
        ["instant", "date", "json", "bool", "int", "text"],
    )
    moment = datetime(2020, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
    rows = [
        (moment, date(1978, 12, 31), [{"code": "410184", "n": 1.5}], True, 7, "西安"),
        (None, None, None, None, None, None),
        (datetime(1969, 12, 31, 23, 0, tzinfo=UTC), date(2026, 3, 2), {}, False, 0, ""),
    ]
    writer = PartWriter(str(tmp_path / "rows"), codec.arrow_schema())

    writer.write([codec.encode(row) for row in rows])
    back = [
        codec.decode([stored[name] for name in codec.names])
        for stored in read_parts(str(tmp_path / "rows"))
    ]

    assert back == rows
    assert back[0][0].tzinfo is UTC
    assert codec.encode(rows[0])["at"] == 1583020799999999


def test_an_instant_in_another_zone_is_stored_as_the_same_instant():
    codec = RowCodec(["at"], ["instant"])
    shanghai = datetime(2026, 3, 2, 12, 0, tzinfo=timezone(timedelta(hours=8)))

    (back,) = codec.decode(codec.encode_tuple([shanghai]))

    assert back == shanghai
    assert back.isoformat() == "2026-03-02T04:00:00+00:00"


def test_snapshot_columns_follow_the_single_machine_queries():
    assert VISIT_ROW.names == (
        "id",
        "resident_id",
        "venue_id",
        "checked_in_at",
        "checked_out_at",
        "last_scan_at",
    )
    assert JOURNEY_ROW.kinds[7] == "date"  # service_date
    assert snapshot_schema().names[:5] == [
        "id",
        "identity_state",
        "doc_kind",
        "region_code",
        "birth_date",
    ]


def test_a_manifest_of_another_format_is_refused(tmp_path):
    path = str(tmp_path / "manifest.json")
    write_json(path, {"format": 99, "job": "recolor"})

    with pytest.raises(SnapshotError, match="not of format 1"):
        read_json(path, "snapshot manifest")


@pytest.mark.parametrize("job", ["recolor", "trace"])
def test_a_manifest_without_a_field_its_job_reads_is_refused_by_name(tmp_path, job):
    write_json(str(tmp_path / "manifest.json"), {"format": 1, "job": job})

    with pytest.raises(SnapshotError, match="has no 'now'"):
        read_manifest(str(tmp_path), job)


@pytest.mark.parametrize(
    ("job", "field"), [("recolor", "residents"), ("trace", "seconds")]
)
def test_a_summary_without_a_field_its_import_reads_is_refused_by_name(
    tmp_path, job, field
):
    write_json(
        str(tmp_path / "summary.json"), {"format": 1, "job": job, "snapshot_now": 5}
    )

    with pytest.raises(SnapshotError, match=f"has no '{field}'"):
        read_summary(str(tmp_path), "snap", {"job": job, "now": 5})


def test_a_local_folder_is_given_to_spark_as_a_file_uri(tmp_path):
    assert spark_uri(str(tmp_path)) == tmp_path.resolve().as_uri()
    assert spark_uri("hdfs:///healthcode/snapshot") == "hdfs:///healthcode/snapshot"


def test_java_home_set_to_a_folder_without_java_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))

    with pytest.raises(SparkUnavailable, match=f"JAVA_HOME is {tmp_path}"):
        java_home()


def test_without_java_home_the_java_on_path_is_followed(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)

    home = Path(java_home())

    assert (home / "bin" / "java").is_file()


def test_submit_without_a_job_prints_its_usage(capsys):
    assert submit.main(["recolour"]) == 2
    assert "usage: submit.py recolor|trace" in capsys.readouterr().err


def test_a_snapshot_whose_rule_set_does_not_compile_is_refused_before_spark(tmp_path):
    from healthcode.status.spark import run_recolor

    write_json(
        str(tmp_path / "manifest.json"),
        {
            "format": 1,
            "job": "recolor",
            "now": 0,
            "cause": "recolor",
            "rule_set": '{"id": "edited"}',
            "areas": [],
            "records_version": 1,
        },
    )

    # No Spark session is needed to find it: the driver compiles it first.
    with pytest.raises(SnapshotError, match="rule set .* does not compile"):
        run_recolor(None, str(tmp_path), str(tmp_path / "result"))


def test_the_export_progress_never_passes_its_total(engine, tmp_path):
    from sqlalchemy.orm import Session

    from healthcode.identity.documents import mod11_2_check, parse_document
    from healthcode.identity.services import register_resident
    from healthcode.status.spark import export_recolor

    now = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        for sequence in range(3):
            body = f"61011319900101{sequence:03d}"
            number = body + mod11_2_check(body)
            document = parse_document("cn-id", number, today=now.date())
            register_resident(session, document, "张伟", now)
    seen: list[tuple[int, int]] = []

    export_recolor(
        engine,
        str(tmp_path / "snapshot"),
        now,
        batch=2,
        progress=lambda done, total: seen.append((done, total)),
    )

    assert seen == [(2, 3), (3, 3)]
