"""Errors of the status domain."""

from healthcode.errors import HealthcodeError


class StatusError(HealthcodeError):
    code = "status_error"


class UnknownResident(StatusError):
    """No resident matches the document given."""

    code = "unknown_resident"
