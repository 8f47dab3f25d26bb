"""One request through cache, router and journal: the path every chat, stream and compare row takes.

A cached answer is found with one lookup, on whatever thread asks (`Calls.cached_answers`);
anything else is resolved, checked against what the candidates can take, routed, turned
into a `ChatResult`, stored in the cache and recorded by the journal.  A failure is
returned (or, for a stream, raised) as a `LabError`, recorded all the same.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import LabError
from ..core.types import ChatRequest, ChatResult
from ..providers.base import Provider
from ..routing.catalog import Catalog, ModelGroup, refuse_unsupported
from ..routing.router import Routed, Router
from .cache import CachePolicy, ResponseCache, canonical_key
from .journal import Journal
from .records import cache_value, cached_result, routed_result
from .resolver import Resolver
from .spending import SpendingGuard


@dataclass(frozen=True)
class _Asked:
    """One call as asked: the request for its sample, who asked, and when (for its row and records)."""

    request: ChatRequest
    sample: int
    spec: str
    run_id: str
    request_id: str
    who: dict[str, Any]
    started: float


class Calls:
    """The session's call path over its resolver, router, cache and journal."""

    def __init__(
        self,
        resolver: Resolver,
        router: Router,
        cache: ResponseCache,
        journal: Journal,
        session_run_id: str,
        spending: SpendingGuard,
    ) -> None:
        self.resolver = resolver
        self.spending = spending
        self.router = router
        self.cache = cache
        self.journal = journal
        self.session_run_id = session_run_id

    @property
    def catalog(self) -> Catalog:
        return self.resolver.catalog

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self.resolver.providers

    def cached_answers(
        self,
        calls: Sequence[tuple[ChatRequest, int]],
        *,
        cache: CachePolicy,
        fallback: bool,
        run_id: str | None = None,
    ) -> list[ChatResult | None]:
        """The cached answer to each ``(request, sample)``, recorded as a call, or None where it must be asked.

        One pass over the calls, one lookup each, on whatever thread calls it: ``chat()`` tries it before
        the trip to the loop and ``compare()`` before it sends anything.  A spec whose catalog or model list
        has not been loaded, or a request the routing path would refuse, gets None: `acall` loads, refuses
        and records those.
        """
        if cache is not CachePolicy.USE or not self.cache.enabled:
            return [None] * len(calls)
        groups = {spec: self.resolver.loaded_groups(spec) for spec in {request.model for request, _ in calls}}
        run_id = run_id or self.session_run_id
        return [
            self._cached(request.for_sample(sample), sample, groups[request.model], fallback, run_id)
            for request, sample in calls
        ]

    def _cached(
        self, request: ChatRequest, sample: int, groups: list[ModelGroup] | None, fallback: bool, run_id: str
    ) -> ChatResult | None:
        if groups is None:
            return None
        try:
            refuse_unsupported(request, groups, self.providers)
        except LabError:
            return None
        started = time.perf_counter()
        hit = self.cache.get(self.cache_key(request, groups, sample, fallback, CachePolicy.USE))
        if hit is None:
            return None
        lookup_s = time.perf_counter() - started
        result = cached_result(hit, self.catalog.spec_name(request.model), new_id("q"), lookup_s)
        self.journal.succeeded(result, run_id, self._who(request, sample, run_id, "chat"))
        return result

    async def call(
        self,
        request: ChatRequest,
        sample: int,
        cache: CachePolicy,
        fallback: bool,
        strategy: str | None,
        run_id: str,
    ) -> ChatResult | LabError:
        asked = self._asked(request, sample, run_id, "chat")
        try:
            key, hit = await self._looked_up(asked, fallback, cache)
            if hit is not None:
                return hit
            self.spending.check()
            routed = await self.router.complete(asked.request, asked.request_id, fallback=fallback, strategy=strategy)
        except LabError as exc:
            self._failed(asked, exc)
            return exc
        return self._succeeded(routed, asked, key, streamed=False)

    def _asked(self, request: ChatRequest, sample: int, run_id: str, via: str) -> _Asked:
        request = request.for_sample(sample)
        who = self._who(request, sample, run_id, via)
        spec = self.catalog.spec_name(request.model)
        return _Asked(request, sample, spec, run_id, new_id("q"), who, time.perf_counter())

    def _who(self, request: ChatRequest, sample: int, run_id: str, via: str) -> dict[str, Any]:
        """What the call's results row says about its request (`_identity`); a call under another run than the
        session's is one of a compare's (its rows, judges' questions included)."""
        return _identity(request, sample, via if run_id == self.session_run_id else "compare")

    async def _looked_up(self, asked: _Asked, fallback: bool, cache: CachePolicy) -> tuple[str, ChatResult | None]:
        """Resolve, refuse what no candidate can take, and look the request up: its cache key, and the cached
        answer (recorded as this call) or None."""
        groups = await self.resolver.groups(asked.request.model)
        refuse_unsupported(asked.request, groups, self.providers)
        key = self.cache_key(asked.request, groups, asked.sample, fallback, cache)
        hit = self.cache.get(key) if key and cache is CachePolicy.USE else None
        if hit is None:
            return key, None
        result = cached_result(hit, asked.spec, asked.request_id, time.perf_counter() - asked.started)
        self.journal.succeeded(result, asked.run_id, asked.who)
        return key, result

    def _failed(self, asked: _Asked, exc: LabError) -> None:
        elapsed = time.perf_counter() - asked.started
        self.journal.failed_call(exc, asked.spec, asked.run_id, asked.request_id, elapsed, asked.who)

    def cache_key(
        self, request: ChatRequest, groups: list[ModelGroup], sample: int, fallback: bool, cache: CachePolicy
    ) -> str:
        """The key names what may answer, by identity (provider, server or weights, upstream model), never by
        alias: re-pointing a name is a miss.  Without fallback only the first group may answer, so an answer
        another model gave (cached by a fallback call) must not be found."""
        if not self.cache.enabled or cache is CachePolicy.OFF:
            return ""
        resolved = self.resolver.identities(groups if fallback else groups[:1], request.params.regions)
        return canonical_key(request, resolved, sample)

    def _succeeded(self, routed: Routed, asked: _Asked, key: str, *, streamed: bool) -> ChatResult:
        """Turn a routed completion into the result, store it under *key* (if any) and record it."""
        capabilities = self.providers[routed.deployment.provider].capabilities
        result = routed_result(routed, asked.spec, asked.request_id, streamed=streamed, capabilities=capabilities)
        if key:
            self.cache.put(key, cache_value(result))
        self.journal.succeeded(result, asked.run_id, asked.who)
        return result

    async def stream(
        self, request: ChatRequest, options: Mapping[str, Any]
    ) -> AsyncGenerator[str | ChatResult, None]:
        cache, fallback = CachePolicy.of(options.get("cache", True)), options.get("fallback", True)
        asked = self._asked(request, options.get("sample", 0), self.session_run_id, "stream")
        key, hit = await self._looked_up(asked, fallback, cache)
        if hit is not None:
            yield hit.text
            yield hit
            return
        routed: list[Routed] = []
        try:
            self.spending.check()
            async for chunk in self.router.stream(
                asked.request, asked.request_id, fallback=fallback, strategy=options.get("strategy"), routed=routed
            ):
                if chunk.delta:
                    yield chunk.delta
        except LabError as exc:
            self._failed(asked, exc)
            raise exc from None
        yield self._succeeded(routed[0], asked, key, streamed=True)


def _identity(request: ChatRequest, sample: int, via: str) -> dict[str, Any]:
    """What a call's results row says about its request: the last user turn as the prompt, the system
    prompt, the parameters set, the sample, the way and the time it was asked."""
    prompt, system = "", None
    for message in request.messages:
        if message.role == "user":
            prompt = message.content
        elif message.role == "system" and system is None:
            system = message.content
    return {
        "prompt": prompt, "system": system, "params": request.params.canonical(), "sample": sample, "via": via,
        "asked_at": time.time(),
    }  # fmt: skip


def new_id(prefix: str) -> str:
    """*prefix* and 48 random bits in hex: what ``uuid4().hex[:12]`` gave, without building a UUID per call."""
    return f"{prefix}-{os.urandom(6).hex()}"
