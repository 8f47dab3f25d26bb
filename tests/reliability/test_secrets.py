"""Secrets: API keys reach their own provider's base URL and nothing else a user can see or a disk keeps.

Distinctive fake keys are set for OpenRouter (base URL on one fault server), OpenAI
(another fault server) and a custom ``[providers.x]`` (``api_key_env``) whose fault
server expects that key and refuses any other; ``[providers.y]`` has no key, and its
server records that none came.  The whole flow runs: chat,
stream, compare, errors (401s, one from a vendor that echoes the Authorization
header back), stats, health, plots saved to PNG, the magics in a real kernel (saved
notebook with outputs), the CLI, DEBUG logs of every library captured to a file,
the cache folder and the run log.  The key strings, and their distinctive middles,
must appear nowhere, as bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import json
import logging
import os
import stat
import subprocess
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opencode_lab import AuthenticationError, ChatRequest, ConfigError, Lab, LabError
from opencode_lab.core.config import Settings
from opencode_lab.core.errors import error_type_of
from opencode_lab.core.secrets import Secret
from opencode_lab.frontends.display import result_markdown
from opencode_lab.providers.anthropic import AnthropicProvider
from opencode_lab.providers.gemini import GeminiProvider
from opencode_lab.providers.http import HTTPProvider
from opencode_lab.providers.openai_compat import OpenAICompatibleProvider
from opencode_lab.testing import AnthropicServer, FaultServer, GeminiServer, VendorServer
from tests.conftest import free_port

from .conftest import REPO

OPENROUTER_KEY = "sk-or-v1-RELIABILITYOPENROUTERKEY-9f8e7d6c5b4a3928"
OPENAI_KEY = "sk-proj-RELIABILITYOPENAIKEY-0a1b2c3d4e5f6a7b"
CUSTOM_KEY = "xk-RELIABILITYCUSTOMKEY-5e6f7a8b9c0d1e2f"
KEYS = (OPENROUTER_KEY, OPENAI_KEY, CUSTOM_KEY)
NEEDLES = [k.encode() for k in KEYS] + [b"RELIABILITYOPENROUTERKEY", b"RELIABILITYOPENAIKEY", b"RELIABILITYCUSTOMKEY"]
HAS_MAGICS = importlib.util.find_spec("opencode_lab.frontends.magics") is not None


#: in a prompt to ``x/cm``: a 401 whose body echoes the Authorization header back, as some vendors do; the
#: client must not let that echo reach a message, a log or a file
ECHO = "[[fault:raw]]"


@pytest.fixture
def custom_servers() -> Iterator[tuple[FaultServer, FaultServer]]:
    """The servers of ``[providers.x]``, which expects its key (any other, or none, is ``unauthorized``) and
    answers `ECHO`, and of the keyless ``[providers.y]``; both serve the model ``cm``."""
    echo = {"error": {"message": f"invalid api key: Bearer {CUSTOM_KEY}", "code": 401}}
    custom = FaultServer(models=["cm"], api_key=CUSTOM_KEY, raw={"status": 401, "body": json.dumps(echo)})
    with custom, FaultServer(models=["cm"]) as keyless:
        yield custom, keyless


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Every log record of every library, DEBUG and up, into one file."""
    path = tmp_path / "debug.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("", "httpx", "httpcore", "opencode_lab")]
    levels = [logger.level for logger in loggers]
    loggers[0].addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield path
    loggers[0].removeHandler(handler)
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    handler.close()


def leaks(blob: bytes) -> list[str]:
    return [n.decode() for n in NEEDLES if n in blob]


def text_of(obj: object) -> str:
    return f"{obj!s}\n{obj!r}"


def error_text(exc: BaseException) -> str:
    parts = [text_of(exc), "".join(traceback.format_exception(exc))]
    parts += [text_of(a) for a in getattr(exc, "attempts", ())]
    return "\n".join(parts)


def run_cli(args: list[str], cwd: Path) -> str:
    """The CLI as a user runs it (console script when installed, else ``-m``); returns stdout + stderr."""
    script = Path(sys.executable).with_name("opencode-lab")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "opencode_lab"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    done = subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return f"$ {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


