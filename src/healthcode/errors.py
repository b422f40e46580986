"""The root of every error the domain raises.

Each domain package keeps its own small ``errors`` module with subclasses of
:class:`HealthcodeError`. Every error carries a stable ``code`` so that the
command line and, later, the HTTP layer can map it without parsing messages.
Messages are whole sentences and never contain an identity number, a phone
number or a name.
"""


class HealthcodeError(Exception):
    """Something the caller or the data got wrong, told in one sentence."""

    code = "healthcode_error"


class ConfigurationError(HealthcodeError):
    """A setting is missing or has a value that cannot work."""

    code = "configuration_error"


class DatabaseUnavailable(HealthcodeError):
    """The database does not answer: stopped, restarting, or out of reach.

    The caller keeps what it sent and sends it again after ``retry_after``
    seconds. A transaction that did not commit left nothing; one whose commit
    was under way when the database went may have been stored, which is why
    a device's uploads carry idempotency keys and a repeat adds nothing.
    """

    code = "database_unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
