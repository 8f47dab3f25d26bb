"""The session: one request at a time through cache, router and records, on the one loop that owns them.

`Session` is orchestration only.  It is built from `Settings` (`build.py` makes the
providers and the catalog), owns the event loop every connection, limiter and
breaker is bound to (`loop.py`), and turns each call into a `ChatResult` plus
attempt records (`records.py`) that reach the run log in batches.  The
DataFrame API (`opencode_lab.Lab`) is built on its public methods.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import math
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.config import Settings
from ..core.deployment import Deployment
from ..core.errors import ConfigError, InvalidRequestError, LabError, ProviderTimeout
from ..core.params import NAMES, reject_unknown
from ..core.secrets import RedactingFilter, get_logger
from ..core.tools import ToolCall
from ..core.types import ChatRequest, ChatResult, Completion
from ..providers.base import Provider
from ..routing.backoff import RetryPolicy
from ..routing.catalog import Catalog, ModelGroup, refuse_unsupported
from ..routing.router import BreakerSettings, Routed, Router
from ..routing.strategies import make_strategy
from .build import build_providers, catalog_models, check_open_ids
from .cache import CachePolicy, ResponseCache, canonical_key
from .loop import LoopThread
from .records import attempt_record, call_records, result_row

if TYPE_CHECKING:
    from .runlog import RunLog

log = get_logger(__name__)
T = TypeVar("T")

#: the keywords of `Session.achat` / `astream` besides the request parameters of `opencode_lab.core.params`
CALL_OPTIONS: tuple[str, ...] = ("system", "tools", "cache", "fallback", "strategy", "sample")


class Session:
    """A configured session: ``from_env()``, ``from_file(path)`` or ``(settings, providers=...)``."""

    def __init__(
        self, settings: Settings | None = None, *, providers: Mapping[str, Provider] | None = None, **unknown: Any
    ) -> None:
        reject_unknown(unknown, ("settings", "providers"), f"keyword of {type(self).__name__}()")
        self.settings = settings or Settings.load()
        _configure_logging(self.settings.log_level)
        self.providers: dict[str, Provider] = build_providers(self.settings, providers or {})
        self.catalog = Catalog()
        catalog_models(self.settings, self.providers, self.catalog)
        s = self.settings
        try:
            make_strategy(s.strategy)
        except InvalidRequestError as exc:
            raise ConfigError(f"OC_STRATEGY / [lab] strategy: {exc}") from None
        self.router = Router(
            self.catalog,
            self.providers,
            strategy=s.strategy,
            retry=RetryPolicy(max_retries=s.max_retries, deadline_s=s.deadline_s),
            max_candidates=s.agent_max_iter,
            rate_window_s=s.rate_window_s,
            retry_after_cap_s=s.retry_after_cap_s,
            breaker=BreakerSettings(
                consecutive_failures=s.breaker_failures,
                failure_rate=s.breaker_failure_rate,
                window=s.breaker_window,
                min_calls=s.breaker_min_calls,
                cooldown_s=s.breaker_cooldown_s,
            ),
        )
        self.cache = ResponseCache(s.cache_mode, s.cache_dir, s.cache_ttl_ms)
        self.loop = LoopThread()
        self.session_run_id = _new_id("s")
        #: every results row (`records.result_row`) and attempt record of this session, in order
        self.calls: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self._runlog: RunLog | None = None
        self._runlog_error: ConfigError | None = None
        self._without_cache_folder()
        self._pending: list[dict[str, Any]] = []
        self._pending_rows: list[dict[str, Any]] = []
        self._session_logged = False
        self._flushed_at = time.monotonic()
        self._catalog_loaded = False
        atexit.register(_flush_at_exit, weakref.ref(self))

    @classmethod
    def from_env(cls: type[T]) -> T:
        return cls(Settings.load())  # type: ignore[call-arg]

    @classmethod
    def from_file(cls: type[T], path: str | Path) -> T:
        return cls(Settings.load(path))  # type: ignore[call-arg]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(providers={sorted(self.providers)}, deployments={len(self.catalog.deployments)})"

    @property
    def runlog(self) -> RunLog | None:
        """The SQLite run log (created on first use), or None when ``OC_RUNLOG=off`` or when it cannot be
        used (`runlog_error` says why): calls keep their answers without it."""
        if self._runlog is None and self.settings.runlog is not None and self._runlog_error is None:
            from .runlog import RunLog

            try:
                self._runlog = RunLog(self.settings.runlog)
            except ConfigError as exc:
                self.runlog_failed(exc)
        return self._runlog

    @property
    def runlog_error(self) -> ConfigError | None:
        """The first run-log problem this session met (it names the file and the way out), or None."""
        return self._runlog_error

    def runlog_failed(self, exc: Exception) -> None:
        """Report a run-log failure once per session, as a warning: the log is a record, never a reason to
        lose an answer.  Writes are still tried later (a full disk may recover)."""
        if self._runlog_error is not None:
            log.debug("the run log failed again: %s", exc)
            return
        self._runlog_error = (
            exc if isinstance(exc, ConfigError) else ConfigError(f"the run log {self.settings.runlog} failed: {exc}")
        )
        log.warning("%s", self._runlog_error)

    def _without_cache_folder(self) -> None:
        """An unwritable cache folder (a user without a home) leaves the memory cache and, when the run log
        lives in that folder, no run log: one warning, never a PermissionError."""
        problem, runlog = self.cache.fallback, self.settings.runlog
        if problem is None:
            return
        lost = runlog is not None and runlog.is_relative_to(self.settings.cache_dir)
        if lost:
            self._runlog_error = ConfigError(f"the run log {runlog} is off: {problem}; set OC_CACHE_DIR or OC_RUNLOG")
        without = " and no run log" if lost else ""
        log.warning("%s: using the in-memory cache%s; set OC_CACHE_DIR to a writable folder", problem, without)

    # -- the loop -------------------------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the session's loop and wait (safe inside a running notebook loop).

        A `LabError` arrives without the loop's frames: what went wrong is in the error (its message,
        ``attempts``, ``last``), and IPython hides the frames marked ``__tracebackhide__`` on the way out.
        """
        __tracebackhide__ = True
        try:
            return self.loop.run(coro)
        except LabError as exc:
            raise exc.with_traceback(None) from None

    async def hop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await *coro* on the session's loop from any loop: what every async twin does."""
        return await self.loop.hop(coro)

    # -- resolution -----------------------------------------------------------------------------------------------

    async def aresolve(self, spec: str | Sequence[str] | None) -> list[str]:
        """Resolve *spec* to deployment-group names, loading a provider catalog once if that is what it takes."""
        return await self.hop(self._resolve(spec))

    def resolve(self, spec: str | Sequence[str] | None) -> list[str]:
        return self.run(self._resolve(spec))

    async def _resolve(self, spec: str | Sequence[str] | None) -> list[str]:
        return [g.name for g in await self._groups(spec)]

    async def _groups(self, spec: str | Sequence[str] | None) -> list[ModelGroup]:
        """The groups *spec* resolves to, with catalog data (prices, context) loaded before they matter."""
        if self.catalog_pending():
            try:
                await self._refresh_catalog()
            except LabError as exc:  # a call must not fail for want of prices; cost stays unknown instead
                log.warning("could not load the OpenRouter catalog (prices and context sizes unknown): %s", exc)
        await check_open_ids(self.catalog, self.providers, spec, self.settings.deadline_s)
        return self.catalog.resolve(spec)

    async def aidentities(self, spec: str | Sequence[str] | None) -> list[list[str]]:
        """Who may answer *spec*, group by group, by identity (what the cache key and a run's
        specification record: provider, server or weights, upstream model)."""
        return self._identities(await self.hop(self._groups(spec)))

    def refresh_catalog(self, *, refresh: bool = False) -> None:
        """Add every model OpenRouter lists (from its disk cache when fresh, unless *refresh*) to the catalog."""
        self.run(self._refresh_catalog(refresh=refresh))

    def catalog_pending(self) -> bool:
        """A provider catalog exists that has not been loaded yet."""
        return "openrouter" in self.providers and not self._catalog_loaded

    async def _refresh_catalog(self, *, refresh: bool = False) -> None:
        provider = self.providers.get("openrouter")
        self._catalog_loaded = True
        if provider is None:
            return
        try:  # httpx times out only when no byte arrives: a trickling server must not hang a notebook
            async with asyncio.timeout(self.settings.deadline_s):
                infos = await provider.list_models(refresh=refresh)  # type: ignore[call-arg]
        except TimeoutError:
            raise ProviderTimeout(
                f"the model list did not arrive within {self.settings.deadline_s}s", provider="openrouter"
            ) from None
        self.catalog.set_listed("openrouter", (info.id for info in infos))
        for info in infos:
            dep_id = f"openrouter/{info.id}"
            if dep_id not in self.catalog.deployments:
                self.catalog.add(Deployment(dep_id, "openrouter", info.id))
            self.catalog.update_info(
                dep_id,
                input_price_per_mtok=info.input_price_per_mtok,
                output_price_per_mtok=info.output_price_per_mtok,
                context_length=info.context_length,
                tags=info.tags,
                description=info.description,
            )

    # -- one call -------------------------------------------------------------------------------------------------

    def request(self, prompt: Any, model: Any, options: Mapping[str, Any], where: str) -> ChatRequest:
        """Build a validated request from a call's keywords; an unknown one names the closest valid keyword."""
        reject_unknown(options, (*NAMES, *CALL_OPTIONS), f"keyword of {where}()")
        params = {k: v for k, v in options.items() if k in NAMES}
        return ChatRequest.build(
            prompt, model=model, system=options.get("system"), tools=options.get("tools"), **params
        )

    async def acall(
        self,
        request: ChatRequest,
        *,
        sample: int = 0,
        cache: CachePolicy = CachePolicy.USE,
        fallback: bool = True,
        strategy: str | None = None,
        run_id: str | None = None,
    ) -> ChatResult | LabError:
        """One request through cache and router, recorded; a failure is returned, never raised."""
        return await self.hop(self._call(request, sample, cache, fallback, strategy, run_id or self.session_run_id))

    async def achat(self, prompt: Any, model: str | Sequence[str] | None = None, **options: Any) -> ChatResult:
        """Ask one prompt; with a list of models, failing over across the list is the point.

        Options: ``system``, ``tools`` (declarations or functions the model may call; the result's
        ``tool_calls`` say which it called), ``cache`` (True, False or ``"refresh"``), ``fallback``, ``strategy``,
        ``sample`` (repeated draws of one request are cached under their own index) and the
        request parameters (``temperature``, ``max_tokens``, ``seed``, ``top_p``, ``stop``).
        """
        request = self.request(prompt, model, options, "chat")
        outcome = await self.acall(
            request,
            sample=options.get("sample", 0),
            cache=CachePolicy.of(options.get("cache", True)),
            fallback=options.get("fallback", True),
            strategy=options.get("strategy"),
        )
        if isinstance(outcome, LabError):
            raise outcome
        return outcome

    def chat(self, prompt: Any, model: str | Sequence[str] | None = None, **options: Any) -> ChatResult:
        """Synchronous `achat`; safe inside a running notebook event loop."""
        __tracebackhide__ = True
        return self.run(self.achat(prompt, model, **options))

    async def _call(
        self,
        request: ChatRequest,
        sample: int,
        cache: CachePolicy,
        fallback: bool,
        strategy: str | None,
        run_id: str,
    ) -> ChatResult | LabError:
        request_id = _new_id("q")
        request = request.for_sample(sample)
        spec = self.catalog.spec_name(request.model)
        who = _identity(request, sample, "chat") if run_id == self.session_run_id else {}  # a compare has its rows
        started, wall = time.perf_counter(), time.time()
        try:
            groups = await self._groups(request.model)
            refuse_unsupported(request, groups)
            key = self._cache_key(request, groups, sample, fallback, cache)
            hit = self.cache.get(key) if key and cache is CachePolicy.USE else None
            if hit is not None:
                return self._from_cache(hit, spec, run_id, request_id, wall, who)
            routed = await self.router.complete(request, request_id, fallback=fallback, strategy=strategy)
        except LabError as exc:
            return self._fail(exc, spec, run_id, request_id, started, who)
        return self._succeeded(routed, spec, run_id, request_id, key, who, streamed=False)

    def _cache_key(
        self, request: ChatRequest, groups: list[ModelGroup], sample: int, fallback: bool, cache: CachePolicy
    ) -> str:
        """The key names what may answer, by identity (provider, server or weights, upstream model), never by
        alias: re-pointing a name is a miss.  Without fallback only the first group may answer, so an answer
        another model gave (cached by a fallback call) must not be found."""
        if not self.cache.enabled or cache is CachePolicy.OFF:
            return ""
        return canonical_key(request, self._identities(groups if fallback else groups[:1]), sample)

    def _identities(self, groups: Sequence[ModelGroup]) -> list[list[str]]:
        return [sorted(self.providers[d.provider].identity(d.upstream) for d in g.deployments) for g in groups]

    def _succeeded(
        self, routed: Routed, spec: str, run_id: str, request_id: str, key: str, who: dict[str, Any], *, streamed: bool
    ) -> ChatResult:
        """Turn a routed completion into the result, store it under *key* (if any) and record it."""
        result = self._result(routed, spec, request_id, streamed)
        if key:
            self.cache.put(key, _cache_value(result))
        self._record(result, run_id, who)
        return result

    def _result(self, routed: Routed, spec: str, request_id: str, streamed: bool) -> ChatResult:
        """``latency_s`` is the answering attempt's own time: waits for limits, back-off and retries are not
        the model's latency (they are in ``attempts``).  ``ttft_s`` exists only for a streamed answer: for
        a whole response it would be the latency again under another name."""
        completion, dep = routed.completion, routed.deployment
        cost, source = self._cost(completion, dep)
        return ChatResult(
            text=completion.text,
            model=spec,
            served_by=dep.id,
            provider=dep.provider,
            finish_reason=completion.finish_reason,
            tool_calls=completion.tool_calls,
            latency_s=routed.attempts[-1].latency_s,
            ttft_s=completion.ttft_s if streamed else None,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            cost_usd=cost,
            cost_source=source,
            attempts=tuple(routed.attempts),
            request_id=request_id,
        )

    def _cost(self, completion: Completion, dep: Deployment) -> tuple[float, str]:
        """Provider-reported cost, else catalog price x tokens, else NaN: never a made-up zero."""
        if dep.provider == "local":
            return 0.0, "local"
        if completion.usage.cost_usd is not None and self.providers[dep.provider].reports_cost:
            return completion.usage.cost_usd, "provider"
        priced = dep.cost_usd(completion.usage.input_tokens, completion.usage.output_tokens)
        return (priced, "catalog") if priced is not None else (math.nan, "unknown")

    def _from_cache(
        self, hit: dict[str, Any], spec: str, run_id: str, request_id: str, wall: float, who: dict[str, Any]
    ) -> ChatResult:
        """A cached answer with the original call's measurements: a warm rerun reproduces its statistics.
        Nothing is paid; what the original call cost is what the hit saved."""
        result = ChatResult(
            text=hit["text"],
            model=spec,
            served_by=hit["served_by"],
            provider=hit["provider"],
            finish_reason=hit.get("finish_reason"),
            tool_calls=tuple(ToolCall(**call) for call in hit.get("tool_calls", ())),
            latency_s=hit.get("latency_s", math.nan),
            ttft_s=hit.get("ttft_s"),
            input_tokens=hit.get("input_tokens"),
            output_tokens=hit.get("output_tokens"),
            cost_usd=0.0,
            cost_source=hit.get("cost_source", "unknown"),
            cost_saved_usd=hit.get("cost_usd", math.nan),
            cached=True,
            request_id=request_id,
        )
        self._record(result, run_id, who, wall=wall)
        return result

    def _fail(
        self, exc: LabError, spec: str, run_id: str, request_id: str, started: float, who: dict[str, Any]
    ) -> LabError:
        row = result_row(exc, model=spec, run_id=run_id, latency_s=time.perf_counter() - started, **who)
        self._keep(row, run_id, request_id)
        self._log_records([attempt_record(attempt, run_id, request_id) for attempt in exc.attempts])
        return exc

    def _record(self, result: ChatResult, run_id: str, who: dict[str, Any], *, wall: float | None = None) -> None:
        self._keep(result_row(result, run_id=run_id, **who), run_id, result.request_id)
        self._log_records(call_records(result, run_id, wall or time.time()))

    def _keep(self, row: dict[str, Any], run_id: str, request_id: str) -> None:
        """Keep a call's results row for the session; one outside a compare (whose rows are saved by the
        compare, under its run) also goes to the run log, keyed by its request id, with the next batch."""
        self.calls.append(row)
        if run_id == self.session_run_id:
            self._pending_rows.append({**row, "prompt_id": request_id})

    def _log_records(self, records: list[dict[str, Any]]) -> None:
        """Keep *records* for the session at once; write them to the run log in batches (a transaction per
        call would cost more than the call's own bookkeeping) at least every second."""
        self.records.extend(records)
        self._pending.extend(records)
        if len(self._pending) >= 200 or time.monotonic() - self._flushed_at >= 1.0:
            self.flush()

    def flush(self) -> None:
        """Write pending results rows (of calls outside a compare) and attempt records to the run log."""
        pending, self._pending = self._pending, []
        rows, self._pending_rows = self._pending_rows, []
        self._flushed_at = time.monotonic()
        if not pending and not rows:
            return
        runlog = self.runlog
        if runlog is not None:
            try:
                if rows and not self._session_logged:
                    runlog.start_run(meta={"kind": "session"}, run_id=self.session_run_id)
                    self._session_logged = True
                if rows:
                    runlog.save_results(self.session_run_id, rows)
                runlog.append_attempts(pending)
            except Exception as exc:  # the run log must never break a call
                self.runlog_failed(exc)

    # -- streaming ------------------------------------------------------------------------------------------------

    async def astream(
        self, prompt: Any, model: str | Sequence[str] | None = None, **options: Any
    ) -> AsyncIterator[str]:
        """Yield text deltas as they arrive; a cached answer arrives as one delta."""
        async for item in self.astream_events(prompt, model, **options):
            if isinstance(item, str):
                yield item

    def stream(self, prompt: Any, model: str | Sequence[str] | None = None, **options: Any) -> Iterator[str]:
        """Synchronous `astream`: iterate to get text deltas as they arrive."""
        __tracebackhide__ = True
        for item in self.stream_events(prompt, model, **options):
            if isinstance(item, str):
                yield item

    async def astream_events(
        self, prompt: Any, model: str | Sequence[str] | None = None, **options: Any
    ) -> AsyncIterator[str | ChatResult]:
        """Deltas, then the final `ChatResult`: what a display that updates in place needs."""
        request = self.request(prompt, model, options, "stream")
        async for item in self.loop.hop_iter(self._stream(request, options)):
            yield item

    def stream_events(
        self, prompt: Any, model: str | Sequence[str] | None = None, **options: Any
    ) -> Iterator[str | ChatResult]:
        """Synchronous `astream_events`."""
        request = self.request(prompt, model, options, "stream")
        return _without_loop_frames(self.loop.iterate(self._stream(request, options)))

    async def _stream(self, request: ChatRequest, options: Mapping[str, Any]) -> AsyncIterator[str | ChatResult]:
        cache, sample = CachePolicy.of(options.get("cache", True)), options.get("sample", 0)
        fallback, strategy = options.get("fallback", True), options.get("strategy")
        request = request.for_sample(sample)
        spec = self.catalog.spec_name(request.model)
        run_id, request_id = self.session_run_id, _new_id("q")
        who = _identity(request, sample, "stream")
        started, wall = time.perf_counter(), time.time()
        groups = await self._groups(request.model)
        refuse_unsupported(request, groups)
        key = self._cache_key(request, groups, sample, fallback, cache)
        hit = self.cache.get(key) if key and cache is CachePolicy.USE else None
        if hit is not None:
            result = self._from_cache(hit, spec, run_id, request_id, wall, who)
            yield result.text
            yield result
            return
        routed: list[Routed] = []
        try:
            async for chunk in self.router.stream(
                request, request_id, fallback=fallback, strategy=strategy, routed=routed
            ):
                if chunk.delta:
                    yield chunk.delta
        except LabError as exc:
            raise self._fail(exc, spec, run_id, request_id, started, who) from None
        yield self._succeeded(routed[0], spec, run_id, request_id, key, who, streamed=True)

    def reset(self, deployment: str | Sequence[str] | None = None) -> list[str]:
        """End 429 pauses and close circuit breakers of *deployment* (an id or any model spec; None = all),
        e.g. after fixing a server; returns the deployment ids reset."""

        async def reset() -> list[str]:  # limiters and breakers belong to the session's loop
            return self.router.reset(deployment)

        return self.run(reset())

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the run log, close pooled connections and unload local models; idempotent."""
        self.flush()

        async def shutdown() -> None:
            for provider in self.providers.values():
                await provider.aclose()

        try:
            self.run(shutdown())
        finally:
            self.loop.close()
            if self._runlog is not None:
                self._runlog.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _without_loop_frames(items: Iterator[T]) -> Iterator[T]:
    """*items*, with a `LabError` raised as `Session.run` raises it."""
    __tracebackhide__ = True
    try:
        yield from items
    except LabError as exc:
        raise exc.with_traceback(None) from None


def _flush_at_exit(ref: weakref.ref[Session]) -> None:
    """Records still waiting for their batch reach the run log when the interpreter (kernel) exits."""
    session = ref()
    if session is not None:
        session.flush()


def _configure_logging(level: str) -> None:
    """Apply ``LOG_LEVEL`` to the package's loggers; add a redacting stderr handler if nobody configured one."""
    package = logging.getLogger("opencode_lab")
    package.setLevel(level)
    if not package.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.addFilter(RedactingFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)


def _cache_value(result: ChatResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "served_by": result.served_by,
        "provider": result.provider,
        "finish_reason": result.finish_reason,
        "tool_calls": [call.to_dict() for call in result.tool_calls],
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "cost_source": result.cost_source,
        "latency_s": result.latency_s,
        "ttft_s": result.ttft_s,
        "stored_at": time.time(),
    }


def _identity(request: ChatRequest, sample: int, via: str) -> dict[str, Any]:
    """What a results row of a chat or stream call says about its request: the last user turn as the
    prompt, the system prompt, the parameters set, the sample, the way and the time it was asked."""
    prompt, system = "", None
    for message in request.messages:
        if message.role == "user":
            prompt = message.content
        elif message.role == "system" and system is None:
            system = message.content
    return {
        "prompt": prompt, "system": system, "params": request.params.payload(), "sample": sample, "via": via,
        "asked_at": time.time(),
    }  # fmt: skip


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
