import pytest

from healthcode.errors import HealthcodeError
from healthcode.identity import errors


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidDocument, "invalid_document"),
        (errors.InvalidName, "invalid_name"),
        (errors.UnknownDivision, "unknown_division"),
    ],
)
def test_identity_errors_carry_a_stable_code(error, code):
    raised = error("Something is wrong.")

    assert isinstance(raised, HealthcodeError)
    assert raised.code == code
