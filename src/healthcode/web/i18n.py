"""Chinese and English for the pages: gettext catalogues, and which one a person reads.

The catalogues are plain gettext ``.po`` files under ``locale/<lang>/LC_MESSAGES``;
the build compiles them to ``.mo`` (:func:`compile_catalogues`, run by
``python -m healthcode.web.build``), and the pages load the ``.mo`` through
Python's :mod:`gettext`. A checkout that has not been built yet still shows
both languages: a ``.po`` without a fresh ``.mo`` beside it is compiled in
memory at start-up, with a log line that says so.

The message ids are the English text. The English catalogue is kept anyway,
so that an English wording can change without touching every template.

The language is the person's choice when they made one (a cookie), else the
first of Chinese or English their browser asks for, else Chinese: the pages
serve a Chinese city first.
"""

from __future__ import annotations

import ast
import functools
import gettext
import io
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

__all__ = [
    "DEFAULT_LANGUAGE",
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "Catalogue",
    "choose_language",
    "compile_catalogues",
    "compile_mo",
    "parse_po",
    "translations",
]

log = structlog.get_logger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "healthcode"
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"


@dataclass
class Catalogue:
    """The messages of one ``.po`` file: singular and plural entries."""

    header: str = ""
    messages: dict[str, str] = field(default_factory=dict)
    plurals: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def _unquote(text: str, where: str) -> str:
    text = text.strip()
    if not (len(text) >= 2 and text[0] == text[-1] == '"'):
        raise ValueError(f"{where}: expected a quoted string")
    # A .po string is a C string; Python's literal syntax reads the escapes
    # that catalogues use (\n, \t, \", \\) the same way.
    return str(ast.literal_eval(text))


def parse_po(
    text: str, source: str = "catalogue", *, keep_empty: bool = False
) -> Catalogue:
    """Read a ``.po`` file's entries; fuzzy and obsolete entries are skipped.

    Untranslated entries are left out too, so that gettext falls back to the
    message id, unless ``keep_empty`` asks for them (to list what a
    catalogue holds).

    Raises ``ValueError`` naming the line of anything it cannot read, so a
    broken catalogue fails the build rather than showing a page half
    untranslated.
    """
    catalogue = Catalogue()
    entry: dict[str, str] = {}
    flags: set[str] = set()
    current: str | None = None

    def finish() -> None:
        nonlocal entry, flags, current
        if "msgid" in entry and "fuzzy" not in flags:
            msgid = entry["msgid"]
            if "msgid_plural" in entry:
                forms = [
                    entry[key]
                    for key in sorted(
                        (k for k in entry if k.startswith("msgstr[")),
                        key=lambda k: int(k[7:-1]),
                    )
                ]
                if any(forms):
                    catalogue.plurals[(msgid, entry["msgid_plural"])] = forms
            elif msgid == "":
                catalogue.header = entry.get("msgstr", "")
            elif entry.get("msgstr") or keep_empty:
                catalogue.messages[msgid] = entry.get("msgstr", "")
        entry, flags, current = {}, set(), None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{source} line {number}"
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#,"):
            flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        if line.startswith('"'):
            if current is None:
                raise ValueError(f"{where}: a string continues no keyword")
            entry[current] += _unquote(line, where)
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "msgid" and "msgid" in entry:
            finish()
        if keyword not in ("msgid", "msgid_plural", "msgstr", "msgctxt") and not (
            keyword.startswith("msgstr[") and keyword.endswith("]")
        ):
            raise ValueError(f"{where}: unknown keyword {keyword!r}")
        if keyword == "msgctxt":
            raise ValueError(f"{where}: message contexts are not used here")
        entry[keyword] = _unquote(rest, where)
        current = keyword
    finish()
    return catalogue


def compile_mo(catalogue: Catalogue) -> bytes:
    """Return the GNU ``.mo`` bytes of ``catalogue``, little-endian, no hash table."""
    pairs: list[tuple[bytes, bytes]] = [(b"", catalogue.header.encode("utf-8"))]
    pairs += [
        (msgid.encode("utf-8"), msgstr.encode("utf-8"))
        for msgid, msgstr in catalogue.messages.items()
    ]
    pairs += [
        (
            f"{singular}\0{plural}".encode(),
            "\0".join(forms).encode("utf-8"),
        )
        for (singular, plural), forms in catalogue.plurals.items()
    ]
    # gettext looks ids up by binary search, so the table is sorted.
    pairs.sort(key=lambda pair: pair[0])
    count = len(pairs)
    ids_at = 7 * 4
    strs_at = ids_at + count * 8
    data_at = strs_at + count * 8
    ids_table, strs_table = [], []
    blob = bytearray()
    for msgid, _ in pairs:
        ids_table.append((len(msgid), data_at + len(blob)))
        blob += msgid + b"\0"
    for _, msgstr in pairs:
        strs_table.append((len(msgstr), data_at + len(blob)))
        blob += msgstr + b"\0"
    out = bytearray(
        struct.pack("<7I", 0x950412DE, 0, count, ids_at, strs_at, 0, data_at)
    )
    for length, offset in ids_table + strs_table:
        out += struct.pack("<2I", length, offset)
    return bytes(out + blob)


def _paths(language: str, directory: Path) -> tuple[Path, Path]:
    folder = directory / language / "LC_MESSAGES"
    return folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"


def compile_catalogues(
    directory: Path = LOCALE_DIR, languages: Iterable[str] = LANGUAGES
) -> list[Path]:
    """Compile every language's ``.po`` to the ``.mo`` beside it; return the files."""
    written = []
    for language in languages:
        po, mo = _paths(language, directory)
        catalogue = parse_po(po.read_text(encoding="utf-8"), str(po))
        mo.write_bytes(compile_mo(catalogue))
        written.append(mo)
    return written


@functools.cache
def translations(
    language: str, directory: Path = LOCALE_DIR
) -> gettext.GNUTranslations:
    """The catalogue of ``language``: its ``.mo``, or its ``.po`` compiled now."""
    if language not in LANGUAGES:
        raise ValueError(f"{language!r} is not one of {', '.join(LANGUAGES)}.")
    po, mo = _paths(language, directory)
    if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as handle:
            return gettext.GNUTranslations(handle)
    log.info("catalogue_compiled_in_memory", language=language, source=str(po))
    catalogue = parse_po(po.read_text(encoding="utf-8"), str(po))
    return gettext.GNUTranslations(io.BytesIO(compile_mo(catalogue)))


def choose_language(chosen: str | None, accept_language: str | None) -> str:
    """The language to show: the one chosen, else the browser's, else Chinese."""
    if chosen in LANGUAGES:
        return chosen  # type: ignore[return-value]
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE
