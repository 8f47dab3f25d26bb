"""Turning calls into results and records: the one place a `ChatResult` (routed or cached), a results
row or an attempt record is assembled.

The columns are declared in `opencode_lab.core.schema`; this module fills them
from a routed completion, a cache entry, an error, or an `Attempt`.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from ..core.attempt import Attempt
from ..core.errors import LabError, error_type_of
from ..core.logprobs import TokenLogprob
from ..core.logprobs import to_json as logprobs_json
from ..core.schema import RESULT_COLUMNS
from ..core.tools import ToolCall
from ..core.types import ChatResult
from ..providers.base import FREE_COST_SOURCE

if TYPE_CHECKING:
    from ..core.deployment import Deployment
    from ..core.types import Completion
    from ..providers.base import Capabilities
    from ..routing.router import Routed


def result_row(outcome: ChatResult | LabError, **identity: Any) -> dict[str, Any]:
    """One results row for a finished call (or the error that replaced it), plus *identity* columns
    (prompt, prompt_id, sample, run_id and the user's carried columns)."""
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(
        cost_usd=math.nan, cost_source="unknown", cost_saved_usd=0.0, cache_discount_usd=math.nan, cached=False,
        attempts=0,
    )
    if isinstance(outcome, ChatResult):
        row.update(
            model=outcome.model,
            served_by=outcome.served_by,
            region=outcome.region,
            upstream_provider=outcome.upstream_provider,
            seed_used=outcome.seed_used,
            response=outcome.text,
            finish_reason=outcome.finish_reason,
            tool_calls=_tool_calls(outcome),
            latency_s=outcome.latency_s,
            ttft_s=outcome.ttft_s,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            reasoning_tokens=outcome.reasoning_tokens,
            cached_input_tokens=outcome.cached_input_tokens,
            cache_write_tokens=outcome.cache_write_tokens,
            cache_discount_usd=outcome.cache_discount_usd,
            logprobs=logprobs_json(outcome.logprobs),
            cost_usd=outcome.cost_usd,
            cost_source=outcome.cost_source,
            cost_saved_usd=outcome.cost_saved_usd,
            cached=outcome.cached,
            attempts=len(outcome.attempts),
        )
    else:
        row.update(error_type=error_type_of(outcome), error=str(outcome), attempts=len(outcome.attempts))
    row.update(identity)
    return row


def _tool_calls(result: ChatResult) -> str | None:
    """The calls as JSON text: one cell, the same in a frame, the run log and a CSV."""
    if not result.tool_calls:
        return None
    calls = [  # arguments that did not parse are kept as the text the model sent
        {"id": c.id, "name": c.name, "arguments": c.raw_arguments if c.arguments is None else c.arguments}
        for c in result.tool_calls
    ]
    return json.dumps(calls, ensure_ascii=False)


def attempt_record(attempt: Attempt, run_id: str, request_id: str, result: ChatResult | None = None) -> dict[str, Any]:
    """One attempt as an attempt record; the answering attempt carries *result*'s tokens and cost."""
    answered = result if attempt.status == "ok" else None
    return {
        "run_id": run_id,
        "request_id": request_id,
        "timestamp": attempt.started_at,
        "model": attempt.model,
        "served_by": attempt.deployment,
        "provider": attempt.provider,
        "attempt": attempt.number,
        "status": attempt.status,
        "error_type": attempt.error_type,
        "http_status": attempt.http_status,
        "latency_s": attempt.latency_s,
        "ttft_s": attempt.ttft_s,
        "input_tokens": answered.input_tokens if answered else None,
        "output_tokens": answered.output_tokens if answered else None,
        "cost_usd": answered.cost_usd if answered else math.nan,
        "cost_source": answered.cost_source if answered else "unknown",
        "cost_saved_usd": 0.0,
        "cached": False,
    }


def routed_result(
    routed: Routed, spec: str, request_id: str, *, streamed: bool, capabilities: Capabilities
) -> ChatResult:
    """A routed completion as the caller's result.

    ``latency_s`` is the answering attempt's own time: waits for limits, back-off and retries are not
    the model's latency (they are in ``attempts``).  ``ttft_s`` exists only for a streamed answer: for
    a whole response it would be the latency again under another name.
    """
    completion, dep = routed.completion, routed.deployment
    usage = completion.usage
    cost, source = _cost(completion, dep, capabilities)
    discount = 0.0 if capabilities.free else dep.cache_discount_usd(usage)
    return ChatResult(
        text=completion.text,
        model=spec,
        served_by=dep.id,
        provider=dep.provider,
        finish_reason=completion.finish_reason,
        tool_calls=completion.tool_calls,
        seed_used=completion.seed,
        upstream_provider=completion.upstream_provider,
        region=dep.region,
        latency_s=routed.attempts[-1].latency_s,
        ttft_s=completion.ttft_s if streamed else None,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_discount_usd=math.nan if discount is None else discount,
        logprobs=completion.logprobs,
        cost_usd=cost,
        cost_source=source,
        attempts=tuple(routed.attempts),
        request_id=request_id,
    )


def _cost(completion: Completion, dep: Deployment, capabilities: Capabilities) -> tuple[float, str]:
    """Nothing for a free provider, else its own reported cost, else catalog price x tokens, else NaN: never
    a made-up zero."""
    if capabilities.free:
        return 0.0, FREE_COST_SOURCE
    if completion.usage.cost_usd is not None and capabilities.reports_cost:
        return completion.usage.cost_usd, "provider"
    priced = dep.cost_usd(completion.usage)
    return (priced, "catalog") if priced is not None else (math.nan, "unknown")


def cache_value(result: ChatResult) -> dict[str, Any]:
    """What the cache keeps of an answer: the text, the seed it was sampled with and the original call's
    measurements.  The key holds the request as asked (a seed only when the caller gave one), so a seed
    drawn for an unseeded sample lives here, and a warm rerun replays the sample with its seed."""
    return {
        "text": result.text,
        "served_by": result.served_by,
        "provider": result.provider,
        "finish_reason": result.finish_reason,
        "tool_calls": [call.to_dict() for call in result.tool_calls],
        "seed_used": result.seed_used,
        "upstream_provider": result.upstream_provider,
        "region": result.region,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "reasoning_tokens": result.reasoning_tokens,
        "cached_input_tokens": result.cached_input_tokens,
        "cache_write_tokens": result.cache_write_tokens,
        "logprobs": None if result.logprobs is None else [e.to_dict() for e in result.logprobs],
        "cost_usd": result.cost_usd,
        "cost_source": result.cost_source,
        "latency_s": result.latency_s,
        "ttft_s": result.ttft_s,
        "stored_at": time.time(),
    }


def cached_result(hit: dict[str, Any], spec: str, request_id: str, lookup_s: float | None = None) -> ChatResult:
    """A cached answer with the original call's measurements: a warm rerun reproduces its statistics.
    Nothing is paid (so no prompt-cache discount either); what the original call cost is what the hit saved;
    *lookup_s* is how long this answer took to come from the cache."""
    return ChatResult(
        text=hit["text"],
        model=spec,
        served_by=hit["served_by"],
        provider=hit["provider"],
        finish_reason=hit.get("finish_reason"),
        tool_calls=tuple(ToolCall(**call) for call in hit.get("tool_calls", ())),
        seed_used=hit["seed_used"],
        upstream_provider=hit.get("upstream_provider"),
        region=hit.get("region"),
        latency_s=hit.get("latency_s", math.nan),
        ttft_s=hit.get("ttft_s"),
        input_tokens=hit.get("input_tokens"),
        output_tokens=hit.get("output_tokens"),
        reasoning_tokens=hit["reasoning_tokens"],
        cached_input_tokens=hit["cached_input_tokens"],
        cache_write_tokens=hit["cache_write_tokens"],
        cache_discount_usd=0.0,
        logprobs=None if hit["logprobs"] is None else tuple(TokenLogprob.from_dict(e) for e in hit["logprobs"]),
        cost_usd=0.0,
        cost_source=hit.get("cost_source", "unknown"),
        cost_saved_usd=hit.get("cost_usd", math.nan),
        cached=True,
        lookup_s=lookup_s,
        request_id=request_id,
    )
