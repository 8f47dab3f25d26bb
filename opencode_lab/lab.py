"""The Lab: settings, providers, catalog, router, cache and run log behind one object.

Every front end (module functions, magics, CLI) talks to a Lab and nothing
below it.  The Lab owns a background event loop (`_loop.LoopThread`) so the
synchronous calls work inside a running Jupyter kernel; ``achat``/``acompare``
are the async twins over the same coroutines.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import math
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._loop import LoopThread
from ._secrets import RedactingFilter, get_logger
from .cache import ResponseCache, canonical_key
from .catalog import Catalog, Deployment
from .config import Settings
from .errors import LabError, ModelNotFoundError, ProviderTimeout, error_type_of
from .metrics import attempt_record, cache_hit_record, result_row
from .policies.backoff import RetryPolicy
from .providers.base import Provider
from .providers.local import LocalProvider, bundled_models, local_model_from_path
from .providers.openai_compat import OpenAICompatibleProvider
from .providers.openrouter import OpenRouterProvider
from .router import BreakerSettings, Routed, Router
from .types import ChatRequest, ChatResult, Completion

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .runlog import RunLog

log = get_logger(__name__)


@dataclass
class _Outcome:
    """A finished call as the Lab records it: a result or the error that replaced it."""

    result: ChatResult | None
    error: LabError | None


class Lab:
    """A configured session: ``Lab.from_env()``, ``Lab.from_file(path)`` or ``Lab(settings)``."""

    def __init__(self, settings: Settings | None = None, *, providers: Mapping[str, Provider] | None = None) -> None:
        self.settings = settings or Settings.load()
        _configure_logging(self.settings.log_level)
        self.providers: dict[str, Provider] = {}
        self.catalog = Catalog()
        self._loop = LoopThread()
        self._build(providers or {})
        self.router = Router(
            self.catalog,
            self.providers,
            strategy=self.settings.strategy,
            retry=RetryPolicy(max_retries=self.settings.max_retries, deadline_s=self.settings.deadline_s),
            max_candidates=self.settings.agent_max_iter,
            rate_window_s=self.settings.rate_window_s,
            breaker=BreakerSettings(
                consecutive_failures=self.settings.breaker_failures, cooldown_s=self.settings.breaker_cooldown_s
            ),
        )
        self.cache = ResponseCache(self.settings.cache_mode, self.settings.cache_dir, self.settings.cache_ttl_ms)
        self._runlog: RunLog | None = None
        self.records: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.session_run_id = _new_id("s")
        self._pending: list[dict[str, Any]] = []
        self._flushed_at = time.monotonic()
        atexit.register(_flush_at_exit, weakref.ref(self))
        self._catalog_loaded = False

    @classmethod
    def from_env(cls) -> Lab:
        return cls(Settings.load())

    @classmethod
    def from_file(cls, path: str | Path) -> Lab:
        return cls(Settings.load(path))

    def __repr__(self) -> str:
        return f"Lab(providers={sorted(self.providers)}, deployments={len(self.catalog.deployments)})"

    # -- construction -------------------------------------------------------------------------------------------

    def _build(self, extra: Mapping[str, Provider]) -> None:
        s = self.settings
        local_models = bundled_models(s.cache_dir) if importlib.util.find_spec("llama_cpp") else []
        for dep in s.deployments:
            if dep.provider == "local" and dep.path:
                local_models.append(
                    local_model_from_path(
                        dep.upstream, dep.path, chat="base" not in dep.tags, context_length=dep.context_length
                    )
                )
        if local_models:
            self.providers["local"] = LocalProvider(local_models)
            for m in local_models:
                # one in flight: a llama.cpp model answers one prompt at a time, and queueing inside the
                # provider would count as latency
                self.catalog.add(
                    Deployment(
                        f"local/{m.name}",
                        "local",
                        m.name,
                        0.0,
                        0.0,
                        m.context_length,
                        max_in_flight=1,
                        tags=m.tags,
                        description=m.description,
                    )
                )
        if s.openrouter_api_key or s.openrouter_model_list:
            self.providers["openrouter"] = OpenRouterProvider(
                s.openrouter_base_url,
                api_key=s.openrouter_api_key,
                timeout_s=s.timeout_s,
                catalog_path=s.cache_dir / "openrouter_models.json",
            )
            for model in s.openrouter_model_list:
                self.catalog.add(Deployment(f"openrouter/{model}", "openrouter", model))
        if s.openai_api_key:
            self.providers["openai"] = OpenAICompatibleProvider(
                "openai", s.openai_base_url, api_key=s.openai_api_key, timeout_s=s.timeout_s
            )
        for name, spec in s.providers.items():
            self.providers[name] = OpenAICompatibleProvider(
                name, spec.base_url, api_key=spec.api_key, headers=dict(spec.headers), timeout_s=s.timeout_s
            )
            for model in spec.models:
                self.catalog.add(Deployment(f"{name}/{model}", name, model))
        self.providers.update(extra)
        for dep in s.deployments:
            if dep.provider not in self.providers:
                raise LabError(
                    f"[models.{dep.model}] names provider {dep.provider!r}, which is not configured "
                    f"(known: {', '.join(sorted(self.providers)) or 'none'})"
                )
            self.catalog.add(
                Deployment(
                    f"{dep.provider}/{dep.upstream}",
                    dep.provider,
                    dep.upstream,
                    dep.input_price_per_mtok,
                    dep.output_price_per_mtok,
                    dep.context_length,
                    dep.weight,
                    dep.rpm,
                    dep.tpm,
                    dep.max_in_flight,
                    dep.tags,
                ),
                model=dep.model,
            )
        self.catalog.aliases.update(s.aliases)
        pool = s.openrouter_model_list and tuple(f"openrouter/{m}" for m in s.openrouter_model_list)
        self.catalog.pool = pool or s.default_models or tuple(d.id for d in self.catalog.tagged("local"))

    @property
    def runlog(self) -> RunLog | None:
        """The SQLite run log (created on first use), or None when ``OC_RUNLOG=off``."""
        if self._runlog is None and self.settings.runlog is not None:
            from .runlog import RunLog

            self._runlog = RunLog(self.settings.runlog)
        return self._runlog

    # -- resolution ---------------------------------------------------------------------------------------------

    async def aresolve(self, spec: str | Sequence[str] | None) -> list[str]:
        """Resolve *spec* to deployment-group names, loading a provider catalog once if that is what it takes."""
        try:
            return [g.name for g in self.catalog.resolve(spec)]
        except ModelNotFoundError:
            if self._catalog_loaded or "openrouter" not in self.providers:
                raise
        await self.arefresh_catalog()
        return [g.name for g in self.catalog.resolve(spec)]

    async def arefresh_catalog(self, *, refresh: bool = False) -> None:
        """Add every model OpenRouter lists (from its disk cache when fresh) to the catalog."""
        provider = self.providers.get("openrouter")
        self._catalog_loaded = True
        if not isinstance(provider, OpenRouterProvider):
            return
        try:  # httpx times out only when no byte arrives: a trickling server must not hang a notebook
            async with asyncio.timeout(self.settings.deadline_s):
                infos = await provider.list_models(refresh=refresh)
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

    def resolve(self, spec: str | Sequence[str] | None) -> list[str]:
        return self._loop.run(self.aresolve(spec))

    # -- chat -------------------------------------------------------------------------------------------------

    async def achat(
        self,
        prompt: str | Sequence[Mapping[str, str]],
        model: str | Sequence[str] | None = None,
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] | None = None,
        cache: bool | str = True,
        fallback: bool = True,
        strategy: str | None = None,
        sample: int = 0,
    ) -> ChatResult:
        """Ask one prompt; with a list of models, failing over across the list is the point.

        ``sample`` numbers repeated draws of the same request: each is cached under its own index.
        """
        request = ChatRequest.build(
            prompt,
            model=model,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            top_p=top_p,
            stop=stop,
        )
        outcome = await self._call(request, sample=sample, cache=cache, fallback=fallback, strategy=strategy)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None
        return outcome.result

    def chat(
        self, prompt: str | Sequence[Mapping[str, str]], model: str | Sequence[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        """Synchronous `achat`; safe inside a running notebook event loop."""
        return self._loop.run(self.achat(prompt, model, **kwargs))

    async def _call(
        self,
        request: ChatRequest,
        *,
        sample: int,
        cache: bool | str,
        fallback: bool,
        strategy: str | None = None,
        run_id: str | None = None,
    ) -> _Outcome:
        """One request through cache and router; never raises a `LabError`, returns it instead."""
        run_id = run_id or self.session_run_id
        request_id = _new_id("q")
        spec = self.catalog.spec_name(request.model)
        started, wall = time.perf_counter(), time.time()
        try:
            resolved = await self.aresolve(request.model)
        except LabError as exc:
            return self._fail(exc, spec, run_id, request_id, started)
        key = self._cache_key(request, resolved, sample, fallback)
        if cache is True and key:
            hit = self.cache.get(key)
            if hit is not None:
                return _Outcome(self._from_cache(hit, spec, run_id, request_id, started, wall), None)
        try:
            routed = await self.router.complete(request, request_id, fallback=fallback, strategy=strategy)
        except LabError as exc:
            return self._fail(exc, spec, run_id, request_id, started)
        return _Outcome(self._succeeded(routed, spec, run_id, request_id, key if cache is not False else ""), None)

    def _succeeded(self, routed: Routed, spec: str, run_id: str, request_id: str, key: str) -> ChatResult:
        """Turn a routed completion into the result, store it under *key* (if any) and record it."""
        result = self._result(routed, spec, request_id)
        if key:
            self.cache.put(key, _cache_value(result, routed.completion))
        self._record(result, run_id)
        return result

    def _cache_key(self, request: ChatRequest, resolved: list[str], sample: int, fallback: bool) -> str:
        """Without fallback only the first model may answer, so an answer another model gave (cached by a
        fallback call) must not be found: the key names exactly the models allowed to answer."""
        if not self.cache.enabled:
            return ""
        return canonical_key(request, resolved if fallback else resolved[:1], sample)

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

    def _fail(self, exc: LabError, spec: str, run_id: str, request_id: str, started: float) -> _Outcome:
        row = {
            "run_id": run_id,
            "model": spec,
            "served_by": None,
            "latency_s": time.perf_counter() - started,
            "cached": False,
            "attempts": len(exc.attempts),
            "error_type": error_type_of(exc),
            "error": str(exc),
            "cost_usd": math.nan,
            "cost_source": "unknown",
            "cost_saved_usd": 0.0,
        }
        self.calls.append(row)
        self._log_records([attempt_record(attempt, run_id, request_id) for attempt in exc.attempts])
        return _Outcome(None, exc)

    def _record(self, result: ChatResult, run_id: str, *, wall: float | None = None) -> None:
        row = result_row(result)
        row["run_id"] = run_id
        self.calls.append(row)
        records = [cache_hit_record(result, run_id, wall or time.time())] if result.cached else []
        for attempt in result.attempts:
            record = attempt_record(attempt, run_id, result.request_id)
            if attempt.status == "ok":
                record.update(
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    cost_usd=result.cost_usd,
                    cost_source=result.cost_source,
                )
            records.append(record)
        self._log_records(records)

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

    # -- streaming ----------------------------------------------------------------------------------------------

    async def astream(
        self,
        prompt: str | Sequence[Mapping[str, str]],
        model: str | Sequence[str] | None = None,
        *,
        cache: bool | str = True,
        **kwargs: Any,
    ) -> AsyncIterator[str]:
        """Yield text deltas as they arrive; a cached answer arrives as one delta."""
        async for item in self._astream_events(prompt, model, cache=cache, **kwargs):
            if isinstance(item, str):
                yield item

    async def _astream_events(
        self,
        prompt: Any,
        model: Any,
        *,
        cache: bool | str = True,
        fallback: bool = True,
        strategy: str | None = None,
        sample: int = 0,
        **params: Any,
    ) -> AsyncIterator[str | ChatResult]:
        """Deltas, then the final `ChatResult` (the shared core of `stream` and the magics)."""
        request = ChatRequest.build(prompt, model=model, **params)
        spec = self.catalog.spec_name(request.model)
        run_id, request_id = self.session_run_id, _new_id("q")
        started, wall = time.perf_counter(), time.time()
        resolved = await self.aresolve(request.model)
        key = self._cache_key(request, resolved, sample, fallback)
        hit = self.cache.get(key) if cache is True and key else None
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
            self._fail(exc, spec, run_id, request_id, started)
            raise
        yield self._succeeded(routed[0], spec, run_id, request_id, key if cache is not False else "")

    def stream(
        self, prompt: str | Sequence[Mapping[str, str]], model: str | Sequence[str] | None = None, **kwargs: Any
    ) -> Iterator[str]:
        """Synchronous `astream`: iterate to get text deltas as they arrive."""
        return self._loop.iterate(self.astream(prompt, model, **kwargs))

    def stream_events(self, prompt: Any, model: Any = None, **kwargs: Any) -> Iterator[str | ChatResult]:
        """Deltas followed by the final `ChatResult`: what a display that updates in place needs."""
        return self._loop.iterate(self._astream_events(prompt, model, **kwargs))

    # -- frames -------------------------------------------------------------------------------------------------

    def compare(self, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
        """Every prompt x model x sample as one row of a DataFrame; see `opencode_lab.frame.compare`."""
        from .frame import compare

        return compare(self, prompts, models, **kwargs)

    async def acompare(self, prompts: Any, models: str | Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
        from .frame import acompare

        return await acompare(self, prompts, models, **kwargs)

    def stats(self, results: pd.DataFrame | None = None, by: str | Sequence[str] = "model") -> pd.DataFrame:
        """Per-model latency, cost and failure summary of *results* (default: every call of this session)."""
        from .metrics import results_frame, summarize

        self.flush()
        return summarize(results if results is not None else results_frame(self.calls), by=by)

    def models(self, filter: str | None = None, *, tag: str | None = None, refresh: bool = False) -> pd.DataFrame:
        """The catalog as a DataFrame, with each deployment's health state."""
        from .frame import models_frame

        if refresh or ("openrouter" in self.providers and not self._catalog_loaded):
            try:
                self._loop.run(self.arefresh_catalog(refresh=refresh))
            except LabError as exc:
                log.warning("could not load the OpenRouter catalog: %s", exc)
        return models_frame(self, filter, tag)

    def health(self) -> pd.DataFrame:
        """State of every deployment: circuit, success rate, p50 latency, last error, pause."""
        from .frame import health_frame

        return health_frame(self)

    def health_check(self) -> pd.DataFrame:
        """Actively probe every provider's ``/models`` and report which answered."""
        from .frame import health_check

        return self._loop.run(health_check(self))

    def plot(self, data: pd.DataFrame | None = None, kind: str = "overview", **kwargs: Any) -> Figure:
        from .plots import plot

        return plot(data if data is not None else self.stats(), kind, **kwargs)

    def runs(self) -> pd.DataFrame:
        runlog = self._require_runlog()
        return runlog.runs()

    def load_run(self, run: str) -> pd.DataFrame:
        return self._require_runlog().load_run(run)

    def _require_runlog(self) -> RunLog:
        self.flush()
        runlog = self.runlog
        if runlog is None:
            raise LabError("the run log is off (OC_RUNLOG=off); set OC_RUNLOG to a path to keep runs")
        return runlog

    def attempts(self) -> pd.DataFrame:
        """Every attempt of this session (one row per try, failed or not)."""
        from .metrics import attempts_frame

        self.flush()
        return attempts_frame(self.records)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the run log, close pooled connections and unload local models."""
        self.flush()

        async def shutdown() -> None:
            for provider in self.providers.values():
                await provider.aclose()

        try:
            self._loop.run(shutdown())
        finally:
            self._loop.close()
            if self._runlog is not None:
                self._runlog.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _flush_at_exit(ref: weakref.ref[Lab]) -> None:
    """Records still waiting for their batch reach the run log when the interpreter (kernel) exits."""
    lab = ref()
    if lab is not None:
        lab.flush()


def _configure_logging(level: str) -> None:
    """Apply ``LOG_LEVEL`` to the package's loggers; add a redacting stderr handler if nobody configured one."""
    package = logging.getLogger("opencode_lab")
    package.setLevel(level)
    if not package.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.addFilter(RedactingFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)


def _cache_value(result: ChatResult, completion: Completion) -> dict[str, Any]:
    return {
        "text": result.text,
        "upstream_model": completion.model,
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
