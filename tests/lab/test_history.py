"""Everything in the run log: chat, stream, %%chat and compare rows (`history`); each deployment's record (`uptime`)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from opencode_lab import InvalidRequestError, Lab, LabError, Settings
from opencode_lab.frontends.magics import load_ipython_extension, unload_ipython_extension
from opencode_lab.lab.history import since_epoch

SECRET = "sk-oc-history-test-0123456789"


@pytest.fixture
def lab(fault, tmp_path):
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f'[lab]\nmax_retries = 0\n[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x", "y"]\n'
        'api_key_env = "A_KEY"\n'
    )
    lab = Lab(Settings.load(toml, env={"OC_CACHE_DIR": str(tmp_path / "cache"), "A_KEY": SECRET}))
    yield lab
    lab.close()


def test_chat_and_stream_calls_are_rows_of_the_history(lab):
    lab.chat("first question", "a/x", temperature=0, max_tokens=9)
    "".join(lab.stream("second question", "a/y"))
    rows = lab.history()
    assert list(rows.via) == ["chat", "stream"] and list(rows.prompt) == ["first question", "second question"]
    assert rows.params[0] == {"temperature": 0.0, "max_tokens": 9}
    assert list(rows.response) == ["echo: first question", "echo: second question"]
    assert list(rows.served_by) == ["a/x", "a/y"] and rows.latency_s.notna().all()


def test_compare_rows_are_in_the_history_once(lab):
    lab.compare(["p0", "p1"], "a/x", progress=False)
    rows = lab.history()
    # in the order they were logged: two concurrent rows may finish either way round
    assert list(rows.via) == ["compare", "compare"] and sorted(rows.prompt) == ["p0", "p1"]


def test_a_failed_chat_is_a_row_with_its_error(lab):
    with pytest.raises(LabError):
        lab.chat("boom [[fault:server_error]]", "a/x")
    rows = lab.history()
    assert rows.error_type.tolist() == ["server_error"] and rows.prompt[0] == "boom [[fault:server_error]]"


def test_a_chat_cell_is_in_the_history(lab):
    ip = InteractiveShell.instance()
    load_ipython_extension(ip, lab=lab)
    try:
        with capture_output():
            ip.run_cell_magic("chat", "-m a/x -s 'Be brief.'", "asked from a cell")
    finally:
        unload_ipython_extension(ip)
    row = lab.history().iloc[-1]
    assert (row.prompt, row.system, row.via) == ("asked from a cell", "Be brief.", "stream")


def test_a_cached_answer_is_logged_again_as_its_own_call(lab):
    lab.chat("same", "a/x")
    lab.chat("same", "a/x")
    assert lab.history().cached.tolist() == [False, True]


def test_the_history_outlives_the_session(lab, tmp_path):
    lab.chat("remember me", "a/x")
    lab.close()
    again = Lab(Settings.load(tmp_path / "lab.toml", env={"OC_CACHE_DIR": str(tmp_path / "cache"), "A_KEY": SECRET}))
    try:
        assert again.history().prompt.tolist() == ["remember me"]
    finally:
        again.close()


def test_since_keeps_only_recent_rows(lab):
    lab.chat("now", "a/x")
    assert len(lab.history(since="1h")) == 1
    assert len(lab.history(since=timedelta(seconds=-60))) == 0  # a minute in the future


def test_no_secret_reaches_the_run_log(lab):
    lab.chat(f"my key is {SECRET}", "a/x", temperature=0.1)
    lab.flush()
    dump = "\n".join(sqlite3.connect(lab.settings.runlog).iterdump())
    assert SECRET not in dump and "my key is" in dump


def test_uptime_reports_availability_error_mix_and_latency_per_deployment(lab):
    for i in range(3):
        lab.chat(f"ok {i}", "a/x")
    with pytest.raises(LabError):
        lab.chat("down [[fault:server_error]]", "a/x")
    up = lab.uptime("1h")
    x = up.loc["a/x"]
    assert (x.attempts, x.ok, x.failed, x.availability) == (4, 3, 1, 0.75)
    assert x.availability_ci_low < 0.75 < x.availability_ci_high
    assert x.errors == "server_error 1" and x.latency_p50_s > 0


def test_uptime_counts_no_cache_hits(lab):
    lab.chat("same", "a/x")
    lab.chat("same", "a/x")
    assert lab.uptime().loc["a/x", "attempts"] == 1


def test_uptime_of_an_empty_window_is_an_empty_frame(lab):
    assert lab.uptime("1h").empty


@pytest.mark.parametrize("since", ["yesterday", "5 parsecs", [1]])
def test_a_window_that_is_not_a_span_is_refused(since):
    with pytest.raises(InvalidRequestError, match="'30m', '24h' or '7d'"):
        since_epoch(since)


def test_spans_count_back_from_now():
    assert since_epoch("90s", now=1000.0) == 910.0 and since_epoch("2h", now=10_000.0) == 2_800.0



@pytest.mark.slow
def test_rows_come_in_the_order_they_were_asked_not_answered(faults, make_lab):
    faults[0].configure(latency_s=0.5)
    toml = "".join(f'[providers.p{i}]\nbase_url = "{f.base_url}"\nmodels = ["m"]\n' for i, f in enumerate(faults))
    lab = make_lab(toml)

    async def both():
        return await asyncio.gather(lab.achat("asked first", "p0/m"), lab.achat("asked second", "p1/m"))

    lab.block_on(both())
    rows = lab.history()  # "asked second" answered first: it was saved first
    assert rows.prompt.tolist() == ["asked first", "asked second"] and rows.asked_at.is_monotonic_increasing


def test_the_retries_of_one_call_count_as_one_cluster_in_the_availability_interval():
    import pandas as pd
    from statsmodels.stats.proportion import proportion_confint

    from opencode_lab.lab.history import _uptime_row

    attempts = pd.DataFrame({
        "request_id": ["r1", "r2", "r3", "r4", "r4", "r4"], "status": ["ok"] * 3 + ["error"] * 3,
        "error_type": [None] * 3 + ["server_error"] * 3, "latency_s": [0.1] * 6, "timestamp": range(6),
    })  # fmt: skip
    _, _, _, availability, low, high, *_ = _uptime_row(attempts)
    independent = proportion_confint(3, 6, method="wilson")
    assert availability == 0.5
    assert low < independent[0] and high > independent[1]  # 4 calls, not 6 independent tries
    alone = _uptime_row(attempts.assign(request_id=[f"r{i}" for i in range(6)]))
    assert alone[4:6] == pytest.approx(independent)  # one attempt per call: the plain Wilson interval
