"""The README's instructions match what the project does."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


def test_every_document_is_listed() -> None:
    listed = set(re.findall(r"^- `(docs/[a-z-]+\.md)`", README, flags=re.MULTILINE))
    shipped = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}

    assert shipped - listed == set()


def test_the_demo_and_server_blocks_name_the_data_keys() -> None:
    demo = next(block for block in _blocks() if "healthcode status" in block)
    server = next(block for block in _blocks() if "healthcode serve" in block)

    assert "export HEALTHCODE_DATABASE_URL=sqlite:///$PWD/healthcode-demo/" in demo
    assert "export HEALTHCODE_KEY_DIR=$PWD/healthcode-demo/keys\n" in demo
    assert "export HEALTHCODE_DATA_KEY_DIR=$PWD/healthcode-demo/data-keys\n" in demo
    for name in ("HEALTHCODE_DATABASE_URL", "HEALTHCODE_DATA_KEY_DIR"):
        assert f"export {name}=" in server, name
    # The demo's documents depend on the moment it ran: none is written here.
    assert not re.search(r"status [0-9]{17}[0-9X]", demo)
    assert "make system-packages" in README
