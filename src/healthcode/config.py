"""Settings, read once from ``HEALTHCODE_*`` environment variables.

Bad values fail at start-up with a message that names the variable and the
offending value, rather than surfacing as a strange error deep in a job.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthcode.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///healthcode.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTHCODE_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # The zone in which days, the daily expiry and retention are counted, and
    # in which a feed's naive timestamps are read unless the feed says
    # otherwise.
    zone: str = "Asia/Shanghai"
    # How far in the future a record's timestamp may lie before it is taken
    # for a clock error at the sender rather than a fact.
    future_skew_seconds: int = 300
    # The rule set that colours residents; a path to a JSON file or the name
    # of a rule set shipped with the package.
    rule_set: str = "default"
    log_format: str = "console"

    @field_validator("zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("future_skew_seconds")
    @classmethod
    def _skew_sane(cls, value: int) -> int:
        if not 0 <= value <= 86_400:
            raise ValueError("must be between 0 and 86400 seconds")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format_known(cls, value: str) -> str:
        if value not in ("console", "json"):
            raise ValueError("must be 'console' or 'json'")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def future_skew(self) -> timedelta:
        return timedelta(seconds=self.future_skew_seconds)


@functools.cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"HEALTHCODE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"Bad configuration: {problems}.") from None
