"""CSV and NDJSON readers: line numbers, BOM, blank lines, broken lines, headers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from healthcode.feeds.errors import FeedFileUnreadable, UnknownFeedFormat
from healthcode.feeds.readers import BadLine, FeedFile, RawRow, detect_format

Writer = Callable[[str, str], Path]
COLUMNS = ("record_id", "name", "note")
REQUIRED = ("record_id", "name")


def read(path: Path) -> list[RawRow | BadLine]:
    with FeedFile(path, COLUMNS, REQUIRED) as feed:
        return list(feed.rows())


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_format_follows_the_suffix() -> None:
    assert detect_format(Path("a.CSV")) == "csv"
    assert detect_format(Path("a.ndjson")) == "ndjson"
    assert detect_format(Path("a.jsonl")) == "ndjson"
    with pytest.raises(UnknownFeedFormat):
        detect_format(Path("a.json"))


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(FeedFileUnreadable, match=r"absent\.csv cannot be read"):
        FeedFile(tmp_path / "absent.csv", COLUMNS, REQUIRED)


def test_csv_data_starts_on_line_2_and_bom_is_dropped(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path, "a.csv", "\ufeffrecord_id,name,note\r\nR1,甲,\r\nR2,乙,x\r\n".encode()
    )

    assert read(path) == [
        RawRow(2, {"record_id": "R1", "name": "甲"}),
        RawRow(3, {"record_id": "R2", "name": "乙", "note": "x"}),
    ]


def test_csv_record_over_two_lines_keeps_later_line_numbers(write: Writer) -> None:
    path = write(
        "a.csv",
        'record_id,name,note\nR1,甲,"first\nsecond"\nR2,乙,\n\nR3,丙,\n',
    )

    assert [item.line for item in read(path)] == [2, 4, 6]
    assert read(path)[0] == RawRow(
        2, {"record_id": "R1", "name": "甲", "note": "first\nsecond"}
    )


def test_csv_row_with_wrong_width_is_a_bad_line(write: Writer) -> None:
    path = write("a.csv", "record_id,name,note\nR1,甲\nR2,乙,,\nR3,丙,\n")

    assert read(path) == [
        BadLine(2, None, "The row has 2 fields but the header names 3."),
        BadLine(3, None, "The row has 4 fields but the header names 3."),
        RawRow(4, {"record_id": "R3", "name": "丙"}),
    ]


def test_csv_bad_quoting_spoils_only_its_line(write: Writer) -> None:
    path = write("a.csv", 'record_id,name,note\nR1,"甲"x,\nR2,乙,\n')

    items = read(path)

    assert [type(item).__name__ for item in items] == ["BadLine", "RawRow"]
    assert items[0].line == 2
    assert items[1] == RawRow(3, {"record_id": "R2", "name": "乙"})


def test_invalid_utf8_spoils_only_its_line(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path, "a.csv", b"record_id,name,note\nR1,\xff\xfe,\nR2,ok,\n"
    )

    assert read(path) == [
        BadLine(2, None, "The line is not valid UTF-8."),
        RawRow(3, {"record_id": "R2", "name": "ok"}),
    ]


@pytest.mark.parametrize(
    ("header", "problems"),
    [
        (
            "",
            [
                BadLine(
                    1,
                    None,
                    "The file has no header line; a CSV feed starts with a line"
                    " naming its columns.",
                )
            ],
        ),
        (
            "record_id,nmae,note\n",
            [
                BadLine(
                    1, "nmae", "The header names a column this feed kind does not have."
                ),
                BadLine(1, "name", "The header lacks this required column."),
            ],
        ),
        (
            "record_id,name,name\n",
            [BadLine(1, "name", "The header names this column twice.")],
        ),
        (
            "record_id,name,\n",
            [BadLine(1, None, "The header has a column without a name.")],
        ),
        (
            "\nrecord_id,name\n",
            [
                BadLine(
                    1,
                    None,
                    "The file has no header line; a CSV feed starts with a line"
                    " naming its columns.",
                )
            ],
        ),
    ],
)
def test_header_faults_make_the_file_unusable(
    write: Writer, header: str, problems: list[BadLine]
) -> None:
    path = write("a.csv", header)

    with FeedFile(path, COLUMNS, REQUIRED) as feed:
        assert feed.problems == problems
        assert list(feed.rows()) == []


def test_optional_column_may_be_left_out_of_the_header(write: Writer) -> None:
    path = write("a.csv", "name,record_id\n甲,R1\n")

    assert read(path) == [RawRow(2, {"name": "甲", "record_id": "R1"})]


def test_ndjson_skips_blank_lines_and_counts_them(write: Writer) -> None:
    path = write(
        "a.ndjson",
        '{"record_id": "R1", "name": "甲"}\n\n   \n{"record_id": 2, "name": "乙"}\n',
    )

    assert read(path) == [
        RawRow(1, {"record_id": "R1", "name": "甲"}),
        RawRow(4, {"record_id": 2, "name": "乙"}),
    ]


def test_ndjson_nulls_and_empty_strings_are_absent(write: Writer) -> None:
    path = write(
        "a.ndjson", '{"record_id": "R1", "name": "甲", "note": null, "x": " "}\n'
    )

    assert read(path) == [RawRow(1, {"record_id": "R1", "name": "甲"})]


def test_ndjson_broken_lines_are_bad_lines(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path,
        "a.ndjson",
        b'\xef\xbb\xbf{"record_id": "R1", "name": "a"}\n'
        b'{"record_id": "R2",\n'
        b'["R3"]\n'
        b'{"record_id": "R4", "name": "\xff"}\n'
        b'{"record_id": "R5", "name": "e"}',
    )

    assert read(path) == [
        RawRow(1, {"record_id": "R1", "name": "a"}),
        BadLine(2, None, "The line is not valid JSON in UTF-8."),
        BadLine(3, None, "The line is not a JSON object."),
        BadLine(4, None, "The line is not valid JSON in UTF-8."),
        RawRow(5, {"record_id": "R5", "name": "e"}),
    ]


def test_digest_and_position_cover_the_whole_file(tmp_path: Path) -> None:
    data = "\ufeffrecord_id,name\nR1,甲\n".encode()
    path = write_bytes(tmp_path, "a.csv", data)

    with FeedFile(path, COLUMNS, REQUIRED) as feed:
        list(feed.rows())

        assert feed.sha256 == hashlib.sha256(data).hexdigest()
        assert (feed.position, feed.size) == (len(data), len(data))
