"""A Dask cluster as a deployment: configuration, answers, faults and lifecycle.

Tests that start a cluster are marked ``slow`` (worker processes take seconds to
spawn on a loaded machine) and ``llama`` when workers load a GGUF model; the
``sleep/Nms`` test model stands in for a model elsewhere when only dispatch matters.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from opencode_lab import ChatRequest, ConfigError, ModelUnavailableError
from opencode_lab.providers.dask_cluster import DaskProvider
from opencode_lab.providers.dask_worker import SleepModel

PROMPTS_CSV = Path(__file__).resolve().parents[2] / "data" / "prompts.csv"
BUNDLED = ["smollm2-135m", "gemma-3-270m"]


def cluster_toml(
    models: str = '"sleep/20ms"', *, scheduler: str = "local", workers: int | None = 2, lab: str = "", **keys: object
) -> str:
    """A ``[providers.cluster]`` table of type dask (cache off, so every answer is computed)."""
    lines = ["[providers.cluster]", 'type = "dask"', f'scheduler = "{scheduler}"', f"models = [{models}]"]
    if workers is not None:
        lines += [f"workers = {workers}", "threads_per_worker = 1"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return "\n".join([*lines, "", "[cache]", 'mode = "off"', "", "[lab]", lab, ""])


def worker_pids() -> set[int]:
    """This process's Dask worker processes (spawned by multiprocessing; the resource tracker is not one)."""
    return {p.pid for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(_cmdline(p))}


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def events(call_log: Path) -> list[dict[str, object]]:
    """The workers' call log: a start and an end line per call, each with the worker's pid and the prompt."""
    text = call_log.read_text() if call_log.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def in_flight(log: list[dict[str, object]]) -> dict[int, object]:
    """pid -> prompt of each worker whose last logged call has started and not ended."""
    last = {e["pid"]: e for e in log}
    return {int(pid): e["prompt"] for pid, e in last.items() if e["event"] == "start"}  # type: ignore[call-overload]


# -- configuration: checked when the Lab is built, before anything starts -------------------------------------


def test_a_dask_table_gives_cluster_deployments_limited_to_its_threads(make_lab) -> None:
    lab = make_lab(cluster_toml('"local/smollm2-135m", "sleep/200ms"', workers=3))
    deployments = lab.catalog.deployments
    assert deployments["cluster/smollm2-135m"].max_in_flight == 3
    assert deployments["cluster/sleep-200ms"].provider == "cluster"
    assert "cluster" in deployments["cluster/smollm2-135m"].tags
    assert lab.providers["cluster"].dashboard_link is None  # nothing started yet


def test_a_cluster_deployment_can_join_the_in_process_model(make_lab) -> None:
    extra = '[[models."local/smollm2-135m".deployments]]\nprovider = "cluster"\nupstream = "smollm2-135m"\n'
    lab = make_lab(cluster_toml('"local/smollm2-135m"') + extra)
    [group] = lab.catalog.resolve("local/smollm2-135m")
    assert [d.id for d in group.deployments] == ["local/smollm2-135m", "cluster/smollm2-135m"]


def test_neither_importing_nor_configuring_a_cluster_imports_dask(tmp_path: Path) -> None:
    toml = tmp_path / "lab.toml"
    toml.write_text(cluster_toml())
    code = (
        "import sys, opencode_lab\n"
        f"lab = opencode_lab.Lab.from_file({str(toml)!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"worker": 2}, r"\[providers.cluster\] has unknown key 'worker'; did you mean 'workers'\?"),
        ({"base_url": "http://127.0.0.1:9"}, "takes a scheduler .* not a base_url"),
        ({"threads_per_worker": 0}, r"\[providers.cluster\] threads_per_worker must be a whole number at least 1"),
    ],
)
def test_a_bad_key_is_refused_naming_it(make_lab, keys: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_lab(cluster_toml(workers=None, **keys))


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "http://127.0.0.1:8786", "127.0.0.1:8786", "tcp://:8786"])
def test_a_scheduler_that_is_not_an_address_is_refused(make_lab, address: str) -> None:
    with pytest.raises(ConfigError, match=r'scheduler must be "local" or an address like "tcp://host:8786"'):
        make_lab(cluster_toml(scheduler=address, workers=None))


