"""Local inference on a Dask cluster against in-process, in one run.

(a) Dask's overhead per call: the median latency of a call that does no work
    (the ``sleep/0ms`` test model) through a 1-worker cluster, and of SmolLM2 with
    ``max_tokens=1`` on one llama.cpp thread, in-process and through the cluster,
    one call at a time.
(b) Dispatch scaling: 60 rows of a worker-side model that sleeps 200 ms (a remote
    GPU's stand-in: it does not use this machine's CPU) on 1, 2 and 4 workers;
    rows/s and the ratio to 1 worker (goal: >= 3.5x at 4).
(c) SmolLM2, 60 prompts, ``max_tokens=16``: in-process (one model, the default
    2 llama.cpp threads here; and ``one-thread``, 1 thread) against a 2-worker local
    cluster (1 thread each), with where the time goes: llama.cpp's time per call on
    the workers (from their call log).

Cache off; every cluster is started (and its models loaded) before timing.  The
last line is (b)'s ratio at 4 workers.  Run it from the repository root.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from opencode_lab import Lab, Settings
from opencode_lab.providers.local import LocalProvider, bundled_models

ROWS = 60
SMOL = "smollm2-135m"


def lab_with(workers: int, models: str, call_log: Path | None = None) -> Lab:
    """A Lab with cache off in its own folder, a local cluster named ``cluster`` and, besides the in-process
    ``local/...`` models (2 llama.cpp threads here), ``one-thread``: in-process SmolLM2 on 1 thread, as a worker."""
    folder = Path(tempfile.mkdtemp(prefix="oc-bench-"))
    os.environ["OC_CACHE_DIR"] = str(folder)
    toml = folder / "bench.toml"
    log = f'call_log = "{call_log}"\n' if call_log else ""
    toml.write_text(
        '[cache]\nmode = "off"\n[lab]\nmax_concurrency = 16\n'
        f'[models.one-thread]\nprovider = "one_thread"\nupstream = "{SMOL}"\nmax_in_flight = 1\n'
        f'[providers.cluster]\ntype = "dask"\nworkers = {workers}\nthreads_per_worker = 1\nmodels = [{models}]\n{log}'
    )
    one_thread = LocalProvider(bundled_models(folder), threads=1)
    return Lab(Settings.load(toml), providers={"one_thread": one_thread})


def median_latency_ms(lab: Lab, model: str, n: int, **params: object) -> float:
    """Median of *n* one-at-a-time calls' latency (as the router measures it), after one warm-up."""
    lab.chat("warm up", model, **params)
    latencies = [lab.chat(f"Say {i}.", model, **params).latency_s for i in range(n)]
    return statistics.median(latencies) * 1000


def overhead() -> None:
    lab = lab_with(1, f'"local/{SMOL}", "sleep/0ms"')
    try:
        noops = [median_latency_ms(lab, "cluster/sleep-0ms", 50) for _ in range(3)]
        cluster = median_latency_ms(lab, f"cluster/{SMOL}", 30, max_tokens=1, temperature=0)
        here = median_latency_ms(lab, "one-thread", 30, max_tokens=1, temperature=0)
    finally:
        lab.close()
    rounds = ", ".join(f"{noop:.1f}" for noop in noops)
    say(
        f"(a) a call doing no work, through a 1-worker cluster: {statistics.median(noops):.1f} ms "
        f"(median of 3 rounds of 50 calls one at a time: {rounds} ms; goal < 5 ms)"
    )
    say(
        f"(a) SmolLM2 max_tokens=1, 1 llama.cpp thread: in-process {here:.1f} ms, cluster {cluster:.1f} ms "
        f"({cluster - here:+.1f} ms)"
    )


def dispatch() -> float:
    rates = {}
    for workers in (1, 2, 4):
        lab = lab_with(workers, '"sleep/200ms"')
        try:
            lab.chat("warm up", "cluster/sleep-200ms")
            started = time.perf_counter()
            frame = lab.compare([f"q{i}" for i in range(ROWS)], "cluster/sleep-200ms", progress=False)
            elapsed = time.perf_counter() - started
        finally:
            lab.close()
        assert frame["error_type"].isna().all(), frame["error"].dropna().head()
        rates[workers] = ROWS / elapsed
        ideal = workers / 0.2
        say(
            f"(b) {workers} worker(s): {ROWS} rows in {elapsed:.2f} s = {rates[workers]:.2f} rows/s "
            f"(ideal {ideal:.0f}), {rates[workers] / rates[1]:.2f}x 1 worker"
        )
    return rates[4] / rates[1]


def local_models(tmp: Path) -> None:
    call_log = tmp / "calls.jsonl"
    lab = lab_with(2, f'"local/{SMOL}"', call_log)
    prompts = [f"Write one sentence about the number {i}." for i in range(ROWS)]
    options = {"temperature": 0, "seed": 1, "max_tokens": 16, "progress": False}
    try:
        for model in (f"local/{SMOL}", "one-thread", f"cluster/{SMOL}"):
            lab.chat("warm up", model, max_tokens=1)
            started = time.perf_counter()
            frame = lab.compare(prompts, model, **options)
            elapsed = time.perf_counter() - started
            tokens = frame["output_tokens"].sum()
            say(
                f"(c) {model}: {ROWS} prompts in {elapsed:.2f} s = {ROWS / elapsed:.2f} rows/s, "
                f"{tokens / elapsed:.0f} output tokens/s in all; median call {frame['latency_s'].median():.3f} s"
            )
    finally:
        lab.close()
    calls = [json.loads(line) for line in call_log.read_text().splitlines()]
    starts = {(c["pid"], c["prompt"]): c["t"] for c in calls if c["event"] == "start"}
    spans = [c["t"] - starts[c["pid"], c["prompt"]] for c in calls if c["event"] == "end" and c["prompt"] in prompts]
    say(
        f"(c) on the workers, llama.cpp took {statistics.median(spans):.3f} s per call (median), "
        f"{sum(spans):.1f} s in all across {len({c['pid'] for c in calls})} processes"
    )


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> None:
    say(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    overhead()
    ratio = dispatch()
    with tempfile.TemporaryDirectory() as tmp:
        local_models(Path(tmp))
    print(f"{ratio:.2f}")


if __name__ == "__main__":
    main()
