"""Errors raised while reading identity documents, names and division codes.

Messages name the field and the fault and never repeat the number or the
name they were given: these values are personal data and error messages end
up in logs and on screens.
"""

from healthcode.errors import HealthcodeError


class InvalidDocument(HealthcodeError):
    """An identity document's kind, country or number cannot be accepted."""

    code = "invalid_document"


class InvalidName(HealthcodeError):
    """A person's name is empty, too long or holds characters we refuse."""

    code = "invalid_name"


class UnknownDivision(HealthcodeError):
    """A GB/T 2260 division code is malformed or not in the code table."""

    code = "unknown_division"


class AlreadyRegistered(HealthcodeError):
    """A resident with this identity document is already registered."""

    code = "already_registered"


class UnknownResident(HealthcodeError):
    """No resident matches the identity document given."""

    code = "unknown_resident"