NOTEBOOK_CELLS = [
    "%load_ext opencode_lab",
    "%%chat -m openrouter/fault-model\nHello from a notebook cell.",
    "%%chat -m x/cm -m gpt --no-stream\nCompare these two.",
    f"%%chat -m x/cm --no-cache\n{ECHO} this one fails and the vendor echoes the key",
    "%models",
    "%chat_stats",
    "import opencode_lab\nlab = opencode_lab.default_lab()\nlab.settings",
    "lab.providers",
    "lab.settings.vendors['openrouter'].api_key, lab.settings.providers['x'].api_key",
    f"lab.chat('{ECHO} raised in a cell', 'x/cm', cache=False)",
]


def run_notebook(path: Path) -> bytes:
    """Execute the magics in a real kernel (environment inherited) and save the notebook with its outputs."""
    import nbformat
    from nbclient import NotebookClient

    cells = NOTEBOOK_CELLS if HAS_MAGICS else NOTEBOOK_CELLS[6:]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    nbformat.write(nb, path)
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert any("echo: Hello from a notebook cell." in json.dumps(o) for o in outputs) or not HAS_MAGICS
    return path.read_bytes()


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_keys_never_leak_and_reach_only_their_own_provider(
    tmp_path: Path, monkeypatch, faults, custom_servers, debug_log, capfd
) -> None:
    """No key in any output, log, error, file, frame, plot, CLI output or notebook; cache and run-log files
    are readable by their owner only; each key is sent to its own provider only, and a keyless provider gets
    no Authorization."""
    openrouter, openai = faults[0], faults[1]
    custom, keyless = custom_servers
    cache_dir = Path(os.environ["OC_CACHE_DIR"])
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f'[providers.x]\nbase_url = "{custom.base_url}"\napi_key_env = "RELIABILITY_X_KEY"\nmodels = ["cm"]\n\n'
        f'[providers.y]\nbase_url = "{keyless.base_url}"\nmodels = ["cm"]\n\n'
        '[models.gpt]\nprovider = "openai"\nupstream = "fault-model"\n'
    )
    for var, value in {
        "OPENROUTER_API_KEY": OPENROUTER_KEY,
        "OPENROUTER_BASE_URL": openrouter.base_url,
        "OPENROUTER_MODEL_LIST": "fault-model",
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": openai.base_url,
        "RELIABILITY_X_KEY": CUSTOM_KEY,
        "LOG_LEVEL": "DEBUG",
        "OC_CONFIG": str(toml),
    }.items():
        monkeypatch.setenv(var, value)

    seen: list[str] = []  # everything shown to a user, as text
    lab = Lab.from_env()
    seen += [text_of(lab), text_of(lab.settings), text_of(lab.providers), text_of(lab.settings.providers)]
    for model in ("openrouter/fault-model", "gpt", "x/cm", "y/cm"):
        result = lab.chat(f"hello {model}", model)
        assert result.text.strip() == f"echo: hello {model}"
        seen += [text_of(result), result.footer(), result_markdown(result), json.dumps(result.to_dict(), default=str)]
        seen.append("".join(lab.stream(f"stream {model}", model)))
    frame = lab.compare(["c0", "c1", "c2"], ["openrouter/fault-model", "gpt", "x/cm"], progress=False, run="secrets")
    assert frame["error_type"].isna().all(), frame["error"].tolist()

    openrouter.configure(queue=["unauthorized"])
    with pytest.raises(LabError) as failed:
        lab.chat("refused by openrouter", "openrouter/fault-model", cache=False)
    assert "auth" in {a.error_type for a in failed.value.attempts}
    seen.append(error_text(failed.value))
    with pytest.raises(LabError) as echoed:
        lab.chat(f"{ECHO} echoed", "x/cm", cache=False)
    assert isinstance(echoed.value, AuthenticationError) or "auth" in str(echoed.value)
    assert "invalid api key: Bearer ***" in error_text(echoed.value)  # the vendor's echo arrived, masked
    seen.append(error_text(echoed.value))
    with pytest.raises(LabError) as echoed_stream:
        "".join(lab.stream(f"{ECHO} echoed in a stream", "x/cm", cache=False))
    seen.append(error_text(echoed_stream.value))
    failing = lab.compare([f"{ECHO} row"], ["x/cm"], progress=False, cache=False)
    assert failing["error_type"].tolist() == ["auth"]
    seen.append(failing.to_csv())

    for table in (lab.stats(), lab.stats(frame), lab.health(), lab.models(), lab.attempts(), lab.runs()):
        seen.append(table.to_csv())
    seen += [lab.load_run("secrets").to_csv(), lab.health_check().to_csv(), frame.to_csv()]
    lab.plot(frame).savefig(tmp_path / "overview.png")
    lab.plot(lab.stats(frame), "latency").savefig(tmp_path / "latency.png")
    lab.close()

    (tmp_path / "prompts.csv").write_text("prompt,topic\nwhat is 1+1,math\nname a colour,art\n")
    compare_args = ["--config", str(toml), "compare", "prompts.csv", "-m", "openrouter/fault-model", "-m", "x/cm"]
    cli = [
        run_cli(["--config", str(toml), "chat", "-m", "x/cm", "hello from the CLI"], tmp_path),
        run_cli(["--config", str(toml), "chat", "-m", "x/cm", "--no-cache", f"{ECHO} CLI error"], tmp_path),
        run_cli(["--config", str(toml), "models"], tmp_path),
        run_cli([*compare_args, "--run", "cli-run", "--out", "cli.csv", "--plot", "cli.png"], tmp_path),
        run_cli(["--config", str(toml), "stats", "cli-run"], tmp_path),
    ]
    assert "echo: hello from the CLI" in cli[0] and "echo: what is 1+1" in (tmp_path / "cli.csv").read_text()
    assert "Traceback" not in "".join(cli)
    notebook = run_notebook(tmp_path / "saved.ipynb")
    if not HAS_MAGICS:
        print("opencode_lab.frontends.magics is absent: the notebook ran without magic cells")

    captured = capfd.readouterr()
    blobs = {
        "user-visible text": "\n".join(seen).encode(),
        "CLI output": "\n".join(cli).encode(),
        "captured stdout/stderr": (captured.out + captured.err).encode(),
        "saved notebook": notebook,
    }
    for path in [debug_log, *tmp_path.glob("*.png"), tmp_path / "cli.csv", *cache_dir.rglob("*")]:
        if path.is_file():
            blobs[str(path)] = path.read_bytes()
    assert debug_log.stat().st_size > 0 and any(cache_dir.rglob("output.json"))
    leaked = {where: found for where, blob in blobs.items() if (found := leaks(blob))}
    assert not leaked, f"keys leaked into: {leaked}"

    # each key went to its own provider only; a provider without a key sends no Authorization at all
    assert custom.count() and not custom.count("unauthorized") and all(e["auth"] for e in custom.log)
    assert keyless.count() and not any(e["auth"] for e in keyless.log)
    assert all(e["auth"] for e in openrouter.log) and all(e["auth"] for e in openai.log)
    assert openrouter.count() and openai.count()

    # cache and run log files are private to their owner
    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert any(p.name == "runs.sqlite" for p in files)
    loose = [str(p.relative_to(cache_dir)) for p in files if not _private(p, cache_dir)]
    assert not loose, f"files under the cache folder other users can read: {loose}"