def test_workers_with_an_existing_cluster_is_refused(make_lab) -> None:
    with pytest.raises(ConfigError, match="workers applies to a local cluster only"):
        make_lab(cluster_toml(scheduler="tcp://127.0.0.1:8786", workers=2))


def test_a_model_no_worker_can_run_is_refused_naming_the_closest(make_lab) -> None:
    with pytest.raises(ConfigError, match=r"'local/smollm2' is not a local model .* did you mean 'local/smollm2-135m'"):
        make_lab(cluster_toml('"local/smollm2"'))


def test_streaming_is_refused_with_a_clear_error() -> None:
    provider = DaskProvider("cluster", [SleepModel(0.01)])
    with pytest.raises(ModelUnavailableError, match="streaming through a Dask cluster is not supported"):
        provider.stream("sleep-10ms", ChatRequest.build("hi"))


@pytest.mark.slow
def test_an_unreachable_scheduler_fails_the_call_naming_its_address(make_lab) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound but never listening: every connection is refused
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
        lab = make_lab(cluster_toml(scheduler=address, workers=None, lab="timeout_s = 1\nmax_retries = 0"))
        row = lab.compare(["hi"], "cluster/sleep-20ms", progress=False).iloc[0]
    assert row["error_type"] == "connection"
    assert f"cannot reach the Dask scheduler at {address}" in row["error"]


