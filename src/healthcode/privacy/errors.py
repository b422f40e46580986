"""Errors of retention, the sunset, audit seals and data keys."""

from __future__ import annotations

from healthcode.errors import HealthcodeError

__all__ = [
    "AuditSealInvalid",
    "DataKeyError",
    "PrivacyError",
    "SunsetNotConfirmed",
]


class PrivacyError(HealthcodeError):
    """The root of the privacy package's errors."""

    code = "privacy_error"


class DataKeyError(PrivacyError):
    """A key in the data key directory is missing, unreadable or unsafe."""

    code = "data_key_error"


class AuditSealInvalid(PrivacyError):
    """A signed audit head does not verify: forged, altered, or not signed by us."""

    code = "audit_seal_invalid"


class SunsetNotConfirmed(PrivacyError):
    """Deleting all personal data was asked for without the confirmation."""

    code = "sunset_not_confirmed"
