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
from ..core.errors import ConfigError, InvalidRequestError, LabError, ModelNotFoundError, ProviderTimeout
from ..core.params import NAMES, reject_unknown
from ..core.secrets import RedactingFilter, get_logger
from ..core.types import ChatRequest, ChatResult, Completion
from ..providers.base import Provider
from ..routing.backoff import RetryPolicy
from ..routing.catalog import Catalog
from ..routing.router import BreakerSettings, Routed, Router
from ..routing.strategies import make_strategy
from .build import build_providers, catalog_models
from .cache import CachePolicy, ResponseCache, canonical_key
from .loop import LoopThread
from .records import attempt_record, call_records, result_row

if TYPE_CHECKING:
    from .runlog import RunLog

log = get_logger(__name__)
T = TypeVar("T")

#: the keywords of `Session.achat` / `astream` besides the request parameters of `opencode_lab.core.params`
CALL_OPTIONS: tuple[str, ...] = ("system", "cache", "fallback", "strategy", "sample")


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
        self._pending: list[dict[str, Any]] = []
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
        """The SQLite run log (created on first use), or None when ``OC_RUNLOG=off``."""
        if self._runlog is None and self.settings.runlog is not None:
            from .runlog import RunLog

            self._runlog = RunLog(self.settings.runlog)
        return self._runlog

    # -- the loop -------------------------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the session's loop and wait (safe inside a running notebook loop)."""
        return self.loop.run(coro)

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
        try:
            return [g.name for g in self.catalog.resolve(spec)]
        except ModelNotFoundError:
            if self._catalog_loaded or "openrouter" not in self.providers:
                raise
        await self._refresh_catalog()
        return [g.name for g in self.catalog.resolve(spec)]

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
        return ChatRequest.build(prompt, model=model, system=options.get("system"), **params)

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

        Options: ``system``, ``cache`` (True, False or ``"refresh"``), ``fallback``, ``strategy``,
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
        spec = self.catalog.spec_name(request.model)
        started, wall = time.perf_counter(), time.time()
        try:
            key = self._cache_key(request, await self._resolve(request.model), sample, fallback, cache)
            hit = self.cache.get(key) if key and cache is CachePolicy.USE else None
            if hit is not None:
                return self._from_cache(hit, spec, run_id, request_id, started, wall)
            routed = await self.router.complete(request, request_id, fallback=fallback, strategy=strategy)
        except LabError as exc:
            return self._fail(exc, spec, run_id, request_id, started)
        return self._succeeded(routed, spec, run_id, request_id, key)

    def _cache_key(
        self, request: ChatRequest, resolved: list[str], sample: int, fallback: bool, cache: CachePolicy
    ) -> str:
        """Without fallback only the first model may answer, so an answer another model gave (cached by a
        fallback call) must not be found: the key names exactly the models allowed to answer."""
        if not self.cache.enabled or cache is CachePolicy.OFF:
            return ""
        return canonical_key(request, resolved if fallback else resolved[:1], sample)

    def _succeeded(self, routed: Routed, spec: str, run_id: str, request_id: str, key: str) -> ChatResult:
        """Turn a routed completion into the result, store it under *key* (if any) and record it."""
        result = self._result(routed, spec, request_id)
        if key:
            self.cache.put(key, _cache_value(result))
        self._record(result, run_id)
        return result

    def _result(self, routed: Routed, spec: str, request_id: str) -> ChatResult:
        """``latency_s`` is the answering attempt's own time: waits for limits, back-off and retries are not
        the model's latency (they are in ``attempts``)."""
        completion, dep = routed.completion, routed.deployment
        cost, source = self._cost(completion, dep)
        return ChatResult(
            text=completion.text,
            model=spec,
            served_by=dep.id,
            provider=dep.provider,
            finish_reason=completion.finish_reason,
            latency_s=routed.attempts[-1].latency_s,
            ttft_s=completion.ttft_s,
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
        self, hit: dict[str, Any], spec: str, run_id: str, request_id: str, started: float, wall: float
    ) -> ChatResult:
        result = ChatResult(
            text=hit["text"],
            model=spec,
            served_by=hit["served_by"],
            provider=hit["provider"],
            finish_reason=hit.get("finish_reason"),
            latency_s=time.perf_counter() - started,
            ttft_s=None,
            input_tokens=hit.get("input_tokens"),
            output_tokens=hit.get("output_tokens"),
            cost_usd=0.0,
            cost_source=hit.get("cost_source", "unknown"),
            cost_saved_usd=hit.get("cost_usd", math.nan),
            cached=True,
            request_id=request_id,
        )
        self._record(result, run_id, wall=wall)
        return result

    def _fail(self, exc: LabError, spec: str, run_id: str, request_id: str, started: float) -> LabError:
        self.calls.append(result_row(exc, model=spec, run_id=run_id, latency_s=time.perf_counter() - started))
        self._log_records([attempt_record(attempt, run_id, request_id) for attempt in exc.attempts])
        return exc

    def _record(self, result: ChatResult, run_id: str, *, wall: float | None = None) -> None:
        self.calls.append(result_row(result, run_id=run_id))
        self._log_records(call_records(result, run_id, wall or time.time()))

    def _log_records(self, records: list[dict[str, Any]]) -> None:
        """Keep *records* for the session at once; write them to the run log in batches (a transaction per
        call would cost more than the call's own bookkeeping) at least every second."""
        self.records.extend(records)
        self._pending.extend(records)
        if len(self._pending) >= 200 or time.monotonic() - self._flushed_at >= 1.0:
            self.flush()

    def flush(self) -> None:
        """Write pending attempt records to the run log."""
        pending, self._pending = self._pending, []
        self._flushed_at = time.monotonic()
        if not pending:
            return
        runlog = self.runlog
        if runlog is not None:
            try:
                runlog.append_attempts(pending)
            except Exception as exc:  # the run log must never break a call
                log.warning("could not write the run log: %s", exc)

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
        return self.loop.iterate(self._stream(request, options))

    async def _stream(self, request: ChatRequest, options: Mapping[str, Any]) -> AsyncIterator[str | ChatResult]:
        cache, sample = CachePolicy.of(options.get("cache", True)), options.get("sample", 0)
        fallback, strategy = options.get("fallback", True), options.get("strategy")
        spec = self.catalog.spec_name(request.model)
        run_id, request_id = self.session_run_id, _new_id("q")
        started, wall = time.perf_counter(), time.time()
        key = self._cache_key(request, await self._resolve(request.model), sample, fallback, cache)
        hit = self.cache.get(key) if key and cache is CachePolicy.USE else None
        if hit is not None:
            result = self._from_cache(hit, spec, run_id, request_id, started, wall)
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
            raise self._fail(exc, spec, run_id, request_id, started) from None
        yield self._succeeded(routed[0], spec, run_id, request_id, key)

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
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "cost_source": result.cost_source,
        "latency_s": result.latency_s,
        "stored_at": time.time(),
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