# -- a local cluster of worker processes --------------------------------------------------------------------------


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_cluster_answers_as_the_in_process_models_do(make_lab) -> None:
    import pandas as pd

    lab = make_lab(cluster_toml(", ".join(f'"local/{m}"' for m in BUNDLED)))
    prompts = pd.read_csv(PROMPTS_CSV)
    options = {"temperature": 0, "seed": 1, "max_tokens": 12, "progress": False}
    here = lab.compare(prompts, [f"local/{m}" for m in BUNDLED], **options)
    there = lab.compare(prompts, [f"cluster/{m}" for m in BUNDLED], **options)
    assert there["error_type"].isna().all() and there["served_by"].str.startswith("cluster/").all()
    key = ["prompt", "model"]
    here, there = (f.assign(model=f["model"].str.split("/").str[1]).sort_values(key) for f in (here, there))
    assert list(there["response"]) == list(here["response"])


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_worker_killed_mid_compare_loses_no_row_and_duplicates_none(make_lab, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    lab = make_lab(cluster_toml('"local/smollm2-135m"', call_log=str(calls)))
    lab.chat("warm up", "cluster/smollm2-135m", max_tokens=1)
    prompts = [f"Say the number {i}." for i in range(60)]
    killed: dict[str, object] = {}

    def kill_a_worker_mid_call() -> None:
        def caught() -> bool:
            log = events(calls)
            running = in_flight(log)
            if sum(e["event"] == "end" and e["prompt"] in prompts for e in log) < 10 or not running:
                return False
            pid, prompt = next(iter(running.items()))
            os.kill(pid, signal.SIGKILL)
            killed.update(pid=pid, prompt=prompt)
            return True

        wait_until(caught, 120)

    killer = threading.Thread(target=kill_a_worker_mid_call)
    killer.start()
    frame = lab.compare(prompts, "cluster/smollm2-135m", temperature=0, seed=1, max_tokens=8, progress=False)
    killer.join()

    assert killed, "no worker was caught mid-call"
    assert sorted(frame["prompt"]) == sorted(prompts)  # every row once
    assert frame["error_type"].isna().all()
    sends = Counter(e["prompt"] for e in events(calls) if e["event"] == "start" and e["prompt"] in prompts)
    assert set(sends) == set(prompts) and max(sends.values()) <= 2
    assert not alive(int(killed["pid"]))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_call_whose_worker_dies_is_sent_once_more_to_another_in_one_attempt(make_lab, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    lab = make_lab(cluster_toml('"sleep/1000ms"', call_log=str(calls)))
    lab.chat("warm up", "cluster/sleep-1000ms")
    killed: list[int] = []

    def kill_its_worker() -> None:
        def caught() -> bool:
            running = [pid for pid, prompt in in_flight(events(calls)).items() if prompt == "doomed"]
            if running:
                os.kill(running[0], signal.SIGKILL)
                killed.append(running[0])
            return bool(running)

        wait_until(caught, 60)

    killer = threading.Thread(target=kill_its_worker)
    killer.start()
    result = lab.chat("doomed", "cluster/sleep-1000ms")
    killer.join()

    assert killed and result.text == "doomed" and len(result.attempts) == 1
    starts = [e["pid"] for e in events(calls) if e["event"] == "start" and e["prompt"] == "doomed"]
    assert len(starts) == 2 and starts[0] == killed[0] != starts[1]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_closing_the_lab_ends_every_worker_process(make_lab) -> None:
    lab = make_lab(cluster_toml())
    lab.chat("hi", "cluster/sleep-20ms")
    pids = worker_pids()
    assert len(pids) == 2
    lab.close()
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 30)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_closing_the_lab_twice_is_harmless(make_lab) -> None:
    lab = make_lab(cluster_toml())
    lab.chat("hi", "cluster/sleep-20ms")
    lab.close()
    lab.close()
    assert lab.providers["cluster"].dashboard_link is None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_lab_never_closed_takes_its_workers_with_it_at_exit(tmp_path: Path) -> None:
    toml = tmp_path / "lab.toml"
    toml.write_text(cluster_toml())
    script = tmp_path / "sweep.py"
    script.write_text(
        "import psutil, opencode_lab\n"
        "if __name__ == '__main__':\n"
        f"    lab = opencode_lab.Lab.from_file({str(toml)!r})\n"
        "    lab.chat('hi', 'cluster/sleep-20ms')\n"
        "    kids = psutil.Process().children(recursive=True)\n"
        "    print(*[p.pid for p in kids if 'spawn_main' in ' '.join(p.cmdline())])\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=100, check=True)
    pids = [int(pid) for pid in out.stdout.split()]
    assert len(pids) == 2
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 30)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cluster_startup_is_not_counted_as_latency(make_lab) -> None:
    lab = make_lab(cluster_toml('"sleep/50ms"'))
    started = time.perf_counter()
    result = lab.chat("hi", "cluster/sleep-50ms")
    wall = time.perf_counter() - started  # spawning two worker processes takes far longer than the call
    assert result.latency_s < wall / 2


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_dashboard_link_shows_once_a_cluster_is_in_use(make_lab) -> None:
    lab = make_lab(cluster_toml())
    assert "dashboard" not in lab.health().columns
    lab.chat("hi", "cluster/sleep-20ms")
    link = lab.health().loc["cluster/sleep-20ms", "dashboard"]
    assert link.startswith("http://") and link.endswith("/status")
    assert lab.models().loc["cluster/sleep-20ms", "dashboard"] == link


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_in_flight_limit_follows_the_workers_of_an_existing_cluster(make_lab) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=":0"
    ) as cluster:
        lab = make_lab(cluster_toml(scheduler=cluster.scheduler_address, workers=None))
        assert lab.catalog.deployments["cluster/sleep-20ms"].max_in_flight is None  # unknown until connected
        lab.chat("hi", "cluster/sleep-20ms")
        assert lab.catalog.deployments["cluster/sleep-20ms"].max_in_flight == 1
        cluster.scale(3)

        def followed() -> bool:
            lab.chat("hi", "cluster/sleep-20ms")
            return lab.catalog.deployments["cluster/sleep-20ms"].max_in_flight == 3

        assert wait_until(followed, 60)
        lab.close()
