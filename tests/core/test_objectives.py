"""``[slo]`` objectives, ``[budget]`` limits and the telemetry switch: parsed strictly, like every table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opencode_lab import ConfigError, Settings
from opencode_lab.core.objectives import Objective, period_end, period_start


def load(tmp_path, toml: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "opencode_lab.toml"
    path.write_text(toml)
    return Settings.load(path, env=env or {})


def test_nothing_is_promised_or_limited_by_default():
    settings = Settings.load(None, env={})
    assert settings.slo.for_deployment("a/x", "a", "a/x") == Objective()
    assert not settings.budget and settings.telemetry == "off"


def test_the_most_specific_scope_wins_key_by_key(tmp_path):
    settings = load(
        tmp_path,
        """
[slo]
availability = 0.99
latency_p95_s = 2.0
[slo.a]
availability = 0.995
[slo."a/x"]
latency_p95_s = 0.8
""",
    )
    assert settings.slo.for_deployment("a/x", "a", "a/x") == Objective(0.995, 0.8)
    assert settings.slo.for_deployment("a/y", "a", "a/y") == Objective(0.995, 2.0)
    assert settings.slo.for_deployment("b/z", "b", "fast") == Objective(0.99, 2.0)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[slo]\navailabilty = 0.99", "unknown key 'availabilty'; did you mean 'availability'"),
        ("[slo.a]\nlatency_p99_s = 1", r"\[slo.a\] has unknown key 'latency_p99_s'"),
        ("[slo]\navailability = 1.0", "must be below 1"),
        ("[slo]\navailability = 99.9", "at most 1"),
        ("[slo]\nlatency_p95_s = 0", "greater than 0"),
        ("[budget]\ndaily_usd = 5", "unknown key 'daily_usd'; did you mean 'day_usd'"),
        ("[budget]\nmonth_usd = -1", "greater than 0"),
        ("[budget]\nweek_usd = '5'", "without quotes"),
        ("[budget]\nwarn_at = 1.5", "at most 1"),
    ],
)
def test_a_bad_objective_or_limit_names_itself(tmp_path, toml, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, toml)


def test_budget_limits_per_period(tmp_path):
    budget = load(tmp_path, "[budget]\nday_usd = 5\nmonth_usd = 100.5\nwarn_at = 0.5").budget
    assert dict(budget.limits_usd) == {"day": 5.0, "month": 100.5} and budget.warn_at == 0.5


def test_telemetry_is_switched_on_by_variable_or_toml(tmp_path):
    assert Settings.load(None, env={"OC_TELEMETRY": "otel"}).telemetry == "otel"
    assert load(tmp_path, '[lab]\ntelemetry = "otel"').telemetry == "otel"
    with pytest.raises(ConfigError, match="OC_TELEMETRY must be one of off, otel"):
        Settings.load(None, env={"OC_TELEMETRY": "prometheus"})


def test_calendar_periods_start_at_utc_midnight_monday_and_the_first():
    moment = datetime(2026, 12, 2, 10, 30, tzinfo=UTC).timestamp()  # a Wednesday
    assert period_start("day", moment) == datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    assert period_start("week", moment) == datetime(2026, 11, 30, tzinfo=UTC).timestamp()
    assert period_start("month", moment) == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert period_end("month", moment) == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert period_end("week", moment) == datetime(2026, 12, 7, tzinfo=UTC).timestamp()
