"""Shared fixtures: loopback servers (fault-injecting and llama.cpp), isolated caches, Labs built from TOML."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

import opencode_lab
from opencode_lab import Lab
from opencode_lab.core.vendors import VENDORS
from opencode_lab.providers.local import smollm2_path
from opencode_lab.testing import FaultServer

os.environ.setdefault("MPLBACKEND", "Agg")
# one llama.cpp thread per xdist worker: two workers with two spin-waiting threads each on two cores can stall a decode
os.environ["OC_LOCAL_THREADS"] = "1"
for _var in (*VENDORS.variables, "OC_CONFIG", "OC_CACHE_MODE", "OC_CACHE_TTL_MS", "OC_RUNLOG", "OC_DEFAULT_MODELS"):
    os.environ.pop(_var, None)
for _var in ("OC_AUDIT", "OC_PRIVACY", "OC_AUDIT_KEY_FILE"):
    os.environ.pop(_var, None)
# the audit trail signs with this key, so no test writes a key file into the home folder or a note on stderr
# (the tests of the key file itself unset it)
os.environ["OC_AUDIT_KEY"] = "the test suite's audit key"
# no per-example time limit for property tests: a wall-clock deadline fails at random on a loaded 2-core machine (an
# example of the cache-key property took 2.5-3 s against the default 200 ms); a hang still meets pytest's time-out
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker, never the controller or a pytest that a test starts
        atexit.register(_leave_without_teardown)


def _leave_without_teardown() -> None:
    """An xdist worker's results are with the controller by the time it exits; tearing its interpreter down
    (600,000 objects, 4,000 modules) kept every run waiting about 3 s at its end, so it leaves at once.
    Registered at configure time, it runs after the exit handlers of everything the tests imported."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that runs llama.cpp goes to one xdist worker (``--dist loadgroup``): decoding is memory-bound,
    so two workers decoding at once are slower than one, and on two cores they starved each other's decode
    past the per-test timeout."""
    for item in items:
        if item.get_closest_marker("llama") is not None:
            item.add_marker(pytest.mark.xdist_group("llama"))


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt during the test, as in a terminal's Python, even when the suite runs as a
    background job of a shell without job control (its children inherit an ignored SIGINT: a Ctrl-C test's
    signal then does nothing)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def _isolated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isolated")


@pytest.fixture(autouse=True)
def _isolated_cache(_isolated_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache folder and run log, and no default Lab from an earlier test.  The folders
    are made by `tempfile.mkdtemp`: pytest's numbered folders list their parent folder to number a new one,
    which cost a worker seconds, growing with the square of its tests."""
    folder = Path(tempfile.mkdtemp(dir=_isolated_root))
    (folder / "cache").mkdir()
    (folder / "cwd").mkdir()
    monkeypatch.setenv("OC_CACHE_DIR", str(folder / "cache"))
    monkeypatch.chdir(folder / "cwd")
    opencode_lab.set_default_lab(None)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """AWS's standard chain finds exactly the loopback Bedrock server's test credentials, in the environment:
    no profile, config file or metadata endpoint of the machine is read or asked."""
    from opencode_lab.testing.bedrock_server import ACCESS_KEY, SECRET_KEY

    empty = tmp_path_factory.mktemp("aws") / "none"
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def _service_account_key() -> str:
    """An RSA key in PEM, made once: what a service-account JSON file holds to sign its token requests."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


@pytest.fixture
def gcp(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, _service_account_key: str
) -> Callable[[str], Path]:
    """``gcp(token_url)``: a service-account JSON file whose tokens come from *token_url* (a loopback token
    endpoint).  Application Default Credentials find nothing else: no variable, gcloud folder or metadata server."""
    import json

    home = tmp_path_factory.mktemp("gcloud")
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home))
    monkeypatch.setenv("NO_GCE_CHECK", "True")

    def service_account(token_url: str) -> Path:
        path = home / "service-account.json"
        info = {
            "type": "service_account",
            "project_id": "lab-project",
            "private_key_id": "loopback-key-1",
            "private_key": _service_account_key,
            "client_email": "lab@lab-project.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_url,
        }
        path.write_text(json.dumps(info))
        return path

    return service_account


@pytest.fixture(scope="session")
def tls() -> ssl.SSLContext:
    """One TLS context for the tests' own httpx clients (``verify=tls``): httpx loads the CA bundle into a new
    context for every client it makes, about 40 ms, more than a loopback test's own work."""
    return httpx.create_ssl_context()


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    """One in-process fault-injecting OpenAI-compatible server; reset before each use by `fault`."""
    with FaultServer().start() as server:
        yield server


