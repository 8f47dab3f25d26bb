"""Spend per day, model, run and column with cache savings; ``[budget]`` limits kept across sessions sharing a
run log (the ledger), through real calls to the loopback fault server."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import pytest

from opencode_lab import BudgetExceededError, InvalidRequestError, Lab, LabError, Settings

PRICED = '[models.paid]\nprovider = "a"\nupstream = "x"\ninput_price = 10000.0\noutput_price = 10000.0\n'


def _toml(fault, tmp_path, budget: str = "") -> str:
    path = tmp_path / "lab.toml"
    path.write_text(
        f'[lab]\nmax_retries = 0\n[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x", "y"]\n{PRICED}{budget}'
    )
    return str(path)


def _lab(path: str, tmp_path) -> Lab:
    return Lab(Settings.load(path, env={"OC_CACHE_DIR": str(tmp_path / "cache")}))


@pytest.fixture
def lab(fault, tmp_path):
    lab = _lab(_toml(fault, tmp_path), tmp_path)
    yield lab
    lab.close()


def test_spend_per_model_counts_paid_saved_failed_and_hits(lab):
    first = lab.chat("q0", "paid")
    second = lab.chat("q1 a bit longer", "paid")
    lab.chat("q0", "paid")  # from the cache
    with pytest.raises(LabError):
        lab.chat("boom [[fault:server_error]]", "paid")
    lab.chat("unpriced", "a/y")
    by_model = lab.spend(by="model")
    paid = by_model.loc["paid"]
    assert (paid.calls, paid.failed, paid.cache_hits, paid.unpriced) == (4, 1, 1, 0)
    assert paid.paid_usd == pytest.approx(first.cost_usd + second.cost_usd) and first.cost_usd > 0
    assert paid.saved_usd == pytest.approx(first.cost_usd)
    free = by_model.loc["a/y"]
    assert math.isnan(free.paid_usd) and free.unpriced == 1  # unknown, never 0


def test_spend_per_day_adds_up_to_the_calls(lab):
    lab.chat("q0", "paid")
    lab.chat("q1", "paid")
    daily = lab.spend()
    assert daily.index.name == "day" and daily.calls.sum() == 2 and daily.paid_usd.sum() > 0


def test_spend_by_a_column_that_is_not_there_is_refused(lab):
    lab.chat("q0", "paid")
    with pytest.raises(InvalidRequestError, match=r"spend\(by='colour'\).*known: day"):
        lab.spend(by="colour")


def test_a_daily_limit_reached_by_another_process_refuses_the_next_call(fault, tmp_path):
    path = _toml(fault, tmp_path, "[budget]\nday_usd = 0.05\n")
    other = f"""
from opencode_lab import Lab, Settings
lab = Lab(Settings.load({path!r}, env={{"OC_CACHE_DIR": {str(tmp_path / "cache")!r}}}))
for i in range(40):
    try:
        lab.chat(f"spend {{i}}", "paid")
    except Exception as exc:
        print(type(exc).__name__)
        break
lab.close()
"""
    out = subprocess.run([sys.executable, "-c", other], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "BudgetExceededError"
    lab = _lab(path, tmp_path)
    try:
        with pytest.raises(BudgetExceededError, match=r"day's budget of \$0\.0500 is spent"):
            lab.chat("one more", "paid")
        assert lab.history().error_type.iloc[-1] == "budget_exceeded"  # recorded like any failure
        lab.chat("spend 0", "paid")  # a cached answer costs nothing: still allowed
        state = lab.budget().loc["day"]
        assert state.state == "exceeded" and state.spent_usd >= 0.05 and state.remaining_usd == 0
    finally:
        lab.close()


def test_a_warning_once_past_warn_at(fault, tmp_path, caplog):
    lab = _lab(_toml(fault, tmp_path, "[budget]\nmonth_usd = 1000.0\nwarn_at = 0.000001\n"), tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="opencode_lab"):
            for i in range(3):
                lab.chat(f"q{i}", "paid")
        warnings = [r for r in caplog.records if "month's budget spent" in r.getMessage()]
        assert len(warnings) == 1 and lab.budget().loc["month", "state"] == "warning"
    finally:
        lab.close()
