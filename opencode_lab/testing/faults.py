"""The fault vocabulary, which fault the next request meets, and the record of what each request met.

Retry, failover, rate-limit and health logic can only be trusted once it has met sockets misbehaving.
A test server picks an outcome per generation request, in this order:

1. a directive in the prompt: ``[[fault:server_error]]`` always, ``[[fault:server_error*2]]`` for the
   first two requests with that exact prompt, then ``ok``;
2. a scripted FIFO ``queue`` of outcomes;
3. a seeded random ``mix`` (``{"rate_limit": 0.15, ...}``, the remainder is ``ok``);
4. otherwise ``ok``.

Every wire format knows the `GENERIC` outcomes (``ok``, ``hang``, ``reset``, ``malformed``,
``cut_stream``, ``cut_before_end``, ``hang_before_end``, ``raw``) and adds its own error statuses
(``rate_limit`` with ``Retry-After``, 5xx, ...) and content faults. `SETTINGS` lists every setting
with its default; the log keeps, per request, what was asked and what happened, never a credential.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opencode_lab.testing.transport import RawResponse, Request

__all__ = ["GENERIC", "SETTINGS", "Faults", "RetryAfter", "UnknownOutcome", "check_settings", "count"]

GENERIC: frozenset[str] = frozenset(
    {"ok", "hang", "reset", "malformed", "cut_stream", "cut_before_end", "hang_before_end", "raw"}
)
SETTINGS: Mapping[str, Any] = {
    "latency_s": 0.0,  # delay before every API answer
    "latency_jitter_s": 0.0,  # plus uniform(0, jitter)
    "outcome_latency_s": {},  # per-outcome override of latency_s, e.g. {"ok": 0.5}
    "chunk_delay_s": 0.0,  # pause between streamed events (time-to-first-token experiments)
    "retry_after": None,  # seconds, sent with rate limits and overloads
    "retry_after_http_date": False,  # send Retry-After as an HTTP-date instead
    "hang_s": 30.0,  # how long ``hang`` (and a trickling or hanging ``raw``) lasts
    "cost_per_token": None,  # OpenAI wire: usage.cost = completion_tokens * cost_per_token, as OpenRouter reports
    "upstream_provider": None,  # OpenAI wire: name the upstream that "served" each answer, as OpenRouter does
    "usage": {},  # merged into every answer's usage object, in its wire format's names (cached, reasoning counts)
    "stream_usage": True,  # OpenAI wire: honour stream_options.include_usage (llama.cpp's server does not: False)
    "models": ["fault-model"],  # the model list: ids, or whole entries as dicts ({"id": "m", "context_length": 8})
    "api_key": None,  # the key the server expects: another one, or none, meets ``unauthorized``
    "raw": {},  # the response of the ``raw`` outcome (fields of transport.RawResponse)
    "queue": [],
    "mix": {},
    "seed": None,
}
#: the log keeps at most this many entries (and request bodies), the oldest dropped first
LOG_LIMIT = 100_000
_DIRECTIVE = re.compile(r"\[\[fault:(\w+)(?:\*(\d+))?\]\]")
_RAW_FIELDS = frozenset(f.name for f in dataclasses.fields(RawResponse))


class UnknownOutcome(ValueError):
    """A ``[[fault:NAME]]`` directive names an outcome this wire format does not know."""


def check_settings(settings: Mapping[str, Any], outcomes: frozenset[str]) -> None:
    """Refuse unknown settings, outcomes and raw fields before anything is changed."""
    if unknown := set(settings) - set(SETTINGS):
        raise TypeError(f"unknown fault-server settings: {sorted(unknown)}")
    named = [*settings.get("queue", ()), *settings.get("mix", {}), *settings.get("outcome_latency_s", {})]
    if bad := [o for o in named if o not in outcomes]:
        raise ValueError(f"unknown outcomes {bad}; known: {sorted(outcomes)}")
    if unknown := set(settings.get("raw", {})) - _RAW_FIELDS:
        raise TypeError(f"unknown raw response keys: {sorted(unknown)}; known: {sorted(_RAW_FIELDS)}")
    if sum(settings.get("mix", {}).values()) > 1.0 + 1e-9:
        raise ValueError("mix probabilities sum to more than 1")


def count(log: Iterable[Mapping[str, Any]], outcome: str | None = None, since: float | None = None) -> int:
    """Entries of *log*, optionally only one outcome and only those received at ``time.monotonic() >= since``."""
    return sum(1 for e in log if (outcome is None or e["outcome"] == outcome) and (since is None or e["t"] >= since))


@dataclass(frozen=True)
class RetryAfter:
    """When a refused client may come back: *seconds*, and *header*, the ``Retry-After`` value to send."""

    seconds: float
    header: str


class Faults:
    """Settings, the outcome draw and the log of one server; thread-safe (tests configure, the loop serves).

    Settings passed to the constructor are the defaults ``reset()`` returns to.
    """

    def __init__(self, outcomes: frozenset[str], settings: Mapping[str, Any]) -> None:
        check_settings(settings, outcomes)
        self.outcomes = outcomes
        self._base = {**SETTINGS, **settings}
        self._lock = threading.Lock()
        self._settings: Mapping[str, Any]
        self._queue: deque[str]
        self._rng: random.Random
        self._hits: Counter[str]
        self._log: deque[dict[str, Any]]
        self._bodies: deque[dict[str, Any]]
        self.reset()

    @property
    def settings(self) -> Mapping[str, Any]:
        """The settings now: replaced, never changed in place, so a reader needs no lock."""
        return self._settings

    def configure(self, **settings: Any) -> None:
        """Merge settings; ``queue`` and ``mix`` replace the old ones, ``mix``/``seed`` reseed the draw."""
        check_settings(settings, self.outcomes)
        with self._lock:
            self._settings = {**self._settings, **settings}
            if "queue" in settings:
                self._queue = deque(settings["queue"])
            if "mix" in settings or "seed" in settings:
                self._rng = random.Random(self._settings["seed"])

    def reset(self) -> None:
        """Back to the constructor's settings; clears the log, the queue and the directive counters."""
        with self._lock:
            self._settings = dict(self._base)
            self._queue = deque(self._base["queue"])
            self._rng = random.Random(self._base["seed"])
            self._hits = Counter()
            self._log = deque(maxlen=LOG_LIMIT)
            self._bodies = deque(maxlen=LOG_LIMIT)

    # -- choosing ----------------------------------------------------------------------------------
    def choose(self, prompt: str) -> str:
        """The outcome for a request with *prompt* (see the module docstring); counts directives."""
        directive = _DIRECTIVE.search(prompt)
        with self._lock:
            if directive:
                outcome, limit = directive.group(1), directive.group(2)
                if outcome not in self.outcomes:
                    raise UnknownOutcome(f"unknown fault directive {outcome!r}; known: {sorted(self.outcomes)}")
                if limit is None:
                    return outcome
                self._hits[prompt] += 1
                return outcome if self._hits[prompt] <= int(limit) else "ok"
            if self._queue:
                return self._queue.popleft()
            mix: Mapping[str, float] = self._settings["mix"]
            draw = self._rng.random() if mix else 1.0
            for drawn, p in mix.items():
                if draw < p:
                    return drawn
                draw -= p
            return "ok"

    async def delay(self, outcome: str) -> None:
        """Wait the latency configured for *outcome*."""
        s = self._settings
        delay = s["outcome_latency_s"].get(outcome, s["latency_s"])
        if s["latency_jitter_s"]:
            delay += random.uniform(0, s["latency_jitter_s"])
        if delay > 0:
            await asyncio.sleep(delay)

    def retry_after(self) -> RetryAfter | None:
        s = self._settings
        if s["retry_after"] is None:
            return None
        when = s["retry_after"]
        header = email.utils.formatdate(time.time() + when, usegmt=True) if s["retry_after_http_date"] else f"{when:g}"
        return RetryAfter(when, header)

    def raw(self) -> RawResponse:
        return RawResponse(**self._settings["raw"])

    # -- the record --------------------------------------------------------------------------------
    def record(self, request: Request, *, auth: bool) -> dict[str, Any]:
        """A new log entry for *request*, which the server fills in as it answers (*auth*: a key came)."""
        entry = {
            "t": request.received,
            "wall": request.wall,
            "path": request.path,
            "model": None,
            "prompt": None,
            "sampling": None,
            "stream": False,
            "outcome": None,
            "status": None,
            "request_id": request.headers.get("x-request-id"),
            "auth": auth,
        }
        with self._lock:
            self._log.append(entry)
        return entry

    def keep(self, body: dict[str, Any]) -> None:
        """Remember a generation request's body, for `requests`."""
        with self._lock:
            self._bodies.append(body)

    @property
    def log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._log]

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._bodies)
