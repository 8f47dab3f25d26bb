"""The SLA report is one HTML file that opens offline: figures embedded, nothing fetched, every cell escaped."""

from __future__ import annotations

import base64
import re

import pytest

import opencode_lab as oc
from opencode_lab.core.objectives import Objective, Objectives
from opencode_lab.frontends.sla_report import sla_report
from opencode_lab.session.runlog import RunLog

NOW = 1_800_000_000.0


@pytest.fixture
def runlog(tmp_path):
    log = RunLog(tmp_path / "runs.sqlite")
    log.append_attempts(
        [
            {
                "run_id": "s",
                "request_id": f"q{i}",
                "timestamp": NOW - 60 * i,
                "model": "m",
                "served_by": "a/<b>",
                "provider": "a",
                "attempt": 1,
                "status": "error" if i < 4 else "ok",
                "error_type": "server_error" if i < 4 else None,
                "latency_s": 0.1,
                "cached": False,
            }
            for i in range(100)
        ]
    )
    yield log
    log.close()


def test_the_report_embeds_its_figures_and_fetches_nothing(runlog, tmp_path):
    path = tmp_path / "sla.html"
    page = sla_report(runlog, Objectives(Objective(availability=0.99)), path, "3d", now=NOW)
    assert path.read_text(encoding="utf-8") == page
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not re.search(r"(src|href)=['\"](?!data:)", page) and "<script" not in page and "@import" not in page


def test_the_report_shows_the_figures_and_escapes_names(runlog):
    page = sla_report(runlog, Objectives(Objective(availability=0.99)), None, "3d", now=NOW)
    assert "a/&lt;b&gt;" in page and "a/<b>" not in page
    assert "server_error 4" in page  # the ongoing incident: four failures since the last success
    # 4 of 100 attempts failed: 4x the allowed rate over 1d and 2h (above 3, a ticket), 6.7x over 1h (below 14.4)
    assert "<td>ticket</td>" in page


def test_an_empty_span_says_so(runlog):
    assert "No attempt in this span." in sla_report(runlog, Objectives(), None, "1h", now=NOW - 30 * 86400)


def test_the_module_function_reports_the_default_labs_run_log(tmp_path, monkeypatch):
    monkeypatch.setenv("OC_RUNLOG", str(tmp_path / "empty.sqlite"))
    assert "<h1>SLA report</h1>" in oc.sla_report(since="1h")