def _private(path: Path, top: Path) -> bool:
    """No other user can read *path*: the file itself, or a folder between it and *top*, is owner-only."""
    for each in (path, *path.relative_to(top).parents[:-1]):
        target = path if each is path else top / each
        if stat.S_IMODE(target.stat().st_mode) & 0o077 == 0:
            return True
    return False


# -- header values, URL user-info and keys echoed inside answers -------------------------------------------------

PASSWORD = "pw-RELIABILITYURLPASSWORD-77"
HEADER_KEY = "hk-RELIABILITYHEADERKEY-4d5e6f"
# a registered secret stays registered for the process, and a stream rightly holds back any tail that could begin
# one: this key starts with a letter no scripted answer ends a piece with, or other tests' pieces would shift
ECHOED_KEY = "qk-RELIABILITYECHOEDKEY-8a9b0c"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
CREDENTIAL_NEEDLES = [PASSWORD, "RELIABILITYURLPASSWORD", HEADER_KEY, "RELIABILITYHEADERKEY", BASIC]


def _answer(content: str) -> str:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return json.dumps({"model": "fault-model", "choices": [choice]})


def _sse(*deltas: str) -> str:
    chunks = [{"choices": [{"index": 0, "delta": {"content": d}, "finish_reason": None}]} for d in deltas]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def test_header_values_and_url_user_info_show_nowhere(make_lab, fault, debug_log: Path) -> None:
    """Masked in reprs of settings and providers, in errors (a vendor echoing them included) and in every log
    line, httpx's own INFO request line among them; still sent to the server."""
    lab = make_lab(
        '[providers.x]\nbase_url = "http://alice:{password}@127.0.0.1:{port}/v1"\n'
        'headers = {{ "X-Api-Key" = "{header}" }}\nmodels = ["fault-model"]\n',
        password=PASSWORD,
        port=str(fault.port),
        header=HEADER_KEY,
    )
    seen = [text_of(lab.settings), text_of(lab.settings.providers["x"]), text_of(lab.providers)]
    assert lab.chat("hello", "x/fault-model", cache=False).text == "echo: hello"
    assert fault.log[-1]["auth"] is True
    seen.append("".join(lab.stream("hello again", "x/fault-model", cache=False)))
    echo = json.dumps({"error": {"message": f"bad key {HEADER_KEY} for Basic {BASIC} ({PASSWORD})", "code": 401}})
    fault.configure(mix={"raw": 1.0}, raw={"status": 401, "body": echo})
    with pytest.raises(LabError) as failed:
        lab.chat("refused", "x/fault-model", cache=False)
    assert error_type_of(failed.value) == "auth" and "bad key *** for Basic *** (***)" in str(failed.value)
    seen.append(error_text(failed.value))
    lab.close()

    logged = debug_log.read_text()
    assert f"HTTP Request: POST http://127.0.0.1:{fault.port}/v1/chat/completions" in logged
    blob = "\n".join(seen) + logged
    assert not [n for n in CREDENTIAL_NEEDLES if n in blob]


