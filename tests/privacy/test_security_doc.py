"""The threat model names tests that exist, so a renamed test cannot hide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_NAMED = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _named(document: str) -> list[tuple[str, str]]:
    return _NAMED.findall((REPO / "docs" / document).read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", ["security.md", "privacy.md"])
def test_every_test_the_document_names_exists(document: str) -> None:
    named = _named(document)

    missing = [
        f"{path}::{name}"
        for path, name in named
        if not (REPO / path).is_file()
        or not re.search(
            rf"^def {name}\(", (REPO / path).read_text(encoding="utf-8"), re.M
        )
    ]

    assert named, f"docs/{document} names no test"
    assert missing == []


def test_every_threat_names_at_least_one_test() -> None:
    text = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    sections = re.split(r"^### ", text, flags=re.M)[1:]

    bare = [section.splitlines()[0] for section in sections if "tests/" not in section]

    assert len(sections) >= 15
    assert bare == []
