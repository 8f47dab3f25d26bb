"""The session: one request at a time through cache, router and records, on the one loop that owns them.

`Session` is orchestration only.  It is built from `Settings` (`build.py` makes the
providers and the catalog), owns the event loop every connection, limiter and
breaker is bound to (`loop.py`), and turns each call into a `ChatResult` (`records.py`) plus
attempt records that its journal (`journal.py`) writes to the run log in batches.  The
DataFrame API (`opencode_lab.Lab`) is built on its public methods.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from ..core.config import Settings
from ..core.errors import ConfigError, InvalidRequestError, LabError
from ..core.params import NAMES, reject_unknown
from ..core.secrets import RedactingFilter, get_logger
from ..core.types import ChatRequest, ChatResult, Message
from ..providers.base import Provider
from ..routing.backoff import RetryPolicy
from ..routing.catalog import Catalog
from ..routing.router import BreakerSettings, Router
from ..routing.strategies import make_strategy
from .build import build_providers, catalog_models
from .cache import CachePolicy, ResponseCache
from .calls import Calls, new_id
from .journal import Journal
from .keeping import runlog_options
from .loop import LoopThread
from .resolver import Resolver
from .spending import SpendingGuard

if TYPE_CHECKING:
    from .runlog import RunLog

log = get_logger(__name__)
T = TypeVar("T")

#: what a chat or a stream asks: text, or a conversation of messages (a `Message` or its dict form)
Prompt: TypeAlias = "str | Sequence[Message | Mapping[str, object]]"

#: the keywords of `Session.achat` / `astream` besides the request parameters of `opencode_lab.core.params`
CALL_OPTIONS: tuple[str, ...] = ("system", "tools", "cache", "fallback", "strategy", "sample")


class Session:
    """A configured session: ``from_env()``, ``from_file(path)`` or ``(settings, providers=...)``."""

    def __init__(
        self, settings: Settings | None = None, *, providers: Mapping[str, Provider] | None = None, **unknown: Any
    ) -> None:
        reject_unknown(unknown, ("settings", "providers"), f"keyword of {type(self).__name__}()")
        if settings is not None and not isinstance(settings, Settings):
            raise ConfigError(
                f"{type(self).__name__}() takes Settings, not {type(settings).__name__}; for a TOML file use "
                f"{type(self).__name__}.from_file(path)"
            )
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
            home_region=s.home_region,
            breaker=BreakerSettings(
                consecutive_failures=s.breaker_failures,
                failure_rate=s.breaker_failure_rate,
                window=s.breaker_window,
                min_calls=s.breaker_min_calls,
                cooldown_s=s.breaker_cooldown_s,
            ),
        )
        # privacy mode keeps no answer on disk: the file cache becomes the in-memory one
        cache_mode = "memory" if s.privacy and s.cache_mode == "file" else s.cache_mode
        self.cache = ResponseCache(cache_mode, s.cache_dir, s.cache_ttl_ms)
        self.loop = LoopThread()
        self.session_run_id = new_id("s")
        keeping = runlog_options(s)
        #: privacy mode's stand-in maker for text not to be kept (None when privacy is off)
        self.conceal: Callable[[str], str] | None = keeping.get("conceal")
        self.journal = Journal(
            s.runlog,
            self.session_run_id,
            cache_dir=s.cache_dir,
            cache_fallback=self.cache.fallback,
            runlog_options=keeping,
        )
        self.resolver = Resolver(self.catalog, self.providers, s.deadline_s)
        self.spending = SpendingGuard(s.budget, self.journal)
        self.calls_path = Calls(
            self.resolver, self.router, self.cache, self.journal, self.session_run_id, self.spending
        )
        if s.telemetry == "otel":
            self.instrument()

    # -- the journal: every call's row and attempts, and the run log they reach -------------------------------

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every results row of this session, in order."""
        return self.journal.calls

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every attempt record of this session, in order."""
        return self.journal.records

    @property
    def runlog(self) -> RunLog | None:
        """The SQLite run log, or None when it is off or cannot be used (`runlog_error` says why)."""
        return self.journal.runlog

    @property
    def runlog_error(self) -> ConfigError | None:
        """The first run-log problem this session met (it names the file and the way out), or None."""
        return self.journal.error

    def runlog_failed(self, exc: Exception) -> None:
        """Report a run-log failure once per session, as a warning: never a reason to lose an answer."""
        self.journal.failed(exc)

    def flush(self) -> None:
        """Write pending rows and attempt records to the run log."""
        self.journal.flush()

    def instrument(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        """Export every attempt of this session as an OpenTelemetry span and metrics (GenAI semantic
        conventions; `opencode_lab.session.telemetry`) to the given providers, else the global ones.
        ``OC_TELEMETRY=otel`` does this at start; needs the ``otel`` extra."""
        from .telemetry import Telemetry

        self.journal.telemetry = Telemetry(tracer_provider, meter_provider)

    @classmethod
    def from_env(cls: type[T]) -> T:
        return cls(Settings.load())  # type: ignore[call-arg]

    @classmethod
    def from_file(cls: type[T], path: str | Path) -> T:
        return cls(Settings.load(path))  # type: ignore[call-arg]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(providers={sorted(self.providers)}, deployments={len(self.catalog.deployments)})"

    # -- the loop -------------------------------------------------------------------------------------------------

    @property
    def max_concurrency(self) -> int:
        """How many requests a batch of this session keeps in flight."""
        return self.settings.max_concurrency

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Deprecated name of `block_on` (``run`` now means a recorded experiment only); removed in 0.3."""
        __tracebackhide__ = True
        warnings.warn("Lab.run(coroutine) is now Lab.block_on(coroutine)", DeprecationWarning, stacklevel=2)
        return self.block_on(coro)

    def block_on(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the session's loop and wait (safe inside a running notebook loop).

        A `LabError` arrives without the loop's frames: what went wrong is in the error (its message,
        ``attempts``, ``last``), and IPython hides the frames marked ``__tracebackhide__`` on the way out.
        """
        __tracebackhide__ = True
        try:
            return self.loop.block_on(coro)
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
        return self.block_on(self._resolve(spec))

    async def _resolve(self, spec: str | Sequence[str] | None) -> list[str]:
        return [g.name for g in await self.resolver.groups(spec)]

    async def aidentities(self, spec: str | Sequence[str] | None) -> list[list[str]]:
        """Who may answer *spec*, group by group, by identity (what the cache key and a run's
        specification record: provider, server or weights, upstream model)."""
        return self.resolver.identities(await self.hop(self.resolver.groups(spec)))

    def refresh_catalog(self, *, refresh: bool = False) -> None:
        """Add every model a provider with a refreshable catalog lists (OpenRouter: from its disk copy while
        fresh, unless *refresh*) to the catalog."""
        self.block_on(self.resolver.refresh_catalog(refresh=refresh))

    def catalog_pending(self) -> bool:
        """A provider catalog exists that has not been loaded yet."""
        return self.resolver.catalog_pending()

    # -- one call -------------------------------------------------------------------------------------------------

    def request(
        self, prompt: Prompt, model: str | Sequence[str] | None, options: Mapping[str, Any], where: str
    ) -> ChatRequest:
        """Build a validated request from a call's keywords (over the parameters a configured model declares);
        an unknown keyword names the closest valid one."""
        reject_unknown(options, (*NAMES, *CALL_OPTIONS), f"keyword of {where}()")
        params = {k: v for k, v in options.items() if k in NAMES}
        request = ChatRequest.build(
            prompt, model=model, system=options.get("system"), tools=options.get("tools"), **params
        )
        return replace(request, params=request.params.under(self.catalog.declared_params(request.model)))

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
        return await self.hop(
            self.calls_path.call(request, sample, cache, fallback, strategy, run_id or self.session_run_id)
        )

    async def achat(self, prompt: Prompt, model: str | Sequence[str] | None = None, **options: Any) -> ChatResult:
        """Ask one prompt; with a list of models, failing over across the list is the point.

        Options: ``system``, ``tools`` (declarations or functions the model may call; the result's
        ``tool_calls`` say which it called), ``cache`` (True, False or ``"refresh"``), ``fallback``, ``strategy``,
        ``sample`` (repeated draws of one request are cached under their own index) and the
        request parameters (``temperature``, ``max_tokens``, ``seed``, ``top_p``, ``stop``).
        """
        request = self.request(prompt, model, options, "chat")
        hit = self._cached_chat(request, options)
        return hit if hit is not None else await self._chat(request, options)

    def chat(self, prompt: Prompt, model: str | Sequence[str] | None = None, **options: Any) -> ChatResult:
        """Synchronous `achat`; safe inside a running notebook event loop.  A cached answer is found on the
        calling thread, without a trip to the session's loop."""
        __tracebackhide__ = True
        try:
            request = self.request(prompt, model, options, "chat")
            # from inside the loop a sync call is refused (by block_on), cached or not
            hit = None if self.loop.in_loop_thread() else self._cached_chat(request, options)
        except LabError as exc:  # shown as `block_on` shows an error from the loop: the message, no frames
            raise exc.with_traceback(None) from None
        return hit if hit is not None else self.block_on(self._chat(request, options))

    def _cached_chat(self, request: ChatRequest, options: Mapping[str, Any]) -> ChatResult | None:
        cache, fallback = CachePolicy.of(options.get("cache", True)), options.get("fallback", True)
        (hit,) = self.cached_answers([(request, options.get("sample", 0))], cache=cache, fallback=fallback)
        return hit

    async def _chat(self, request: ChatRequest, options: Mapping[str, Any]) -> ChatResult:
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

    def cached_answers(
        self,
        calls: Sequence[tuple[ChatRequest, int]],
        *,
        cache: CachePolicy,
        fallback: bool,
        run_id: str | None = None,
    ) -> list[ChatResult | None]:
        """The cached answer to each ``(request, sample)``, recorded as a call, or None where it must be asked
        (see `Calls.cached_answers`): ``chat()`` tries it before the trip to the loop, ``compare()`` before
        it sends anything."""
        return self.calls_path.cached_answers(calls, cache=cache, fallback=fallback, run_id=run_id)

    # -- streaming ------------------------------------------------------------------------------------------------

    async def astream(
        self, prompt: Prompt, model: str | Sequence[str] | None = None, **options: Any
    ) -> AsyncIterator[str]:
        """Yield text deltas as they arrive; a cached answer arrives as one delta."""
        async for item in self.astream_events(prompt, model, **options):
            if isinstance(item, str):
                yield item

    def stream(self, prompt: Prompt, model: str | Sequence[str] | None = None, **options: Any) -> Iterator[str]:
        """Synchronous `astream`: iterate to get text deltas as they arrive."""
        __tracebackhide__ = True
        for item in self.stream_events(prompt, model, **options):
            if isinstance(item, str):
                yield item

    async def astream_events(
        self, prompt: Prompt, model: str | Sequence[str] | None = None, **options: Any
    ) -> AsyncIterator[str | ChatResult]:
        """Deltas, then the final `ChatResult`: what a display that updates in place needs."""
        request = self.request(prompt, model, options, "stream")
        async for item in self.loop.hop_iter(self.calls_path.stream(request, options)):
            yield item

    def stream_events(
        self, prompt: Prompt, model: str | Sequence[str] | None = None, **options: Any
    ) -> Iterator[str | ChatResult]:
        """Synchronous `astream_events`."""
        request = self.request(prompt, model, options, "stream")
        return _without_loop_frames(self.loop.iterate(self.calls_path.stream(request, options)))

    def reset(self, deployment: str | Sequence[str] | None = None) -> list[str]:
        """End 429 pauses and close circuit breakers of *deployment* (an id or any model spec; None = all),
        e.g. after fixing a server; returns the deployment ids reset."""

        async def reset() -> list[str]:  # limiters and breakers belong to the session's loop
            return self.router.reset(deployment)

        return self.block_on(reset())

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the run log, close pooled connections and unload local models; idempotent."""
        self.journal.flush()

        async def shutdown() -> None:
            for provider in self.providers.values():
                await provider.aclose()

        try:
            self.block_on(shutdown())
        finally:
            self.loop.close()
            self.journal.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _without_loop_frames(items: Iterator[T]) -> Iterator[T]:
    """*items*, with a `LabError` raised as `Session.block_on` raises it."""
    __tracebackhide__ = True
    try:
        yield from items
    except LabError as exc:
        raise exc.with_traceback(None) from None


def _configure_logging(level: str) -> None:
    """Apply ``LOG_LEVEL`` to the package's loggers; add a redacting stderr handler if nobody configured one."""
    package = logging.getLogger("opencode_lab")
    package.setLevel(level)
    if not package.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.addFilter(RedactingFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)