def test_a_key_echoed_inside_an_answer_is_masked_before_it_is_cached_shown_or_returned(
    make_lab, fault, monkeypatch
) -> None:
    monkeypatch.setenv("RELIABILITY_ECHO_KEY", ECHOED_KEY)
    lab = make_lab(
        '[providers.x]\nbase_url = "{url}"\napi_key_env = "RELIABILITY_ECHO_KEY"\nmodels = ["fault-model"]\n',
        url=fault.base_url,
    )
    fault.configure(mix={"raw": 1.0}, raw={"body": _answer(f"your key is {ECHOED_KEY}.")})
    assert lab.chat("which key?", "x/fault-model").text == "your key is ***."
    assert lab.chat("which key?", "x/fault-model").cached  # what the cache holds is the masked answer
    frame = lab.compare(["p1", "p2"], ["x/fault-model"], progress=False, run="echo")
    assert frame["response"].tolist() == ["your key is ***."] * 2
    fault.configure(raw={"body": _sse("key: ", ECHOED_KEY[:9], ECHOED_KEY[9:], " ok")})
    pieces = list(lab.stream("stream the key", "x/fault-model"))
    assert "".join(pieces) == "key: *** ok" and not any(ECHOED_KEY[:9] in p for p in pieces)
    lab.close()

    cache_dir = Path(os.environ["OC_CACHE_DIR"])
    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert any(p.name == "runs.sqlite" for p in files)
    assert not [str(p) for p in files if b"RELIABILITYECHOEDKEY" in p.read_bytes()]


# -- no key reachable from an error we raise -----------------------------------------------------------------------

VENDOR_KEY = "vk-RELIABILITYVENDORKEY-1f2e3d4c5b"
FOREIGN_KEY = "AIzaSy-RELIABILITYFOREIGNKEY-6a7b8c"
PROVIDERS: dict[str, tuple[type[VendorServer], type[HTTPProvider]]] = {
    "openai": (FaultServer, OpenAICompatibleProvider),
    "anthropic": (AnthropicServer, AnthropicProvider),
    "gemini": (GeminiServer, GeminiProvider),
}
#: failures, each from a different layer: (outcome, what is asked of the provider)
FAILURES = {
    "refused": None,  # nothing listens: httpx.ConnectError, which holds the request
    "reset": "reset",  # httpx.ReadError / RemoteProtocolError
    "cut_mid_stream": "cut_stream",  # httpx.RemoteProtocolError (after text, where the format sends it early)
    "stalled": "hang",  # our own time limit
    "status_401": "unauthorized",
    "malformed": "malformed",
}


