"""Errors of sign-in, sessions, API keys and officials' accounts.

Messages never repeat a phone number, a code, a password, a token or a key:
they say what was wrong and what to do, so that they can be shown and
logged as they are. Refusals of credentials say as little as they can, so
that nobody learns which part of a guess was right.
"""

from __future__ import annotations

from healthcode.errors import HealthcodeError


class AccountError(HealthcodeError):
    """The root of the accounts domain's errors."""

    code = "account_error"


class InvalidPhone(AccountError):
    """A phone number is not one a sign-in code can be sent to."""

    code = "invalid_phone"


class SignInCodeWrong(AccountError):
    """The sign-in code given is wrong, expired, or was never sent."""

    code = "sign_in_code_wrong"


class SignInLocked(AccountError):
    """Too many wrong codes were tried for a phone; it is locked for a while."""

    code = "sign_in_locked"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(AccountError):
    """Too many requests of one kind came from one caller in a short time."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotSignedIn(AccountError):
    """The request carries no session, or one that has ended."""

    code = "not_signed_in"


class InvalidApiKey(AccountError):
    """The request carries no API key, an unknown one, or a revoked one."""

    code = "invalid_api_key"


class OutOfScope(AccountError):
    """The caller's key or role does not allow this action or this object."""

    code = "out_of_scope"


class InvalidCredentials(AccountError):
    """An official's user name, password or one-time code is wrong."""

    code = "invalid_credentials"


class WeakPassword(AccountError):
    """A new official's password is too short or too plain."""

    code = "weak_password"


class OfficialExists(AccountError):
    """An official with this user name already exists."""

    code = "official_exists"


class UnknownOfficial(AccountError):
    """No official has this user name or id."""

    code = "unknown_official"


class UnknownApiKey(AccountError):
    """No API key has this id."""

    code = "unknown_api_key"


class InvalidScope(AccountError):
    """An API key was asked for with a scope that does not fit its kind."""

    code = "invalid_scope"


class StoreUnavailable(HealthcodeError):
    """The shared store (Redis) cannot be reached or refused a command."""

    code = "store_unavailable"
