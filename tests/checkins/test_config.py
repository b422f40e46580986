"""Check-in and tracing settings: defaults, environment, refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthcode.checkins.config import CheckinSettings, get_checkin_settings
from healthcode.checkins.errors import TracingConfigurationError
from healthcode.checkins.tracing import TracingPolicy


@pytest.fixture(autouse=True)
def fresh_settings():
    get_checkin_settings.cache_clear()
    yield
    get_checkin_settings.cache_clear()


def test_the_defaults_are_the_regime_the_rules_assume():
    settings = CheckinSettings()

    assert settings.retention == timedelta(days=21)
    assert settings.trace_decay_minutes == 30
    assert settings.venue_stays["restaurant"] == 90
    assert settings.venue_stays["compound"] == 720


def test_the_policy_follows_the_environment(monkeypatch):
    monkeypatch.setenv("HEALTHCODE_TRACE_DECAY_MINUTES", "45")
    monkeypatch.setenv("HEALTHCODE_TRACE_SEAT_ROWS", "-1")
    monkeypatch.setenv("HEALTHCODE_TRACE_DAYS_BEFORE_ONSET", "4")
    monkeypatch.setenv("HEALTHCODE_VENUE_STAYS", '{"shop": 30, "gym": 75}')

    policy = TracingPolicy.from_settings()

    assert policy.decay == timedelta(minutes=45)
    assert policy.seat_rows is None
    assert policy.before_onset == timedelta(days=4)
    assert get_checkin_settings().venue_stays == {"shop": 30, "gym": 75}


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("HEALTHCODE_CHECKIN_RETENTION_DAYS", "0", "HEALTHCODE_CHECKIN_RETENTION_DAYS"),
        ("HEALTHCODE_TRACE_DECAY_MINUTES", "-5", "HEALTHCODE_TRACE_DECAY_MINUTES"),
        ("HEALTHCODE_TRACE_SEAT_ROWS", "-2", "HEALTHCODE_TRACE_SEAT_ROWS"),
        ("HEALTHCODE_VENUE_STAYS", '{"shop": 2000}', "HEALTHCODE_VENUE_STAYS"),
        ("HEALTHCODE_VENUE_STAYS", '{"shop": true}', "HEALTHCODE_VENUE_STAYS"),
        ("HEALTHCODE_VENUE_STAYS", "{}", "HEALTHCODE_VENUE_STAYS"),
    ],
)
def test_a_bad_setting_fails_naming_the_variable(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)

    with pytest.raises(TracingConfigurationError) as raised:
        get_checkin_settings()

    assert named in str(raised.value)
    assert raised.value.code == "tracing_configuration_error"


def test_a_negative_policy_is_refused():
    with pytest.raises(TracingConfigurationError, match="decay"):
        TracingPolicy(decay=timedelta(minutes=-1))