def reachable_strings(root: object) -> Iterator[str]:
    """Every string (and bytes, decoded) reachable from *root*: exception chains, arguments, attributes,
    containers, httpx requests and their headers; not stack frames, and not a `Secret` (whose value only
    ``reveal()`` gives)."""
    seen: set[int] = set()
    pending: list[object] = [root]
    while pending and len(seen) < 200_000:
        obj = pending.pop()
        if id(obj) in seen or obj is None or isinstance(obj, Secret | type | types.ModuleType):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, bytes | bytearray):
            yield bytes(obj).decode("latin-1")
        elif isinstance(obj, types.FrameType | types.TracebackType | types.CodeType | types.FunctionType):
            continue
        elif isinstance(obj, httpx.Headers):
            yield from (f"{k}: {v}" for k, v in obj.multi_items())
        elif isinstance(obj, dict):
            pending += [*obj.keys(), *obj.values()]
        elif isinstance(obj, list | tuple | set | frozenset):
            pending += list(obj)
        else:
            if isinstance(obj, BaseException):
                yield from (str(obj), repr(obj))
                pending += [obj.__cause__, obj.__context__, *obj.args]
            if isinstance(obj, httpx.HTTPError):
                with contextlib.suppress(RuntimeError):  # raised when no request was set
                    pending.append(obj.request)
            pending += list(getattr(obj, "__dict__", {}).values())
            pending += [getattr(obj, s, None) for s in getattr(type(obj), "__slots__", ())]


async def _failed(provider: HTTPProvider, streamed: bool) -> BaseException:
    request = ChatRequest.build("one two three")
    try:
        if streamed:
            [chunk async for chunk in provider.stream("fault-model", request)]
        else:
            await provider.complete("fault-model", request)
    except LabError as exc:
        return exc
    finally:
        await provider.aclose()
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("vendor", list(PROVIDERS))
def test_no_key_is_reachable_from_an_error_a_provider_raises(vendor: str, failure: str, streamed: bool) -> None:
    server_type, provider_type = PROVIDERS[vendor]
    outcome = FAILURES[failure]
    with server_type(api_key=VENDOR_KEY, hang_s=10.0) as server:
        server.configure(queue=[] if outcome is None else [outcome])
        url = server.base_url.replace(str(server.port), str(free_port())) if outcome is None else server.base_url
        error = asyncio.run(_failed(provider_type("p", url, api_key=Secret(VENDOR_KEY), timeout_s=0.5), streamed))
    found = [s for s in reachable_strings(error) if "RELIABILITYVENDORKEY" in s]
    assert not found, f"{type(error).__name__} leads to the key: {found[:3]}"
    assert any(isinstance(e, httpx.HTTPError) for e in _chain(error)) == (
        failure in ("refused", "reset", "cut_mid_stream")
    )


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


@pytest.mark.parametrize("vendor", ["anthropic", "gemini"])
def test_no_key_is_reachable_through_the_last_attempt_of_a_lab_error(vendor: str, monkeypatch) -> None:
    """The report's path to a key: ``err.last.__cause__.request.headers``."""
    server_type = PROVIDERS[vendor][0]
    with server_type(models=["fault-model"], api_key=VENDOR_KEY) as server:
        server.configure(mix={"reset": 1.0})
        prefix = vendor.upper()
        monkeypatch.setenv(f"{prefix}_API_KEY", VENDOR_KEY)
        monkeypatch.setenv(f"{prefix}_BASE_URL", server.base_url)
        monkeypatch.setenv("OC_MAX_RETRIES", "1")
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        with Lab.from_env() as lab, pytest.raises(LabError) as info:
            lab.chat("hi", f"{vendor}/fault-model", cache=False)
    last = info.value.last
    assert isinstance(last, LabError) and isinstance(last.__cause__, httpx.HTTPError)
    assert VENDOR_KEY not in str(last.__cause__.request.headers.multi_items())
    assert not [s for s in reachable_strings(info.value) if "RELIABILITYVENDORKEY" in s]


@pytest.mark.parametrize("where", ["environment", "toml"])
def test_a_key_in_a_base_url_query_is_refused_and_not_shown(tmp_path: Path, where: str) -> None:
    url = f"https://generativelanguage.googleapis.com/v1beta?alt=sse&key={FOREIGN_KEY}"
    with pytest.raises(ConfigError, match="takes no \\?query") as info:
        if where == "environment":
            Settings.load(env={"GEMINI_BASE_URL": url, "GEMINI_API_KEY": "AIzaSy-some-other-key-000"})
        else:
            path = tmp_path / "lab.toml"
            path.write_text(f'[providers.x]\nbase_url = "{url}"\nmodels = ["m"]\n')
            Settings.load(path, env={})
    assert "key=***" in str(info.value)
    assert not [s for s in reachable_strings(info.value) if "RELIABILITYFOREIGNKEY" in s]
