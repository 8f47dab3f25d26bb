"""Turning calls into records: the one place a results row or an attempt record is assembled.

The columns are declared in `opencode_lab.core.schema`; this module fills them
from a `ChatResult`, an error, or an `Attempt`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..core.errors import LabError, error_type_of
from ..core.schema import RESULT_COLUMNS
from ..core.types import Attempt, ChatResult


def result_row(outcome: ChatResult | LabError, **identity: Any) -> dict[str, Any]:
    """One results row for a finished call (or the error that replaced it), plus *identity* columns
    (prompt, prompt_id, sample, run_id and the user's carried columns)."""
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(cost_usd=math.nan, cost_source="unknown", cost_saved_usd=0.0, cached=False, attempts=0)
    if isinstance(outcome, ChatResult):
        row.update(
            model=outcome.model,
            served_by=outcome.served_by,
            response=outcome.text,
            finish_reason=outcome.finish_reason,
            tool_calls=_tool_calls(outcome),
            latency_s=outcome.latency_s,
            ttft_s=outcome.ttft_s,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
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
    answered = result is not None and attempt.status == "ok"
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
        "input_tokens": result.input_tokens if answered else None,
        "output_tokens": result.output_tokens if answered else None,
        "cost_usd": result.cost_usd if answered else math.nan,
        "cost_source": result.cost_source if answered else "unknown",
        "cost_saved_usd": 0.0,
        "cached": False,
    }


def cache_hit_record(result: ChatResult, run_id: str, wall: float) -> dict[str, Any]:
    """A cache hit as an attempt record: attempt 0, cost 0, and what the hit saved."""
    return {
        "run_id": run_id,
        "request_id": result.request_id,
        "timestamp": wall,
        "model": result.model,
        "served_by": result.served_by,
        "provider": result.provider,
        "attempt": 0,
        "status": "ok",
        "error_type": None,
        "http_status": None,
        "latency_s": None,  # a hit makes no call: the original call's latency is on the results row
        "ttft_s": None,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": 0.0,
        "cost_source": result.cost_source,
        "cost_saved_usd": result.cost_saved_usd,
        "cached": True,
    }


def call_records(result: ChatResult, run_id: str, wall: float) -> list[dict[str, Any]]:
    """Every attempt record of a successful call (a cache hit is one record of its own)."""
    records = [cache_hit_record(result, run_id, wall)] if result.cached else []
    records += [attempt_record(a, run_id, result.request_id, result) for a in result.attempts]
    return records
