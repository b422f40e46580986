"""Errors raised while checking, compiling and running rules.

CertLogic errors come in two kinds. An :class:`InvalidExpression` is found
before any data is seen: the rule itself is malformed, so it can never hold.
An :class:`EvaluationError` is found while running a valid expression on one
resident's data: the rule counts as not satisfied for that resident and the
error is reported. Messages name the place in the expression as a JSON
pointer (``/and/1/var``) and describe values by their type only, never by
their content, because data values may be personal.
"""

from collections.abc import Sequence

from healthcode.errors import HealthcodeError


class CertLogicError(HealthcodeError):
    """A CertLogic expression is malformed or failed on the data it was given."""

    code = "certlogic_error"


class InvalidExpression(CertLogicError):
    """An expression breaks the CertLogic grammar; found before evaluation.

    ``problems`` holds every ``(path, problem)`` pair found, in document
    order, so that a rule editor can point at each of them.
    """

    code = "certlogic_invalid"

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)


class EvaluationError(CertLogicError):
    """A valid expression failed on its data: a wrong type, an impossible date.

    ``path`` is the JSON pointer of the operation or operand at fault, or the
    empty string when the error did not arise inside an expression.
    """

    code = "certlogic_evaluation"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class InvalidRuleSet(HealthcodeError):
    """A rule set document is malformed or one of its rules fails its own tests."""

    code = "invalid_rule_set"
