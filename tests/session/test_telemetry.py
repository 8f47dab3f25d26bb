"""OpenTelemetry export: one GenAI client span and its metrics per attempt, read back with the SDK's in-memory
exporter and reader; off unless asked for, and never a secret in an attribute."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from opencode_lab import Lab, LabError, Settings

SECRET = "sk-oc-telemetry-test-0123456789"


def _settings(fault, tmp_path, extra: str = "", retries: int = 0) -> Settings:
    toml = tmp_path / "lab.toml"
    toml.write_text(
        f'[lab]\nmax_retries = {retries}\n{extra}[providers.a]\nbase_url = "{fault.base_url}"\nmodels = ["x"]\n'
        'api_key_env = "A_KEY"\n'
    )
    return Settings.load(toml, env={"OC_CACHE_DIR": str(tmp_path / "cache"), "A_KEY": SECRET})


@pytest.fixture
def exported(fault, tmp_path):
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    lab = Lab(_settings(fault, tmp_path))
    lab.instrument(tracer_provider, MeterProvider(metric_readers=[reader]))
    yield lab, spans, reader
    lab.close()


def _attempt_spans(spans: InMemorySpanExporter) -> list:
    return [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]


def test_an_answered_call_is_a_client_span_with_genai_attributes(exported):
    lab, spans, _ = exported
    result = lab.chat("hello", "a/x")
    (span,) = _attempt_spans(spans)
    assert span.name == "chat a/x" and span.kind is SpanKind.CLIENT and span.status.status_code is StatusCode.UNSET
    a = span.attributes
    assert (a["gen_ai.operation.name"], a["gen_ai.system"], a["gen_ai.request.model"], a["gen_ai.response.model"]) == (
        "chat", "a", "a/x", "a/x"
    )  # fmt: skip
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (
        result.input_tokens, result.output_tokens
    )  # fmt: skip
    assert "error.type" not in a and a["opencode_lab.request_id"] == result.request_id
    assert span.end_time - span.start_time == pytest.approx(result.attempts[0].latency_s * 1e9, abs=1e3)


def test_a_failed_attempt_is_an_error_span_with_its_error_type(exported):
    lab, spans, _ = exported
    with pytest.raises(LabError):
        lab.chat("down [[fault:server_error]]", "a/x")
    (span,) = _attempt_spans(spans)
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "server_error"
    assert span.attributes["http.response.status_code"] == 500
    assert "gen_ai.usage.input_tokens" not in span.attributes  # not reported: left out, never 0


def test_a_cache_hit_asks_no_model_and_makes_no_span(exported):
    lab, spans, _ = exported
    lab.chat("same", "a/x")
    lab.chat("same", "a/x")
    assert len(_attempt_spans(spans)) == 1 and len(spans.get_finished_spans()) == 2  # one call, one attempt


def test_the_attempts_of_a_retried_call_are_children_of_one_call_span(fault, tmp_path):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    with Lab(_settings(fault, tmp_path, retries=2)) as lab:
        lab.instrument(tracer_provider, MeterProvider())
        lab.chat("flaky [[fault:server_error*2]]", "a/x")
    (call,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    attempts = _attempt_spans(spans)
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert all(s.parent.span_id == call.context.span_id for s in attempts)
    assert call.attributes["opencode_lab.attempts"] == 3 and call.status.status_code is StatusCode.UNSET
    assert call.start_time <= attempts[0].start_time and call.end_time >= attempts[-1].end_time


def test_duration_and_token_usage_are_genai_histograms(exported):
    lab, _, reader = exported
    result = lab.chat("count me", "a/x")
    metrics = {
        m.name: m
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for m in scope.metrics
    }
    (duration,) = metrics["gen_ai.client.operation.duration"].data.data_points
    assert duration.count == 1 and duration.sum == pytest.approx(result.attempts[0].latency_s)
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"].data.data_points}
    assert tokens == {"input": result.input_tokens, "output": result.output_tokens}


def test_no_secret_reaches_an_attribute(exported):
    lab, spans, _ = exported
    lab.chat(f"my key is {SECRET}", "a/x")
    with pytest.raises(LabError):
        lab.chat(f"{SECRET} [[fault:server_error]]", "a/x")
    dumped = repr([dict(s.attributes) for s in spans.get_finished_spans()])
    assert SECRET not in dumped and len(_attempt_spans(spans)) == 2


def test_telemetry_is_off_unless_switched_on(fault, tmp_path):
    with Lab(_settings(fault, tmp_path)) as off, Lab(_settings(fault, tmp_path, 'telemetry = "otel"\n')) as on:
        assert off.journal.telemetry is None and on.journal.telemetry is not None
