"""Check-in and tracing settings, read once from ``HEALTHCODE_*`` variables.

Every number here is one region's policy rather than a fact of nature, so
each can be changed without a release. A bad value fails at start-up with a
message that names the variable and the value, like the core settings.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthcode.checkins.errors import TracingConfigurationError

#: The longest a single visit may last, from check-in to its (possibly
#: estimated) end. Tracing relies on it to look back a bounded distance for
#: visits that were still going on when a case arrived; a later scan opens
#: a new visit rather than stretching one past it.
MAX_VISIT = timedelta(hours=24)

#: Venue types and the stay, in minutes, assumed for a visit with no
#: check-out. A compound is somebody's home for the night.
DEFAULT_VENUE_STAYS: MappingProxyType[str, int] = MappingProxyType(
    {
        "shop": 60,
        "restaurant": 90,
        "office": 480,
        "hospital": 120,
        "station": 60,
        "park": 120,
        "compound": 720,
    }
)


class CheckinSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTHCODE_", extra="ignore")

    # Check-ins are purged once they are older than this many days, counted
    # in the region's zone; tracing never reads older ones even before the
    # purge has run.
    checkin_retention_days: int = 21
    # How long a place stays infectious after a case left it.
    trace_decay_minutes: int = 30
    # The infectious window opens this many days before symptom onset, or,
    # for a case without onset, before the first positive sample.
    trace_days_before_onset: float = 2.0
    trace_days_before_sample: float = 2.0
    # Passengers whose seat rows are at most this far from the case's count,
    # where both seats are known; -1 counts the whole carriage or cabin.
    trace_seat_rows: int = 3
    # A JSON object of venue type to default stay in minutes.
    venue_stays: dict[str, int] = dict(DEFAULT_VENUE_STAYS)

    @field_validator("checkin_retention_days")
    @classmethod
    def _retention_sane(cls, value: int) -> int:
        if not 1 <= value <= 366:
            raise ValueError("must be between 1 and 366 days")
        return value

    @field_validator("trace_decay_minutes")
    @classmethod
    def _decay_sane(cls, value: int) -> int:
        if not 0 <= value <= 24 * 60:
            raise ValueError("must be between 0 and 1440 minutes")
        return value

    @field_validator("trace_days_before_onset", "trace_days_before_sample")
    @classmethod
    def _lead_sane(cls, value: float) -> float:
        if not 0 <= value <= 30:
            raise ValueError("must be between 0 and 30 days")
        return value

    @field_validator("trace_seat_rows")
    @classmethod
    def _rows_sane(cls, value: int) -> int:
        if not -1 <= value <= 100:
            raise ValueError("must be -1 (whole carriage) or between 0 and 100")
        return value

    # Before pydantic's own coercion, which would read ``true`` as one minute.
    @field_validator("venue_stays", mode="before")
    @classmethod
    def _stays_sane(cls, value: dict[str, Any]) -> dict[str, int]:
        return check_venue_stays(value)

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.checkin_retention_days)


def check_venue_stays(stays: Any) -> dict[str, int]:
    """Return ``stays`` if every type has a stay of one minute up to a day."""
    if not isinstance(stays, dict) or not stays:
        raise ValueError("must be a non-empty JSON object of type to minutes")
    limit = int(MAX_VISIT.total_seconds() // 60)
    for name, minutes in stays.items():
        if not isinstance(name, str) or not 1 <= len(name) <= 16:
            raise ValueError(f"the venue type {name!r} is not 1 to 16 characters")
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise ValueError(f"the stay of {name!r} is not a whole number of minutes")
        if not 1 <= minutes <= limit:
            raise ValueError(
                f"the stay of {name!r} is {minutes} minutes; it must be 1 to {limit}"
            )
    return dict(stays)


@functools.cache
def get_checkin_settings() -> CheckinSettings:
    try:
        return CheckinSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"HEALTHCODE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise TracingConfigurationError(f"Bad configuration: {problems}.") from None
