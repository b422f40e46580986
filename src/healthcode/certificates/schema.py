"""JSON schemas of the EU DCC payload, one per family of schema versions.

Written from the facts the public specification states, not copied from its
schema files. What the versions share:

* ``ver`` (``major.minor.patch``), ``nam`` and ``dob`` are required, and
  exactly one of ``v`` (vaccination), ``t`` (test) or ``r`` (recovery) is
  present, an array holding one entry;
* ``nam`` has ``fn`` and ``gn`` (free text) and ``fnt`` and ``gnt``, the
  standardised ICAO 9303 forms of capital letters and ``<``; every part is at
  most 80 characters;
* ``dob`` is ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (partial dates are legal:
  many people know only their birth year);
* country codes are capital letters, doses are integers from 1 to 9.

Where they differ: from 1.3.0 the test centre ``tc`` is optional and a date
of birth may be empty (unknown); from 1.3.2 either standardised name part
suffices (people with a single name have no surname), before it ``fnt`` is
required. Schema 1.0 also required ``tc``.

The specification annotates codes with value sets (vaccine products,
manufacturers, test devices, country codes), but its schema does not enforce
them, and genuine certificates carry codes outside them; so membership is
not a schema question here either. Formats (``date``, ``date-time``) are
annotations too: several issuers write a date-time where a date is named.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["SchemaFamily", "family_of", "hcert_schema"]

SchemaFamily = str
"""``"1.0"``, ``"1.2"``, ``"1.3.0"`` or ``"1.3.2"``: versions sharing a schema."""

_VERSION = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")

_DATE = r"[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?"
_DATE_OF_BIRTH = f"^{_DATE}$"
_DATE_OF_BIRTH_OR_EMPTY = f"^({_DATE})?$"


def family_of(version: str) -> SchemaFamily | None:
    """The schema family of payload version ``version``, or None if unknown.

    Later patch and minor versions of major version 1 use the newest family,
    since the specification only ever relaxed the schema within a major
    version.
    """
    match = _VERSION.fullmatch(version)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    if major != 1:
        return None
    if minor == 0:
        return "1.0"
    if minor in (1, 2):
        return "1.2"
    if minor == 3 and patch < 2:
        return "1.3.0"
    return "1.3.2"


def _text(max_length: int = 80) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length}


def _standardised() -> dict[str, Any]:
    return {"type": "string", "maxLength": 80, "pattern": "^[A-Z<]*$"}


def _country() -> dict[str, Any]:
    return {"type": "string", "pattern": "^[A-Z]{1,10}$"}


def _dose() -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": 9}


def _entries(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": 1}


@functools.cache
def hcert_schema(family: SchemaFamily) -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of payloads of schema ``family``."""
    if family not in ("1.0", "1.2", "1.3.0", "1.3.2"):
        raise ValueError(f"There is no DCC schema family {family!r}.")
    modern = family in ("1.3.0", "1.3.2")

    name: dict[str, Any] = {
        "type": "object",
        "properties": {
            "fn": _text(),
            "fnt": _standardised(),
            "gn": _text(),
            "gnt": _standardised(),
        },
    }
    if family == "1.3.2":
        name["anyOf"] = [{"required": ["fnt"]}, {"required": ["gnt"]}]
    else:
        name["required"] = ["fnt"]

    vaccination = {
        "type": "object",
        "required": ["tg", "vp", "mp", "ma", "dn", "sd", "dt", "co", "is", "ci"],
        "properties": {
            "tg": _text(),
            "vp": _text(),
            "mp": _text(),
            "ma": _text(),
            "dn": _dose(),
            "sd": _dose(),
            "dt": {"type": "string"},
            "co": _country(),
            "is": _text(),
            "ci": _text(),
        },
    }
    test_required = ["tg", "tt", "sc", "tr", "co", "is", "ci"]
    if not modern:
        test_required.insert(4, "tc")
    test = {
        "type": "object",
        "required": test_required,
        "properties": {
            "tg": _text(),
            "tt": _text(),
            "nm": _text(),
            "ma": _text(),
            "sc": {"type": "string"},
            "dr": {"type": "string"},
            "tr": _text(),
            "tc": _text(),
            "co": _country(),
            "is": _text(),
            "ci": _text(),
        },
    }
    recovery = {
        "type": "object",
        "required": ["tg", "fr", "co", "is", "df", "du", "ci"],
        "properties": {
            "tg": _text(),
            "fr": {"type": "string"},
            "co": _country(),
            "is": _text(),
            "df": {"type": "string"},
            "du": {"type": "string"},
            "ci": _text(),
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["ver", "nam", "dob"],
        "properties": {
            "ver": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+$"},
            "nam": name,
            "dob": {
                "type": "string",
                "pattern": _DATE_OF_BIRTH_OR_EMPTY if modern else _DATE_OF_BIRTH,
            },
            "v": _entries(vaccination),
            "t": _entries(test),
            "r": _entries(recovery),
        },
        "oneOf": [{"required": ["v"]}, {"required": ["t"]}, {"required": ["r"]}],
    }
