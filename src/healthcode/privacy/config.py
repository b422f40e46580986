"""Retention and key settings, read once from ``HEALTHCODE_*`` variables.

Each retention period is one region's policy, so each is a setting; a bad
value fails at start-up with a message that names the variable and the
value. The check-in period is the check-in package's own setting
(``HEALTHCODE_CHECKIN_RETENTION_DAYS``) and the life of a sign-in code the
service's (``HEALTHCODE_SIGN_IN_CODE_MINUTES``); they are read from there.
"""

from __future__ import annotations

import functools
import re
from datetime import time, timedelta

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthcode.errors import ConfigurationError

__all__ = ["PrivacySettings", "get_privacy_settings"]

_CLOCK_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class PrivacySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTHCODE_", extra="ignore")

    # Keys that never enter the database: the audit seal key and, once
    # personal fields are encrypted, the data keys. Kept apart from the
    # database so that a copy of the database alone reveals no person.
    data_key_dir: str = "data-keys"
    # Declarations are a resident's word about a day; the rules read the
    # last day of them, and tracing the last two weeks.
    declaration_retention_days: int = 14
    # The audit log is kept long enough for appeals and reviews of officials'
    # conduct, then purged behind a signed seal.
    audit_retention_days: int = 730
    # Authoritative records, counted from the moment each stops mattering:
    # a test from its sample, a dose from its giving, a case from its release
    # and an order from its end (neither goes while still active), a journey
    # from its arrival. Each must outlast the longest lookback of the active
    # rule set and of tracing, plus a margin; RetentionPolicy.configured
    # refuses a shorter one.
    lab_result_retention_days: int = 90
    vaccination_retention_days: int = 1095
    case_retention_days: int = 180
    quarantine_order_retention_days: int = 90
    journey_retention_days: int = 60
    # How old the current data key may grow before the server's rotation
    # job makes a new one and re-seals every value with it; 0 leaves
    # rotation to `healthcode privacy rotate-keys`.
    data_key_rotation_days: int = 180
    # The local time at which the server's daily job purges and seals.
    daily_job_at: str = "03:30"
    daily_job: bool = True

    @field_validator("declaration_retention_days")
    @classmethod
    def _declarations_sane(cls, value: int) -> int:
        if not 1 <= value <= 366:
            raise ValueError("must be between 1 and 366 days")
        return value

    @field_validator("audit_retention_days")
    @classmethod
    def _audit_sane(cls, value: int) -> int:
        if not 30 <= value <= 3660:
            raise ValueError("must be between 30 and 3660 days")
        return value

    @field_validator(
        "lab_result_retention_days",
        "vaccination_retention_days",
        "case_retention_days",
        "quarantine_order_retention_days",
        "journey_retention_days",
    )
    @classmethod
    def _records_sane(cls, value: int) -> int:
        if not 1 <= value <= 3660:
            raise ValueError("must be between 1 and 3660 days")
        return value

    @field_validator("data_key_rotation_days")
    @classmethod
    def _rotation_sane(cls, value: int) -> int:
        if value != 0 and not 7 <= value <= 3660:
            raise ValueError("must be 0 (no rotation by the server) or 7 to 3660 days")
        return value

    @field_validator("daily_job_at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _CLOCK_TIME.fullmatch(value):
            raise ValueError("must be a local time written HH:MM, such as 03:30")
        return value

    @field_validator("data_key_dir")
    @classmethod
    def _directory_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a directory")
        return value

    @property
    def declaration_retention(self) -> timedelta:
        return timedelta(days=self.declaration_retention_days)

    @property
    def audit_retention(self) -> timedelta:
        return timedelta(days=self.audit_retention_days)

    @property
    def record_retention(self) -> dict[str, timedelta]:
        """The period of each kind of authoritative record, by its purge kind."""
        return {
            "lab-results": timedelta(days=self.lab_result_retention_days),
            "vaccinations": timedelta(days=self.vaccination_retention_days),
            "cases": timedelta(days=self.case_retention_days),
            "quarantine-orders": timedelta(days=self.quarantine_order_retention_days),
            "journeys": timedelta(days=self.journey_retention_days),
        }

    @property
    def daily_time(self) -> time:
        hours, minutes = self.daily_job_at.split(":")
        return time(int(hours), int(minutes))


@functools.cache
def get_privacy_settings() -> PrivacySettings:
    """The settings from the environment, checked once."""
    try:
        return PrivacySettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"HEALTHCODE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"Bad configuration: {problems}.") from None
