"""The dashboard's data and its command lines, without a browser (the browser test is test_dashboard_browser.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from opencode_lab import Lab, LabError, Settings
from opencode_lab.frontends.dashboard import PAGES, Dashboard
from tests.conftest import free_port


@pytest.fixture
def lab(fault, tmp_path):
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f'[lab]\nmax_retries = 0\n[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x", "y"]\n'
        '[models.paid]\nprovider = "a"\nupstream = "x"\ninput_price = 100.0\noutput_price = 300.0\n'
        "[slo]\navailability = 0.99\n[budget]\nday_usd = 5.0\n"
    )
    lab = Lab(Settings.load(toml, env={"OC_CACHE_DIR": str(tmp_path / "cache")}))
    yield lab
    lab.close()


def _totals(board: Dashboard) -> dict[str, str]:
    return dict(
        (label, value)
        for label, value in pd.Series(board.totals.object).str.extractall(r'data-total="([^"]+)"[^>]*>([^<]+)<').values
    )


def test_the_totals_count_calls_failures_hits_and_cost(lab):
    paid = [lab.chat(f"q{i}", "paid") for i in range(3)]
    lab.chat("q0", "paid")
    with pytest.raises(LabError):
        lab.chat("down [[fault:server_error]]", "a/y")
    board = Dashboard(lab)
    cost = sum(r.cost_usd for r in paid)
    assert _totals(board) == {"calls": "5", "failed": "1", "cache hits": "1", "cost": f"${cost:.4f}"}
    assert len(board.view().objects[-1]) == len(PAGES)


def test_polling_redraws_only_when_the_run_log_changed(lab):
    lab.chat("first", "a/x")
    board = Dashboard(lab)
    drawn = board._drawn
    board.poll()
    assert board._drawn == drawn  # nothing new: no redraw
    lab.chat("second", "a/x")
    lab.flush()
    board.poll()
    assert board._drawn > drawn and _totals(board)["calls"] == "2"


def test_the_calls_behind_a_point(lab):
    lab.chat("behind the point", "a/x")
    with pytest.raises(LabError):
        lab.chat("down [[fault:server_error]]", "a/y")
    board = Dashboard(lab)
    board.point_group.value = "a"
    shown = board.tables["calls"].object
    assert shown.prompt.tolist() == ["behind the point"]
    board.point_group.value = "(no answer)"  # the failed call reached no deployment
    assert board.tables["calls"].object.prompt.tolist() == ["down [[fault:server_error]]"]


def test_calls_and_cost_can_be_split_by_region(lab):
    lab.chat("q", "a/x")
    board = Dashboard(lab)
    assert board.by.options == ["provider", "model", "served_by", "run", "region"]
    board.by.value = "region"
    assert board.point_group.options == ["(none)"]  # a/x declares no region


def test_health_and_budget_pages_hold_the_sla_and_the_budget(lab):
    lab.chat("q", "paid")
    board = Dashboard(lab)
    assert board.tables["sla"].object.loc["a/x", "availability_objective"] == 0.99
    assert board.tables["budget"].object.loc["day", "limit_usd"] == 5.0


@pytest.mark.slow
def test_the_sla_command_prints_the_frame_and_writes_the_report(lab, tmp_path):
    lab.chat("q", "paid")
    lab.flush()
    out = subprocess.run(
        [sys.executable, "-m", "opencode_lab", "--config", str(lab.settings.source), "sla", "--since", "1h",
         "--html", str(tmp_path / "sla.html")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OC_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "a/x" in out.stdout and (tmp_path / "sla.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.slow
def test_serving_beyond_loopback_prints_a_warning(lab, tmp_path):
    command = [sys.executable, "-m", "opencode_lab", "--config", str(lab.settings.source), "dashboard",
               "--host", "0.0.0.0", "--port", str(free_port())]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OC_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    try:
        assert server.stderr is not None and "warning: serving on 0.0.0.0" in server.stderr.readline()
    finally:
        server.terminate()
        server.wait(timeout=30)
