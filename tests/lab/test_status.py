"""Catalog and health frames, active health checks, and Ctrl-C during a compare."""

from __future__ import annotations

import os
import signal
import threading
import time

import pandas as pd
import pytest


def test_models_lists_deployments_with_prices_tags_and_health(fault, make_lab) -> None:
    lab = make_lab(
        f'[providers.p]\nbase_url = "{fault.base_url}"\n'
        '[models.cheap]\nprovider = "p"\nupstream = "x"\ninput_price = 0.1\noutput_price = 0.2\n'
        'tags = ["fast"]\n'
    )
    frame = lab.models()
    assert {"p/x", "local/smollm2-135m", "local/gemma-3-270m"} <= set(frame.index)
    row = frame.loc["p/x"]
    assert (row.input_price_per_mtok, row.output_price_per_mtok, row.aliases, row.health) == (
        0.1,
        0.2,
        "cheap",
        "ready",
    )
    assert list(lab.models(tag="fast").index) == ["p/x"]
    assert list(lab.models("gemma").index) == ["local/gemma-3-270m"]
    assert "base" in frame.loc["local/gemma-3-270m", "tags"]


def test_models_shows_each_deployments_cloud_and_region(fault, make_lab) -> None:
    lab = make_lab(
        f'[providers.p]\nbase_url = "{fault.base_url}"\nregion = "us-east-1"\nmodels = ["x"]\n'
        f'[providers.q]\nbase_url = "{fault.base_url}"\nmodels = ["y"]\n'
        '[models.moved]\nprovider = "p"\nupstream = "z"\nregion = "eu-central-1"\n'
    )
    frame = lab.models()
    assert (frame.loc["p/x", "cloud"], frame.loc["p/x", "region"]) == ("openai", "us-east-1")  # the provider's
    assert frame.loc["p/z", "region"] == "eu-central-1"  # the deployment's own wins
    assert pd.isna(frame.loc["q/y", "region"])  # nobody said: unknown, not a guess
    assert (frame.loc["local/smollm2-135m", "cloud"], frame.loc["local/smollm2-135m", "region"]) == (
        "local",
        "in-process",
    )


def test_health_shows_a_failing_deployment(fault, make_lab) -> None:
    lab = make_lab(
        f'[providers.p]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n[lab]\nmax_retries = 0\n[cache]\nmode = "off"\n'
    )
    lab.compare(["ok", "bad [[fault:server_error]]"], "p/x", progress=False)
    health = lab.health().loc["p/x"]
    assert health.calls == 2 and health.failures == 1
    assert health.success_rate == 0.5
    assert health.last_error.startswith("server_error")


def test_health_check_probes_every_provider(fault, make_lab) -> None:
    lab = make_lab(
        f'[providers.up]\nbase_url = "{fault.base_url}"\n'
        '[providers.down]\nbase_url = "http://127.0.0.1:9"\n[lab]\ntimeout_s = 2\n'
    )
    frame = lab.health_check()
    assert bool(frame.loc["up", "ok"]) and frame.loc["up", "models"] == 1
    assert not bool(frame.loc["down", "ok"]) and frame.loc["down", "error"].startswith("connection")
    assert bool(frame.loc["local", "ok"])


@pytest.mark.slow
def test_ctrl_c_returns_the_rows_finished_so_far(fault, make_lab, ctrl_c) -> None:
    fault.configure(latency_s=0.05)
    lab = make_lab(f'[providers.p]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n[cache]\nmode = "off"\n')

    def interrupt_after_two_rows() -> None:  # one at a time: a third request is sent after two rows finished
        while fault.count() < 3:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_after_two_rows, daemon=True)
    interrupter.start()
    frame = lab.compare([f"q{i}" for i in range(200)], "p/x", progress=False, concurrency=1)
    interrupter.join()
    finished = frame.error_type.isna()
    assert len(frame) == 200
    assert 0 < finished.sum() < 200
    assert set(frame.loc[~finished, "error_type"]) == {"interrupted"}
    assert list(frame.prompt) == [f"q{i}" for i in range(200)]
    assert isinstance(frame, pd.DataFrame)


def test_models_shows_and_finds_aliases(fault, make_lab) -> None:
    lab = make_lab(f'[providers.p]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n[aliases]\necho = "p/x"\n')
    assert list(lab.models("echo").index) == ["p/x"]
    assert lab.models().loc["p/x", "aliases"] == "echo"


def test_models_reads_like_a_health_board(fault, make_lab) -> None:
    lab = make_lab(
        f'[providers.p]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n'
        "[lab]\nmax_retries = 0\nbreaker_failures = 2\n[cache]\nmode = \"off\"\n"
    )
    assert lab.models().loc["p/x", "health"] == "ready"
    lab.chat("fine", "p/x")
    assert lab.models().loc["p/x", "health"] == "healthy"
    for _ in range(2):
        lab.compare("bad [[fault:server_error]]", "p/x", progress=False)
    assert lab.models().loc["p/x", "health"].startswith("circuit open, next try in ")


def test_models_shows_whole_context_lengths_and_one_missing_value_style(fault, make_lab) -> None:
    lab = make_lab(f'[providers.p]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n')
    frame = lab.models()
    assert str(frame.loc["local/smollm2-135m", "context_length"]) == "2048"
    assert frame.loc["p/x", ["context_length", "input_price_per_mtok"]].isna().all()
    assert "None" not in frame.to_string() and "NaN" not in frame.to_string()
