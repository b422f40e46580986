"""Errors the demo job raises before it starts its work."""

from healthcode.errors import HealthcodeError


class DemoError(HealthcodeError):
    """The demo cannot run with what it was given."""

    code = "demo_error"


class DatabaseNotEmpty(DemoError):
    """The database the demo was pointed at already holds residents."""

    code = "demo_database_not_empty"
