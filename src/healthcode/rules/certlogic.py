"""CertLogic, the JsonLogic dialect of EU DCC business rules, compiled to closures.

An expression is checked once by :func:`validate` and turned once by
:func:`compile_expression` into nested Python closures; running the result
on a resident's data does no validation and no look-up of operator names.
:func:`evaluate` is the convenience form that caches compiled expressions by
their JSON text. The semantics follow CertLogic specification 1.3.3 and its
published test suite:

* Falsy values are exactly ``false``, ``null``, ``""``, ``0``, ``[]`` and
  ``{}``; truthy ones are ``true``, non-empty strings and arrays, non-zero
  integers and objects with a key. Anything else (a float, for instance) is
  neither, and an ``if`` guard, a non-last ``and`` operand or a ``!`` operand
  that is neither raises :class:`EvaluationError`.
* Date-times exist only as results of ``plusTime`` and ``dccDateOfBirth``.
  A time without an offset is UTC, fractions are cut to milliseconds, and a
  date without a time is midnight UTC. ``YYYY`` and ``YYYY-MM`` mean the last
  day of that year or month, for ``plusTime`` as for ``dccDateOfBirth``,
  which is what the test suite expects. Years, months, days and hours are
  added the way JavaScript's UTC setters do it: a day that does not exist in
  the target month runs over into the next (2020-01-31 plus one month is
  2020-03-02), and there is no daylight saving time.
* An impossible date such as ``2021-09-99`` raises :class:`EvaluationError`
  when it comes from the data; written as a literal in the expression it
  makes the expression invalid, because such a rule can never run.
* ``reduce`` evaluates its lambda in the context
  ``{"current", "accumulator", "data"}``, ``data`` being the outer context.

Choices where the specification leaves room, all made to refuse rather than
guess: ``===`` and ``in`` compare only strings, integers, booleans and
``null`` (``1`` is not ``true``), and raise for other operands, whose
JavaScript identity comparison would silently give ``false``; the right-hand
side of ``in`` must be an array, ``null`` included in the refusal; integers
are Python ``int`` values other than ``bool``, so a float in the data is no
integer even when it is whole; ``var`` does not index into strings.
Expressions nested deeper than :data:`MAX_DEPTH` levels are invalid, so that
a hostile rule cannot exhaust the interpreter's stack.

Extensions beyond CertLogic, needed by our platform:

1. Data may hold aware :class:`~datetime.datetime` objects, because the record
   layer passes instants without formatting them as text. ``plusTime``
   accepts such a value wherever it accepts a date-time string (converting it
   to UTC and cutting it to milliseconds), it is truthy like a non-empty
   string, the operators ``before``, ``after``, ``not-before`` and
   ``not-after`` accept it, and an expression may return it (rules say until
   when they hold that way). A naive ``datetime`` is refused.

Error messages name the place in the expression as a JSON pointer, such as
``/and/1/var``, and describe data values by type only, since data may be
personal.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from healthcode.rules.errors import EvaluationError, InvalidExpression

__all__ = [
    "MAX_DEPTH",
    "Compiled",
    "compile_expression",
    "evaluate",
    "is_truthy",
    "parse_datetime",
    "validate",
]

Compiled = Callable[[Any], Any]
"""A compiled expression: call it with the data context to get the result."""

MAX_DEPTH = 100
"""The deepest nesting of arrays and operations that an expression may have."""

_NONE_TYPE = type(None)

# Least and greatest number of operands per operation; None means no limit.
_ARITY: dict[str, tuple[int, int | None]] = {
    "if": (3, 3),
    "===": (2, 2),
    "in": (2, 2),
    "+": (2, 2),
    "and": (2, None),
    "!": (1, 1),
    "<": (2, 3),
    ">": (2, 3),
    "<=": (2, 3),
    ">=": (2, 3),
    "before": (2, 3),
    "after": (2, 3),
    "not-before": (2, 3),
    "not-after": (2, 3),
    "plusTime": (3, 3),
    "reduce": (3, 3),
    "extractFromUVCI": (2, 2),
    "dccDateOfBirth": (1, 1),
}
_TIME_UNITS = ("year", "month", "day", "hour")


# --------------------------------------------------------------------------
# Public interface
# --------------------------------------------------------------------------


def validate(expression: Any) -> None:
    """Check that ``expression`` is valid CertLogic, without running it.

    Raises :class:`InvalidExpression` whose message lists every problem with
    its JSON pointer, for example ``at /and/1/var: the path of 'var' must be a
    string``; the pairs are also in its ``problems`` attribute.
    """
    problems: list[tuple[str, str]] = []
    _check(expression, "", 0, problems)
    if problems:
        listed = "; ".join(f"at {_shown(path)}: {text}" for path, text in problems)
        count = "one problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise InvalidExpression(
            f"The CertLogic expression is invalid ({count}): {listed}.", problems
        )


def compile_expression(expression: Any) -> Compiled:
    """Validate ``expression`` and return a closure that evaluates it.

    The closure takes the data context and returns the result, raising
    :class:`EvaluationError` when the data does not fit the expression.
    Literal date-time strings are parsed here, once.
    """
    validate(expression)
    return _compile(expression, "")


def evaluate(expression: Any, data: Any) -> Any:
    """Evaluate ``expression`` on ``data``, compiling it at most once.

    Compiled expressions are cached by their JSON text. An expression that
    cannot be written as JSON is compiled afresh, so that validation names
    what is wrong with it.
    """
    try:
        text = json.dumps(expression, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return compile_expression(expression)(data)
    return _compile_text(text)(data)


def is_truthy(value: Any) -> bool:
    """Return CertLogic truthiness of ``value``.

    Raises :class:`EvaluationError` for a value that is neither truthy nor
    falsy, such as a float or a naive date-time.
    """
    return _truth(value, "")


def parse_datetime(text: str) -> datetime:
    """Read a date-time in one of the forms ``plusTime`` accepts, as UTC.

    The forms are ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` and
    ``YYYY-MM-DDThh:mm:ss`` with an optional fraction of any length (cut to
    milliseconds) and an optional offset ``Z``, ``±h``, ``±hh``, ``±hmm``,
    ``±hhmm``, ``±h:mm`` or ``±hh:mm`` (none means UTC). ``YYYY`` and
    ``YYYY-MM`` give the last day of the year or month, at midnight.

    Raises :class:`EvaluationError` for any other text and for dates or
    times that do not exist.
    """
    if not isinstance(text, str):
        raise EvaluationError(
            f"A date-time must be given as a string, not as {_describe(text)}."
        )
    instant = _parse_cached(text)
    if instant is None:
        raise EvaluationError(f"The date-time text {_parse_problem(text)}.")
    return instant


@lru_cache(maxsize=1024)
def _compile_text(text: str) -> Compiled:
    return compile_expression(json.loads(text))


# --------------------------------------------------------------------------
# Values: kinds, descriptions, truthiness
# --------------------------------------------------------------------------

# The exact Python types of the values that ``===`` and ``in`` compare,
# mapped to their kind. Subclasses (a StrEnum, an IntEnum) take the slow
# path through ``_scalar_kind``.
_EXACT_KIND: dict[type, type] = {
    str: str,
    int: int,
    bool: bool,
    _NONE_TYPE: _NONE_TYPE,
}


def _describe(value: Any) -> str:
    """Name the CertLogic type of ``value``, never its content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            return "a date-time without an offset"
        return "a date-time"
    if isinstance(value, float):
        return "a number that is not an integer"
    return f"a value of Python type {type(value).__name__}"


def _shown(path: str) -> str:
    return path or "/"


def _child(path: str, key: object) -> str:
    """Extend a JSON pointer by one step, escaping as RFC 6901 says."""
    step = str(key).replace("~", "~0").replace("/", "~1")
    return f"{path}/{step}"


def _truth(value: Any, where: str) -> bool:
    """Return whether ``value`` is truthy; raise if it is neither."""
    kind = type(value)
    if kind is bool:
        return value
    if value is None:
        return False
    if kind is str or kind is list or kind is dict:
        return len(value) > 0
    if kind is int:
        return value != 0
    if kind is datetime and value.tzinfo is UTC:
        return True
    return _truth_slow(value, where)


def _truth_slow(value: Any, where: str) -> bool:
    # Subclasses of the JSON types, and aware date-times in zones other than
    # UTC, are legitimate; everything else is neither truthy nor falsy.
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    if isinstance(value, int):
        return value != 0
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return True
    if where:
        message = (
            f"The value at {where} must be truthy or falsy, but it is "
            f"{_describe(value)}, which is neither."
        )
    else:
        message = f"The value is {_describe(value)}, which is neither truthy nor falsy."
    raise EvaluationError(message, where)


def _scalar_kind(value: Any, op: str, where: str, position: int) -> type:
    """Return the kind of a value that ``===`` or ``in`` may compare."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, str):
        return str
    if value is None:
        return _NONE_TYPE
    raise EvaluationError(
        f"The operands of '{op}' at {where} must be strings, integers, booleans "
        f"or null, but operand {position} is {_describe(value)}.",
        where,
    )


def _item_kind(value: Any) -> type | None:
    """The kind of an array item for ``in``; None for items that never match."""
    kind = _EXACT_KIND.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, str):
        return str
    return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------
# Date-times: parsing and JavaScript-style arithmetic
# --------------------------------------------------------------------------

_DATE_TIME_FORM = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:\.(?P<fraction>\d+))?"
    r"(?P<offset>Z|[+-]\d{1,2}(?::?\d{2})?)?)?)?)?",
    re.ASCII,
)
_DATE_OF_BIRTH_FORM = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?", re.ASCII
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def _decode(match: re.Match[str] | None) -> datetime:
    """Turn a matched date(-time) into a UTC instant; ValueError says why not."""
    if match is None:
        raise ValueError("is not a date or date-time in an accepted form")
    fields = match.groupdict()
    year = int(fields["year"])
    if fields["month"] is None:
        month, day = 12, 31
    else:
        month = int(fields["month"])
        if not 1 <= month <= 12:
            raise ValueError("names a month that does not exist")
        day = (
            _days_in_month(year, month) if fields["day"] is None else int(fields["day"])
        )
    hour = int(fields.get("hour") or 0)
    minute = int(fields.get("minute") or 0)
    second = int(fields.get("second") or 0)
    fraction = fields.get("fraction") or ""
    # Cut, not round: .9999 is 999 milliseconds.
    millisecond = int((fraction + "000")[:3])
    try:
        instant = datetime(
            year, month, day, hour, minute, second, millisecond * 1000, tzinfo=UTC
        )
    except ValueError:
        raise ValueError("names a date or time that does not exist") from None
    offset = fields.get("offset")
    if offset is None or offset == "Z":
        return instant
    return instant - _offset(offset)


def _offset(text: str) -> timedelta:
    sign = -1 if text[0] == "-" else 1
    digits = text[1:]
    if ":" in digits:
        hours, minutes = digits.split(":")
    elif len(digits) <= 2:
        hours, minutes = digits, "0"
    else:
        hours, minutes = digits[:-2], digits[-2:]
    if int(hours) > 23 or int(minutes) > 59:
        raise ValueError("has an offset that does not exist")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def _decode_date_time(text: str) -> datetime:
    try:
        return _decode(_DATE_TIME_FORM.fullmatch(text))
    except OverflowError:
        raise ValueError("lies outside the years 1 to 9999") from None


def _decode_date_of_birth(text: str) -> datetime:
    return _decode(_DATE_OF_BIRTH_FORM.fullmatch(text))


# Data strings repeat (dates of birth, test dates, one clock per batch), so
# their parses are cached; a failure is cached as None and explained by
# parsing again on the cold path.
@lru_cache(maxsize=16384)
def _parse_cached(text: str) -> datetime | None:
    try:
        return _decode_date_time(text)
    except ValueError:
        return None


@lru_cache(maxsize=16384)
def _parse_date_of_birth_cached(text: str) -> datetime | None:
    try:
        return _decode_date_of_birth(text)
    except ValueError:
        return None


def _parse_problem(
    text: str, decode: Callable[[str], datetime] = _decode_date_time
) -> str:
    try:
        decode(text)
    except ValueError as exc:
        return str(exc)
    return "could not be read"  # pragma: no cover - only reached on a cache bug


def _instant(value: Any, where: str) -> datetime:
    """The operand of ``plusTime`` as a UTC instant cut to milliseconds."""
    if isinstance(value, str):
        instant = _parse_cached(value)
        if instant is None:
            raise EvaluationError(
                f"The date-time at {where} {_parse_problem(value)}.", where
            )
        return instant
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise EvaluationError(
                f"The date-time at {where} has no offset; only aware date-times "
                "are accepted.",
                where,
            )
        try:
            instant = value.astimezone(UTC)
        except OverflowError:
            raise EvaluationError(
                f"The date-time at {where} lies outside the years 1 to 9999.", where
            ) from None
        excess = instant.microsecond % 1000
        return instant.replace(microsecond=instant.microsecond - excess)
    raise EvaluationError(
        f"The operand at {where} must be a date-time string or a date-time, but "
        f"it is {_describe(value)}.",
        where,
    )


def _add_months(instant: datetime, months: int) -> datetime:
    """Add months as JavaScript's setUTCMonth does, running over short months."""
    index = instant.month - 1 + months
    year = instant.year + index // 12
    month = index % 12 + 1
    if not 1 <= year <= 9999:
        raise OverflowError("year out of range")
    last = _days_in_month(year, month)
    if instant.day <= last:
        return instant.replace(year=year, month=month)
    # 2020-01-31 plus one month is "2020-02-31", which JavaScript reads as
    # two days past the end of February.
    overflow = timedelta(days=instant.day - last)
    return instant.replace(year=year, month=month, day=last) + overflow


def _shift(instant: datetime, amount: int, unit: str) -> datetime:
    if unit == "day":
        return instant + timedelta(days=amount)
    if unit == "hour":
        return instant + timedelta(hours=amount)
    if unit == "month":
        return _add_months(instant, amount)
    return _add_months(instant, 12 * amount)


def _out_of_range(where: str) -> EvaluationError:
    return EvaluationError(
        f"The 'plusTime' at {where} gives a date-time outside the years 1 to 9999.",
        where,
    )


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _check(expr: Any, path: str, depth: int, problems: list[tuple[str, str]]) -> None:
    if depth > MAX_DEPTH:
        problems.append((path, f"the expression nests deeper than {MAX_DEPTH} levels"))
        return
    if isinstance(expr, (bool, int, str)):
        return
    if isinstance(expr, list):
        for index, item in enumerate(expr):
            _check(item, _child(path, index), depth + 1, problems)
        return
    if isinstance(expr, dict):
        _check_operation(expr, path, depth, problems)
        return
    problems.append((path, _literal_problem(expr)))


def _literal_problem(expr: Any) -> str:
    if expr is None:
        return "null is not allowed as a literal"
    if isinstance(expr, float):
        return "a number literal must be an integer"
    if isinstance(expr, datetime):
        return "date-times cannot be literals; make them with plusTime"
    return f"a value of Python type {type(expr).__name__} is not a CertLogic literal"


def _check_operation(
    expr: dict[Any, Any], path: str, depth: int, problems: list[tuple[str, str]]
) -> None:
    if len(expr) != 1:
        if not expr:
            problems.append((path, "an object literal ({}) is not allowed"))
        else:
            problems.append(
                (path, f"an operation must have exactly one key, not {len(expr)}")
            )
        return
    ((op, operands),) = expr.items()
    where = _child(path, op)
    if op == "var":
        if not isinstance(operands, str):
            problems.append((where, "the path of 'var' must be a string"))
        return
    if not isinstance(op, str) or op not in _ARITY:
        problems.append((where, f"'{op}' is not a CertLogic operation"))
        return
    if not isinstance(operands, list):
        problems.append((where, f"the operands of '{op}' must be an array"))
        return
    least, most = _ARITY[op]
    if len(operands) < least or (most is not None and len(operands) > most):
        problems.append(
            (where, f"'{op}' takes {_arity_text(least, most)}, not {len(operands)}")
        )
        return
    for index, operand in enumerate(operands):
        slot = _child(where, index)
        fixed = _FIXED_OPERANDS.get((op, index))
        if fixed is not None:
            problem = fixed(operand)
            if problem is not None:
                problems.append((slot, problem))
            continue
        before = len(problems)
        _check(operand, slot, depth + 1, problems)
        literal = _LITERAL_OPERANDS.get((op, index))
        if (
            literal is not None
            and len(problems) == before
            and not isinstance(operand, dict)
        ):
            problem = literal(operand)
            if problem is not None:
                problems.append((slot, problem))


def _arity_text(least: int, most: int | None) -> str:
    if most is None:
        return f"at least {least} operands"
    if least == most:
        return "1 operand" if least == 1 else f"{least} operands"
    return f"{least} to {most} operands"


def _check_amount(operand: Any) -> str | None:
    if _is_integer(operand):
        return None
    return "the amount of 'plusTime' must be an integer literal"


def _check_unit(operand: Any) -> str | None:
    if isinstance(operand, str) and operand in _TIME_UNITS:
        return None
    return "the unit of 'plusTime' must be one of year, month, day or hour"


def _check_index(operand: Any) -> str | None:
    if _is_integer(operand):
        return None
    return "the index of 'extractFromUVCI' must be an integer literal"


def _check_date_time_literal(operand: Any) -> str | None:
    if not isinstance(operand, str):
        return f"a literal date-time must be a string, not {_describe(operand)}"
    if _parse_cached(operand) is None:
        return f"the literal date-time {_parse_problem(operand)}"
    return None


def _check_date_of_birth_literal(operand: Any) -> str | None:
    if not isinstance(operand, str):
        return f"a literal date of birth must be a string, not {_describe(operand)}"
    if _parse_date_of_birth_cached(operand) is None:
        problem = _parse_problem(operand, _decode_date_of_birth)
        return f"the literal date of birth {problem}"
    return None


def _check_uvci_literal(operand: Any) -> str | None:
    if isinstance(operand, str):
        return None
    return (
        f"a literal certificate identifier must be a string, not {_describe(operand)}"
    )


# Operands that must be literals of a fixed form, checked instead of being
# validated as expressions.
_FIXED_OPERANDS: dict[tuple[str, int], Callable[[Any], str | None]] = {
    ("plusTime", 1): _check_amount,
    ("plusTime", 2): _check_unit,
    ("extractFromUVCI", 1): _check_index,
}
# Operands that may be any expression but, when written as a literal, can be
# checked now because the literal alone decides whether they can ever work.
_LITERAL_OPERANDS: dict[tuple[str, int], Callable[[Any], str | None]] = {
    ("plusTime", 0): _check_date_time_literal,
    ("dccDateOfBirth", 0): _check_date_of_birth_literal,
    ("extractFromUVCI", 0): _check_uvci_literal,
}


# --------------------------------------------------------------------------
# Compilation: literals, arrays and the dispatch table
# --------------------------------------------------------------------------


def _compile(expr: Any, path: str) -> Compiled:
    """Compile a validated expression; ``path`` is its JSON pointer."""
    if isinstance(expr, dict):
        ((op, operands),) = expr.items()
        where = _child(path, op)
        if op == "var":
            return _compile_var(operands)
        return _COMPILERS[op](op, operands, where)
    if isinstance(expr, list):
        return _compile_array(expr, path)
    return _constant(expr)


def _compile_all(operands: list[Any], where: str) -> list[Compiled]:
    return [_compile(operand, _child(where, i)) for i, operand in enumerate(operands)]


def _constant(value: Any) -> Compiled:
    def constant(data: Any) -> Any:
        return value

    return constant


def _compile_array(items: list[Any], path: str) -> Compiled:
    parts = _compile_all(items, path)

    # A fresh list every time, so that a caller changing a result cannot
    # change what the expression gives next time.
    def array(data: Any) -> list[Any]:
        return [part(data) for part in parts]

    return array


def _is_literal(expr: Any) -> bool:
    return not isinstance(expr, (dict, list))


# --------------------------------------------------------------------------
# Operation family: data access (var)
# --------------------------------------------------------------------------


def _identity(data: Any) -> Any:
    return data


def _compile_var(path: str) -> Compiled:
    if path == "":
        return _identity
    steps = tuple(
        (fragment, int(fragment) if fragment.isascii() and fragment.isdigit() else None)
        for fragment in path.split(".")
    )

    def drill(data: Any) -> Any:
        value = data
        for key, index in steps:
            if isinstance(value, dict):
                value = value.get(key)
            elif isinstance(value, list):
                if index is None or index >= len(value):
                    return None
                value = value[index]
            else:
                return None
        return value

    if len(steps) == 1 and steps[0][1] is None:
        key = steps[0][0]

        def var_key(data: Any) -> Any:
            if type(data) is dict:
                return data.get(key)
            return drill(data)

        return var_key
    if len(steps) == 2 and steps[0][1] is None and steps[1][1] is None:
        outer, inner = steps[0][0], steps[1][0]

        # The common shape "current.result": two dictionary look-ups with
        # no loop; anything unusual falls back to the general walk.
        def var_key_key(data: Any) -> Any:
            if type(data) is dict:
                value = data.get(outer)
                if type(value) is dict:
                    return value.get(inner)
            return drill(data)

        return var_key_key
    return drill


# --------------------------------------------------------------------------
# Operation family: logic (if, and, !)
# --------------------------------------------------------------------------


def _compile_if(op: str, operands: list[Any], where: str) -> Compiled:
    guard, then, otherwise = _compile_all(operands, where)
    guard_where = _child(where, 0)

    def if_(data: Any) -> Any:
        value = guard(data)
        if value is True or (value is not False and _truth(value, guard_where)):
            return then(data)
        return otherwise(data)

    return if_


def _compile_and(op: str, operands: list[Any], where: str) -> Compiled:
    parts = _compile_all(operands, where)
    last = parts[-1]
    if len(parts) == 2:
        first = parts[0]
        first_where = _child(where, 0)

        def and2(data: Any) -> Any:
            value = first(data)
            if value is True or (value is not False and _truth(value, first_where)):
                return last(data)
            return value

        return and2
    leading = tuple((part, _child(where, i)) for i, part in enumerate(parts[:-1]))

    def and_n(data: Any) -> Any:
        for part, part_where in leading:
            value = part(data)
            if value is not True and (value is False or not _truth(value, part_where)):
                return value
        # Like the reference engine, the last operand is returned unchecked,
        # so that a rule can end in a date-time or another value.
        return last(data)

    return and_n


def _compile_not(op: str, operands: list[Any], where: str) -> Compiled:
    (operand,) = _compile_all(operands, where)
    operand_where = _child(where, 0)

    def not_(data: Any) -> bool:
        value = operand(data)
        if value is True:
            return False
        if value is False:
            return True
        return not _truth(value, operand_where)

    return not_


# --------------------------------------------------------------------------
# Operation family: equality and membership (===, in)
# --------------------------------------------------------------------------


def _compile_equality(op: str, operands: list[Any], where: str) -> Compiled:
    left, right = _compile_all(operands, where)
    if _is_literal(operands[1]) or _is_literal(operands[0]):
        # One side is a literal: check and compare the other side only.
        position = 0 if _is_literal(operands[1]) else 1
        other = left if position == 0 else right
        constant = operands[1 - position]
        constant_kind = _scalar_kind(constant, op, where, 1 - position)

        def equals_constant(data: Any) -> bool:
            value = other(data)
            kind = _EXACT_KIND.get(type(value)) or _scalar_kind(
                value, op, where, position
            )
            return kind is constant_kind and value == constant

        return equals_constant

    def equals(data: Any) -> bool:
        first = left(data)
        second = right(data)
        first_kind = _EXACT_KIND.get(type(first)) or _scalar_kind(first, op, where, 0)
        second_kind = _EXACT_KIND.get(type(second)) or _scalar_kind(
            second, op, where, 1
        )
        return first_kind is second_kind and first == second

    return equals


def _member(value: Any, items: list[Any], op: str, where: str) -> bool:
    kind = _EXACT_KIND.get(type(value)) or _scalar_kind(value, op, where, 0)
    # Arrays and objects inside the array never equal a scalar, just as
    # JavaScript's indexOf never finds them.
    return any(item == value and _item_kind(item) is kind for item in items)


def _compile_in(op: str, operands: list[Any], where: str) -> Compiled:
    needle, haystack = _compile_all(operands, where)
    literal_items = operands[1]
    if isinstance(literal_items, list) and all(map(_is_literal, literal_items)):
        # A literal array of literals, the usual case ("in": [x, ["a", "b"]]):
        # a set of (kind, value) pairs keeps 1 apart from true.
        keys = frozenset((_item_kind(item), item) for item in literal_items)

        def in_literal(data: Any) -> bool:
            value = needle(data)
            kind = _EXACT_KIND.get(type(value))
            if kind is None:
                return _member(value, literal_items, op, where)
            return (kind, value) in keys

        return in_literal

    def in_(data: Any) -> bool:
        value = needle(data)
        items = haystack(data)
        if not isinstance(items, list):
            raise EvaluationError(
                f"The second operand of 'in' at {where} must be an array, but it "
                f"is {_describe(items)}.",
                where,
            )
        return _member(value, items, op, where)

    return in_


# --------------------------------------------------------------------------
# Operation family: integers (+, <, >, <=, >=)
# --------------------------------------------------------------------------

_INTEGER_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _require_integers(op: str, where: str, values: tuple[Any, ...]) -> None:
    for position, value in enumerate(values):
        if not _is_integer(value):
            raise EvaluationError(
                f"The operands of '{op}' at {where} must be integers, but operand "
                f"{position} is {_describe(value)}.",
                where,
            )


def _compile_plus(op: str, operands: list[Any], where: str) -> Compiled:
    left, right = _compile_all(operands, where)

    def plus(data: Any) -> int:
        first = left(data)
        second = right(data)
        if type(first) is not int or type(second) is not int:
            _require_integers(op, where, (first, second))
        return int(first + second)

    return plus


def _compile_integer_comparison(op: str, operands: list[Any], where: str) -> Compiled:
    compare = _INTEGER_COMPARISONS[op]
    parts = _compile_all(operands, where)
    if len(parts) == 2:
        left, right = parts

        def compare2(data: Any) -> bool:
            first = left(data)
            second = right(data)
            if type(first) is not int or type(second) is not int:
                _require_integers(op, where, (first, second))
            return compare(first, second)

        return compare2
    low, middle, high = parts

    def compare3(data: Any) -> bool:
        first = low(data)
        second = middle(data)
        third = high(data)
        if type(first) is not int or type(second) is not int or type(third) is not int:
            _require_integers(op, where, (first, second, third))
        return compare(first, second) and compare(second, third)

    return compare3


# --------------------------------------------------------------------------
# Operation family: date-times (before, after, not-before, not-after,
# plusTime, dccDateOfBirth)
# --------------------------------------------------------------------------

_DATE_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "before": operator.lt,
    "after": operator.gt,
    "not-after": operator.le,
    "not-before": operator.ge,
}


def _require_instants(op: str, where: str, values: tuple[Any, ...]) -> None:
    for position, value in enumerate(values):
        if not (isinstance(value, datetime) and value.utcoffset() is not None):
            hint = (
                "; a date-time string must go through plusTime first"
                if isinstance(value, str)
                else ""
            )
            raise EvaluationError(
                f"The operands of '{op}' at {where} must be date-times, but operand "
                f"{position} is {_describe(value)}{hint}.",
                where,
            )


def _compile_date_comparison(op: str, operands: list[Any], where: str) -> Compiled:
    compare = _DATE_COMPARISONS[op]
    parts = _compile_all(operands, where)
    if len(parts) == 2:
        left, right = parts

        def compare2(data: Any) -> bool:
            first = left(data)
            second = right(data)
            # Results of plusTime are always in timezone.utc, so the check
            # is two identity tests on the common path.
            if (
                type(first) is not datetime
                or type(second) is not datetime
                or first.tzinfo is not UTC
                or second.tzinfo is not UTC
            ):
                _require_instants(op, where, (first, second))
            return compare(first, second)

        return compare2
    low, middle, high = parts

    def compare3(data: Any) -> bool:
        values = (low(data), middle(data), high(data))
        for value in values:
            if type(value) is not datetime or value.tzinfo is not UTC:
                _require_instants(op, where, values)
                break
        return compare(values[0], values[1]) and compare(values[1], values[2])

    return compare3


def _compile_plus_time(op: str, operands: list[Any], where: str) -> Compiled:
    source, amount, unit = operands
    source_where = _child(where, 0)
    if isinstance(source, str):
        # A literal: parsed now, and shifted now too if that stays in range.
        start = _parse_cached(source)
        if start is None:  # pragma: no cover - validate() refuses such literals
            raise InvalidExpression(f"The literal date-time at {source_where} is bad.")
        try:
            return _constant(_shift(start, amount, unit))
        except (OverflowError, ValueError):
            error = _out_of_range(where)

            def out_of_range(data: Any) -> Any:
                raise error

            return out_of_range
    read = _compile(source, source_where)
    if amount == 0:

        def plus_nothing(data: Any) -> datetime:
            value = read(data)
            if (
                type(value) is datetime
                and value.tzinfo is UTC
                and not value.microsecond % 1000
            ):
                return value
            return _instant(value, source_where)

        return plus_nothing
    if unit in ("day", "hour"):
        try:
            step = timedelta(days=amount) if unit == "day" else timedelta(hours=amount)
        except OverflowError:
            # No date-time lies that far from any other; every evaluation fails.
            too_far = _out_of_range(where)

            def beyond_range(data: Any) -> Any:
                raise too_far

            return beyond_range

        def plus_duration(data: Any) -> datetime:
            value = read(data)
            if not (
                type(value) is datetime
                and value.tzinfo is UTC
                and not value.microsecond % 1000
            ):
                value = _instant(value, source_where)
            try:
                return value + step
            except OverflowError:
                raise _out_of_range(where) from None

        return plus_duration
    months = amount if unit == "month" else 12 * amount

    def plus_months(data: Any) -> datetime:
        value = read(data)
        if not (
            type(value) is datetime
            and value.tzinfo is UTC
            and not value.microsecond % 1000
        ):
            value = _instant(value, source_where)
        try:
            return _add_months(value, months)
        except (OverflowError, ValueError):
            raise _out_of_range(where) from None

    return plus_months


def _compile_date_of_birth(op: str, operands: list[Any], where: str) -> Compiled:
    source = operands[0]
    source_where = _child(where, 0)
    if isinstance(source, str):
        return _constant(_parse_date_of_birth_cached(source))
    read = _compile(source, source_where)

    def date_of_birth(data: Any) -> datetime:
        value = read(data)
        if not isinstance(value, str):
            raise EvaluationError(
                f"The operand of 'dccDateOfBirth' at {source_where} must be a "
                f"string, but it is {_describe(value)}.",
                source_where,
            )
        instant = _parse_date_of_birth_cached(value)
        if instant is None:
            problem = _parse_problem(value, _decode_date_of_birth)
            raise EvaluationError(
                f"The date of birth at {source_where} {problem}.", source_where
            )
        return instant

    return date_of_birth


# --------------------------------------------------------------------------
# Operation family: arrays (reduce)
# --------------------------------------------------------------------------


def _compile_reduce(op: str, operands: list[Any], where: str) -> Compiled:
    source, lambda_, initial = _compile_all(operands, where)
    source_where = _child(where, 0)

    def reduce_(data: Any) -> Any:
        items = source(data)
        accumulator = initial(data)
        if items is None:
            return accumulator
        if not isinstance(items, list):
            raise EvaluationError(
                f"The operand of 'reduce' at {source_where} must be an array or "
                f"null, but it is {_describe(items)}.",
                source_where,
            )
        for current in items:
            accumulator = lambda_(
                {"current": current, "accumulator": accumulator, "data": data}
            )
        return accumulator

    return reduce_


# --------------------------------------------------------------------------
# Operation family: certificate identifiers (extractFromUVCI)
# --------------------------------------------------------------------------

_UVCI_SEPARATORS = re.compile(r"[/#:]")
_UVCI_PREFIX = "URN:UVCI:"


def _uvci_fragment(text: str, index: int) -> str | None:
    if text.startswith(_UVCI_PREFIX):
        text = text[len(_UVCI_PREFIX) :]
    fragments = _UVCI_SEPARATORS.split(text)
    if 0 <= index < len(fragments):
        return str(fragments[index])
    return None


def _compile_extract_from_uvci(op: str, operands: list[Any], where: str) -> Compiled:
    source, index = operands
    source_where = _child(where, 0)
    if isinstance(source, str):
        return _constant(_uvci_fragment(source, index))
    read = _compile(source, source_where)

    def extract(data: Any) -> str | None:
        value = read(data)
        if value is None:
            return None
        if not isinstance(value, str):
            raise EvaluationError(
                f"The operand of 'extractFromUVCI' at {source_where} must be a "
                f"string or null, but it is {_describe(value)}.",
                source_where,
            )
        return _uvci_fragment(value, index)

    return extract


_COMPILERS: dict[str, Callable[[str, list[Any], str], Compiled]] = {
    "if": _compile_if,
    "and": _compile_and,
    "!": _compile_not,
    "===": _compile_equality,
    "in": _compile_in,
    "+": _compile_plus,
    **dict.fromkeys(_INTEGER_COMPARISONS, _compile_integer_comparison),
    **dict.fromkeys(_DATE_COMPARISONS, _compile_date_comparison),
    "plusTime": _compile_plus_time,
    "dccDateOfBirth": _compile_date_of_birth,
    "reduce": _compile_reduce,
    "extractFromUVCI": _compile_extract_from_uvci,
}
