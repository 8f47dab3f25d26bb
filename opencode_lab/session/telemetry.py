"""OpenTelemetry export of every attempt, for teams that already run monitoring (extra ``otel``, off by default).

Each call becomes a ``call <model>`` span, and each of its attempts that asked a model a child client
span named ``chat <model>`` with the attribute names of the OpenTelemetry GenAI semantic conventions
(``gen_ai.operation.name``,
``gen_ai.system`` and its successor ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``,
``error.type``), timed by the attempt's own start and latency, plus the convention's
``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` histograms and a cost
counter.  Spans are made from the attempt records the journal keeps, so they carry exactly
what the run log does: never a prompt, an answer, a header or a key.  The exporters are the
application's: the globally configured providers, or the ones given to `Session.instrument`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import ConfigError
from ..core.secrets import get_logger

log = get_logger(__name__)
_SCOPE = "opencode_lab"


class Telemetry:
    """Turns attempt records into spans and metrics on the given (or global) OpenTelemetry providers."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            raise ConfigError(
                "telemetry needs OpenTelemetry: pip install 'opencode_lab[otel]' (or set OC_TELEMETRY=off)"
            ) from None
        self._trace = trace
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(_SCOPE)
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(_SCOPE)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration"
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Measures number of input and output tokens used"
        )
        self.cost = meter.create_counter("opencode_lab.client.cost", unit="USD", description="What the calls cost")
        self._failed = False

    def export(self, records: Sequence[Mapping[str, Any]]) -> None:
        """The attempt records of one call: a ``call`` span over its attempts (retries and failover show as
        its children), and one client span and its measurements per attempt (a cache hit made none, so it has
        no span).  A failure here is logged once and never reaches the call."""
        try:
            self._call(records)
        except Exception as exc:  # telemetry must never cost an answer
            if not self._failed:
                self._failed = True
                log.warning("OpenTelemetry export failed (%s: %s); calls go on", type(exc).__name__, exc)

    def _call(self, attempts: Sequence[Mapping[str, Any]]) -> None:
        first, last = attempts[0], attempts[-1]
        call = self.tracer.start_span(
            f"call {first['model']}",
            kind=self._trace.SpanKind.INTERNAL,
            attributes={
                "gen_ai.request.model": first["model"],
                "opencode_lab.request_id": first["request_id"],
                "opencode_lab.attempts": len(attempts),
            },
            start_time=int(first["timestamp"] * 1e9),
        )
        context = self._trace.set_span_in_context(call)
        for record in attempts:
            self._attempt(record, context)
        if last["status"] != "ok":
            call.set_status(self._trace.Status(self._trace.StatusCode.ERROR, last["error_type"] or "error"))
        call.end(end_time=max(int((r["timestamp"] + _latency(r)) * 1e9) for r in attempts))

    def _attempt(self, record: Mapping[str, Any], context: Any) -> None:
        attributes = attributes_of(record)
        start, latency = record["timestamp"], _latency(record)
        span = self.tracer.start_span(
            f"chat {record['model']}",
            context=context,
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=int(start * 1e9),
        )
        if record["status"] != "ok":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, record["error_type"] or "error"))
        span.end(end_time=int((start + latency) * 1e9))
        common = {k: v for k, v in attributes.items() if k in _METRIC_KEYS}
        self.duration.record(latency, common)
        for kind in ("input", "output"):
            count = record[f"{kind}_tokens"]
            if _known(count):
                self.tokens.record(int(count), {**common, "gen_ai.token.type": kind})
        if _known(record["cost_usd"]):
            self.cost.add(float(record["cost_usd"]), common)


_METRIC_KEYS = frozenset(
    ("gen_ai.operation.name", "gen_ai.system", "gen_ai.provider.name", "gen_ai.request.model",
     "gen_ai.response.model", "error.type")
)  # fmt: skip


def attributes_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """A span's attributes for an attempt record: GenAI convention names first, ours under ``opencode_lab.``;
    unknown values are left out (an attribute is never set to None)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": record["provider"],
        "gen_ai.provider.name": record["provider"],
        "gen_ai.request.model": record["model"],
        "gen_ai.response.model": record["served_by"],
        "gen_ai.usage.input_tokens": record["input_tokens"],
        "gen_ai.usage.output_tokens": record["output_tokens"],
        "error.type": record["error_type"] if record["status"] != "ok" else None,
        "http.response.status_code": record["http_status"],
        "opencode_lab.request_id": record["request_id"],
        "opencode_lab.run_id": record["run_id"],
        "opencode_lab.attempt": record["attempt"],
        "opencode_lab.cost_usd": record["cost_usd"],
        "opencode_lab.cost_source": record["cost_source"],
    }
    return {key: _plain(value) for key, value in attributes.items() if _known(value)}


def _latency(record: Mapping[str, Any]) -> float:
    return float(record["latency_s"]) if _known(record["latency_s"]) else 0.0


def _known(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _plain(value: object) -> object:
    """An attribute value OpenTelemetry takes: a str, bool, int or float."""
    return value if isinstance(value, str | bool | int | float) else str(value)
