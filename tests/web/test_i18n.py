"""Catalogues: our .po reader and .mo writer agree with gettext; nothing is left out."""

from __future__ import annotations

import gettext
import io

import pytest

from healthcode.web.build import template_messages
from healthcode.web.i18n import (
    LOCALE_DIR,
    choose_language,
    compile_mo,
    parse_po,
)

PO = """\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"

# A comment.
msgid "Green code"
msgstr "绿码"

msgid "Say \\"hi\\""
msgstr "说\\"你好\\""

#, fuzzy
msgid "Half done"
msgstr "半"

msgid "Untranslated"
msgstr ""

msgid "%(n)s visit"
msgid_plural "%(n)s visits"
msgstr[0] "%(n)s visit"
msgstr[1] "%(n)s visits!"

msgid ""
"Two "
"lines"
msgstr "两行"
"""


def test_a_compiled_catalogue_reads_back_through_gettext() -> None:
    catalogue = parse_po(PO)

    translations = gettext.GNUTranslations(io.BytesIO(compile_mo(catalogue)))

    assert translations.gettext("Green code") == "绿码"
    assert translations.gettext('Say "hi"') == '说"你好"'
    assert translations.gettext("Two lines") == "两行"
    assert translations.gettext("Half done") == "Half done"
    assert translations.gettext("Untranslated") == "Untranslated"
    assert translations.ngettext("%(n)s visit", "%(n)s visits", 2) == "%(n)s visits!"


def test_a_broken_catalogue_names_its_line() -> None:
    with pytest.raises(ValueError, match="line 2: unknown keyword 'msgtxt'"):
        parse_po('msgid "a"\nmsgtxt "b"\n')


@pytest.mark.parametrize(
    ("chosen", "header", "expected"),
    [
        ("en", "zh-CN", "en"),
        (None, "en-GB,en;q=0.9", "en"),
        (None, "fr-FR, en;q=0.5, zh;q=0.8", "zh"),
        (None, "de-DE", "zh"),
        ("xx", None, "zh"),
        (None, "en;q=0", "zh"),
    ],
)
def test_the_language_is_the_choice_then_the_browser_then_chinese(
    chosen: str | None, header: str | None, expected: str
) -> None:
    assert choose_language(chosen, header) == expected


def test_every_message_the_templates_use_has_a_chinese_translation() -> None:
    zh = parse_po((LOCALE_DIR / "zh/LC_MESSAGES/healthcode.po").read_text("utf-8"))
    used = template_messages()

    missing = sorted(message for message in used if message not in zh.messages)

    assert len(used) > 100
    assert missing == []


def test_the_english_catalogue_lists_every_message() -> None:
    en = parse_po(
        (LOCALE_DIR / "en/LC_MESSAGES/healthcode.po").read_text("utf-8"),
        keep_empty=True,
    )

    assert set(template_messages()) <= set(en.messages)
