"""Every check-in error carries a stable code and sits under the root error."""

import pytest

from healthcode.checkins import errors
from healthcode.codes.errors import InvalidCode
from healthcode.errors import ConfigurationError, HealthcodeError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.CheckinError, "checkin_error"),
        (errors.InvalidVenue, "invalid_venue"),
        (errors.UnknownVenue, "unknown_venue"),
        (errors.InvalidCheckin, "invalid_checkin"),
        (errors.InvalidVenueCode, "invalid_venue_code"),
        (errors.ExpiredVenueCode, "expired_venue_code"),
        (errors.TracingConfigurationError, "tracing_configuration_error"),
    ],
)
def test_check_in_errors_carry_a_stable_code(error, code):
    raised = error("Something is wrong.")

    assert isinstance(raised, errors.CheckinError)
    assert isinstance(raised, HealthcodeError)
    assert raised.code == code


def test_a_bad_poster_is_a_bad_code_and_says_nothing_more():
    raised = errors.InvalidVenueCode()

    assert isinstance(raised, InvalidCode)
    assert str(raised) == "The venue code is not a valid venue code."


def test_a_bad_tracing_setting_is_a_configuration_error():
    assert issubclass(errors.TracingConfigurationError, ConfigurationError)