@pytest.fixture
def fault(fault_server: FaultServer) -> FaultServer:
    fault_server.reset()
    return fault_server


@pytest.fixture(scope="session")
def _three_servers() -> Iterator[list[FaultServer]]:
    servers = [FaultServer().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def faults(_three_servers: list[FaultServer]) -> list[FaultServer]:
    """Three independent fault servers (three deployments of one model), freshly reset."""
    for server in _three_servers:
        server.reset()
    return _three_servers


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """Build a Lab from a TOML text (``{name}`` placeholders filled from keyword arguments); closed afterwards."""
    labs: list[Lab] = []

    def make(toml: str = "", **values: str) -> Lab:
        path = tmp_path / f"lab{len(labs)}.toml"
        path.write_text(toml.format(**values) if values else toml)
        lab = Lab.from_file(path)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()


@pytest.fixture
def fault_toml() -> Callable[..., str]:
    """``fault_toml(*servers, model="m", **limits)``: TOML text for N deployments of one model on fault servers."""
    return _fault_toml


def _fault_toml(*servers: FaultServer, model: str = "m", extra: str = "", **deployment: object) -> str:
    lines = []
    for i, server in enumerate(servers):
        lines += [f"[providers.f{i}]", f'base_url = "{server.base_url}"', ""]
    for i, _ in enumerate(servers):
        lines += [f"[[models.{model}.deployments]]", f'provider = "f{i}"', 'upstream = "fault-model"']
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in deployment.items()]
        lines.append("")
    return "\n".join(lines) + extra


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """`python -m llama_cpp.server` serving the bundled SmolLM2 on a free loopback port; yields its /v1 URL."""
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
            "--model_alias",
            "smollm2",
            "--chat_format",
            "chatml",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        else:
            raise RuntimeError("llama_cpp.server did not become ready within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def judge_server() -> Iterator[FaultServer]:
    """An OpenAI-compatible server whose answer text is ``reply(request body)``: a verdict unless a test sets
    ``judge_server.reply``; ``requests`` keeps every body received, usage counts words so costs can be priced."""
    with FaultServer(models=["judge-model"], reply=lambda body: '{"score": 5, "reason": "fine"}') as server:
        yield server


@pytest.fixture
def judge_toml(judge_server: FaultServer) -> str:
    """TOML for a model ``judge`` on the judge server, priced ($1 / $2 per million tokens) so its cost counts."""
    return (
        f'[providers.j]\nbase_url = "{judge_server.base_url}"\n\n'
        '[models.judge]\nprovider = "j"\nupstream = "judge-model"\ninput_price = 1.0\noutput_price = 2.0\n'
    )


_WORDS = ["capital", "river", "author", "poem", "colour", "planet", "history", "language", "animal", "city"]


def _synthetic(
    n: int = 120, *, seed: int = 1, share: float = 0.6, scores: Callable[..., tuple[float, float]] | None = None
):
    """A compare frame with known structure: model A (cost 2) answers arithmetic-looking prompts right, model B
    (cost 1) the rest; *scores* ``(rng, arithmetic) -> (A's score, B's score)`` replaces that rule."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        arithmetic = rng.random() < share
        if arithmetic:
            prompt = f"What is {rng.integers(10, 99)} + {rng.integers(10, 99)} * {rng.integers(2, 9)}?"
        else:
            prompt = f"Name the {rng.choice(_WORDS)} of the {rng.choice(_WORDS)} called {i}"
        a, b = scores(rng, arithmetic) if scores else (float(arithmetic), float(not arithmetic))
        for model, score, cost in (("A", a, 2.0), ("B", b, 1.0)):
            rows.append(
                {
                    "prompt": prompt,
                    "model": model,
                    "response": f"{model} says",
                    "error_type": None,
                    "score": score,
                    "cost_usd": cost,
                    "sample": 0,
                    "prompt_id": i,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def make_task() -> Callable[..., object]:
    """``make_task(n=120, seed=1, share=0.6, scores=None)``: a synthetic selection task (see `_synthetic`)."""
    return _synthetic


@pytest.fixture
def arithmetic_task():
    return _synthetic()
