"""Errors of venues, check-ins, venue codes and tracing.

Messages name the venue, the field or the setting that is wrong and never a
resident: a check-in ties a person to a place and a time, which is exactly
what must not end up in a log line or on somebody else's screen.
"""

from __future__ import annotations

from healthcode.codes.errors import InvalidCode
from healthcode.errors import ConfigurationError, HealthcodeError


class CheckinError(HealthcodeError):
    """The root of every error raised by :mod:`healthcode.checkins`."""

    code = "checkin_error"


class InvalidVenue(CheckinError):
    """A venue's name, address, region or type cannot be accepted."""

    code = "invalid_venue"


class UnknownVenue(CheckinError):
    """No venue has the id given."""

    code = "unknown_venue"


class InvalidCheckin(CheckinError):
    """One check-in of an upload cannot be accepted; the batch goes on."""

    code = "invalid_checkin"


class InvalidVenueCode(CheckinError, InvalidCode):
    """A venue code is forged, damaged, expired or not ours.

    It is also an :class:`~healthcode.codes.errors.InvalidCode`, so a door
    that refuses every bad code with one ``except`` refuses posters too. Like
    resident codes, a bad signature and broken bytes say nothing more.
    """

    code = "invalid_venue_code"

    def __init__(
        self, message: str = "The venue code is not a valid venue code."
    ) -> None:
        super().__init__(message)


class ExpiredVenueCode(InvalidVenueCode):
    """The poster was genuine but its validity ended; print a new one."""

    code = "expired_venue_code"


class TracingConfigurationError(CheckinError, ConfigurationError):
    """A tracing or check-in setting has a value that cannot work."""

    code = "tracing_configuration_error"
