"""Build steps of the pages: compile the catalogues, find the messages to translate.

``python -m healthcode.web.build`` compiles every ``.po`` to its ``.mo``.
``python -m healthcode.web.build --update`` first adds to each ``.po`` the
messages the templates use that it lacks (untranslated, to be filled in by
hand) and says how many Chinese messages still want a translation. The
front-end packages are a separate step (``scripts/web-assets.sh``), since
it needs node and npm, which the Python build does not.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from healthcode.web.i18n import (
    DOMAIN,
    LANGUAGES,
    LOCALE_DIR,
    compile_catalogues,
    parse_po,
)

__all__ = ["main", "template_messages", "update_catalogue"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

_HEADERS = {
    "zh": "Language: zh_CN\\nPlural-Forms: nplurals=1; plural=0;\\n",
    "en": "Language: en\\nPlural-Forms: nplurals=2; plural=(n != 1);\\n",
}


def template_messages(directory: Path = TEMPLATE_DIR) -> dict[str, list[str]]:
    """Every message id the templates translate, with the files that use it."""
    from healthcode.web.pages import environment

    extracting = environment("en")
    found: dict[str, list[str]] = {}
    for path in sorted(directory.rglob("*.html")):
        source = path.read_text(encoding="utf-8")
        name = path.relative_to(directory).as_posix()
        for _, _, message in extracting.extract_translations(source):
            texts = message if isinstance(message, tuple) else (message,)
            for text in texts:
                if isinstance(text, str) and text:
                    found.setdefault(text, []).append(name)
    return found


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def update_catalogue(po: Path, language: str, messages: Iterable[str]) -> int:
    """Append the ``messages`` that ``po`` lacks, untranslated; return how many."""
    text = po.read_text(encoding="utf-8") if po.exists() else ""
    if not text:
        header = f"Content-Type: text/plain; charset=UTF-8\\n{_HEADERS[language]}"
        text = f'msgid ""\nmsgstr "{header}"\n'
    known = set(_ids(text))
    missing = [message for message in messages if message not in known]
    if missing:
        blocks = [f'\nmsgid {_quote(m)}\nmsgstr ""\n' for m in missing]
        po.write_text(text.rstrip("\n") + "\n" + "".join(blocks), encoding="utf-8")
    return len(missing)


def _ids(text: str) -> list[str]:
    return list(parse_po(text, keep_empty=True).messages)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if "--update" in arguments:
        messages = sorted(template_messages())
        for language in LANGUAGES:
            po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
            added = update_catalogue(po, language, messages)
            print(f"{po}: {added} new messages")
        zh = parse_po(
            (LOCALE_DIR / "zh" / "LC_MESSAGES" / f"{DOMAIN}.po").read_text("utf-8")
        )
        untranslated = [m for m in messages if m not in zh.messages]
        print(f"zh: {len(untranslated)} messages want a translation")
    for path in compile_catalogues():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
