"""The opencode-lab command line, run as a user would (a subprocess of the installed console script)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opencode_lab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def config(fault, tmp_path: Path) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(f'[providers.f]\nbase_url = "{fault.base_url}"\nmodels = ["x", "y"]\n')
    return path


@pytest.mark.slow
def test_chat_streams_the_answer_to_stdout(config: Path) -> None:
    out = cli("--config", str(config), "chat", "-m", "f/x", "hello there")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "echo: hello there"
    assert "f/x" in out.stderr


@pytest.mark.slow
def test_models_lists_the_catalog(config: Path) -> None:
    out = cli("--config", str(config), "models", "f/")
    assert out.returncode == 0
    assert "f/x" in out.stdout and "f/y" in out.stdout
    assert "local/" not in out.stdout


@pytest.mark.slow
def test_compare_writes_results_and_a_plot_and_stats_reads_them(config: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.csv"
    pd.DataFrame({"prompt": ["a", "b"], "expected": ["1", "2"]}).to_csv(prompts, index=False)
    results, figure = tmp_path / "results.csv", tmp_path / "fig.png"
    out = cli(
        "--config",
        str(config),
        "compare",
        str(prompts),
        "-m",
        "f/x",
        "-m",
        "f/y",
        "--out",
        str(results),
        "--plot",
        str(figure),
        "--run",
        "cli-run",
    )
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(results)
    assert len(frame) == 4 and list(frame.expected) == [1, 1, 2, 2]
    assert figure.stat().st_size > 10_000
    stats = cli("--config", str(config), "stats", str(results))
    assert stats.returncode == 0 and "f/x" in stats.stdout and "f/y" in stats.stdout
    by_run = cli("--config", str(config), "stats", "cli-run")
    assert by_run.returncode == 0 and "f/y" in by_run.stdout


@pytest.mark.slow
def test_an_unknown_model_is_a_one_line_error(config: Path) -> None:
    out = cli("--config", str(config), "chat", "-m", "f/z", "hi")
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: ModelNotFoundError: unknown model 'f/z'; did you mean")
    assert "f/x" in line and "f/y" in line


@pytest.mark.slow
def test_a_dead_server_is_one_line_naming_the_cause_and_the_url(tmp_path: Path) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    config = tmp_path / "dead.toml"
    config.write_text(f'[lab]\nmax_retries = 0\n[providers.dead]\nbase_url = "{url}"\nmodels = ["m"]\n')
    out = cli("--config", str(config), "chat", "-m", "dead/m", "hi")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"error: ProviderConnectionError: connection refused at {url}"]


def test_a_broken_config_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[lab\n")
    out = cli("--config", str(bad), "models")
    assert out.returncode == 2 and "bad.toml" in out.stderr


@pytest.mark.llama
def test_demo_answers_with_both_local_models_offline(tmp_path: Path) -> None:
    out = cli("demo", "--plot", str(tmp_path / "demo.png"), cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert "local/smollm2-135m" in out.stdout and "local/gemma-3-270m" in out.stdout
    assert "Tokyo" in out.stdout
    assert "accuracy (the answer contains the expected text" in out.stdout and "✓ " in out.stdout
    assert (tmp_path / "demo.png").stat().st_size > 10_000


@pytest.mark.llama
def test_chat_with_a_bundled_model_answers_sensibly_at_its_default_sampling() -> None:
    out = cli("chat", "-m", "local/smollm2-135m", "What is the capital of France? Answer in one word.", "--no-cache",
              "--seed", "3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout and " · seed 3 · " in out.stderr


@pytest.mark.llama
def test_chat_without_a_seed_draws_a_new_sample_each_time_and_names_the_seed_that_replays_it() -> None:
    ask = ("chat", "-m", "local/smollm2-135m", "Write a line about the sea.", "--max-tokens", "16", "--no-cache")
    first, second = cli(*ask), cli(*ask)
    seeds = [re.search(r" · seed (\d+) · ", out.stderr) for out in (first, second)]
    assert seeds[0] and seeds[1] and seeds[0].group(1) != seeds[1].group(1), (first.stderr, second.stderr)
    assert cli(*ask, "--seed", seeds[0].group(1)).stdout == first.stdout


@pytest.mark.slow
def test_every_request_parameter_is_an_option_that_reaches_the_server(config: Path, fault) -> None:
    out = cli("--config", str(config), "chat", "-m", "f/x", "-t", "0.5", "--max-tokens", "9", "--seed", "4",
              "--top-p", "0.5", "--stop", "END", "--stop", "STOP", "--no-cache", "q")
    assert out.returncode == 0, out.stderr
    (entry,) = fault.log
    assert entry["sampling"] == {"temperature": 0.5, "max_tokens": 9, "seed": 4, "top_p": 0.5, "stop": ["END", "STOP"]}


@pytest.mark.slow
def test_compare_scores_against_the_expected_column_and_prints_a_compact_table(config: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.csv"
    pd.DataFrame({"prompt": ["alpha", "beta"], "expected": ["alpha", "gamma"]}).to_csv(prompts, index=False)
    out = cli("--config", str(config), "compare", str(prompts), "-m", "f/x", "--scorer", "contains", "--scorer",
              "exact", "--out", str(tmp_path / "r.csv"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0].split()
    assert header[:4] == ["model", "score_contains", "score_exact", "failed"] and len(header) <= 13
    assert "0.500 [" in out.stdout and "e-17" not in out.stdout and "compact view of" in out.stdout
    assert pd.read_csv(tmp_path / "r.csv").score_contains.tolist() == [1.0, 0.0]
    missing = cli("--config", str(config), "compare", str(prompts), "-m", "f/x", "--scorer", "regex",
                  "--reference", "pattern")  # fmt: skip
    assert missing.returncode == 1 and "--scorer regex reads the column 'pattern'" in missing.stderr


@pytest.mark.slow
def test_diff_fails_a_ci_job_only_when_the_new_run_is_detectably_worse(config: Path, tmp_path: Path) -> None:
    base, new = tmp_path / "base.csv", tmp_path / "new.csv"
    rows = {"prompt": [f"q{i}" for i in range(12)], "model": "f/x", "error_type": None, "prompt_id": range(12),
            "sample": 0, "response": [f"echo: q{i}" for i in range(12)], "expected": [f"q{i}" for i in range(12)]}
    pd.DataFrame(rows).to_csv(base, index=False)
    pd.DataFrame({**rows, "response": ["I do not know"] * 10 + ["echo: q10", "echo: q11"]}).to_csv(new, index=False)
    worse = cli("--config", str(config), "diff", str(base), str(new), "--scorer", "contains", "--fail-on-regression")
    assert worse.returncode == 1, worse.stderr
    assert "worse by 83.3 points" in worse.stdout and "regressions (10):" in worse.stdout
    same = cli("--config", str(config), "diff", str(base), str(base), "--scorer", "contains", "--fail-on-regression")
    assert same.returncode == 0 and "no detectable difference" in same.stdout
    informative = cli("--config", str(config), "diff", str(base), str(new), "--scorer", "contains")
    assert informative.returncode == 0


def test_reasoning_controls_and_provider_options_reach_the_server(config: Path, fault) -> None:
    out = cli("--config", str(config), "chat", "-m", "f/x", "--reasoning-effort", "high", "-o", "top_k=40",
              "-o", 'logit_bias={"7": -100}', "--no-cache", "q")  # fmt: skip
    assert out.returncode == 0, out.stderr
    (body,) = fault.requests
    assert (body["reasoning_effort"], body["top_k"], body["logit_bias"]) == ("high", 40, {"7": -100})


def test_an_option_that_clashes_with_a_parameter_is_a_one_line_error(config: Path, fault) -> None:
    out = cli("--config", str(config), "chat", "-m", "f/x", "-o", "temperature=0", "q")
    assert out.returncode != 0 and "options key 'temperature' is a parameter of its own" in out.stderr
    assert fault.requests == []
