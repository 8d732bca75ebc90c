"""The /metrics endpoint exposes exactly the issue's names; one trace per reconcile with its spans."""

from __future__ import annotations

import re
import urllib.request

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from careplane.decision.types import (
    Actions,
    AnomalySummary,
    CircuitBreakerSettings,
    ForecastSummary,
    Observations,
)
from careplane.operator.telemetry import METRIC_NAMES, SPAN_NAMES, Telemetry, _otlp_requested


def _series(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            out.setdefault(name, []).append(line)
    return out


def _record(tel: Telemetry) -> None:
    obs = Observations(
        demand=120.0,
        current_replicas=3,
        ready_replicas=3,
        forecast=ForecastSummary(mean=150.0, upper=180.0, lower=100.0, horizon_seconds=900, model="holt_winters"),
        anomaly=AnomalySummary(score=0.25, active=False, signal=None, since=None),
    )
    breaker = CircuitBreakerSettings(60, 120, 10, 30, 50)
    actions = Actions(replicas=5, circuit_breaker=breaker, weights={"primary": 90, "secondary": 10})
    changed = Actions(replicas=5, weights={"primary": 90, "secondary": 10})
    tel.record_reconcile("clinical", "fhir-api", 0.042, obs, actions, changed, 5)
    tel.record_error("clinical", "fhir-api", "metrics")


def test_scraped_names_are_exactly_the_issue_names_over_http() -> None:
    tel = Telemetry(span_exporter=InMemorySpanExporter())
    try:
        port = tel.serve(0, addr="127.0.0.1")
        _record(tel)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        tel.shutdown()
    series = _series(body)
    careplane = {re.sub(r"_(bucket|count|sum)$", "", n) for n in series if n.startswith("careplane_")}
    assert careplane == set(METRIC_NAMES)
    assert 'careplane_desired_replicas{namespace="clinical",policy="fhir-api"} 5.0' in body
    assert re.search(r'careplane_forecast_demand\{[^}]*quantile="upper"[^}]*\} 180\.0', body)
    assert re.search(r'careplane_routing_weight\{backend="secondary"[^}]*\} 10\.0', body)
    assert re.search(r'careplane_decisions_total\{action="scale"[^}]*\} 1\.0', body)
    # decided but not written (unchanged) is not counted as a decision
    assert not re.search(r'careplane_decisions_total\{action="circuit_breaker"', body)
    assert re.search(r'careplane_circuit_breaker_max_pending\{[^}]*\} 60\.0', body)
    assert re.search(r'careplane_errors_total\{kind="metrics"[^}]*\} 1\.0', body)
    assert re.search(r'careplane_reconcile_seconds_bucket\{le="0\.05"[^}]*\} 1\.0', body)
    assert re.search(r'careplane_reconcile_seconds_bucket\{le="0\.025"[^}]*\} 0\.0', body)


def test_unknown_values_are_not_exported_as_zero() -> None:
    tel = Telemetry(span_exporter=InMemorySpanExporter())
    tel.record_reconcile("ns", "p", 0.01, Observations(demand=None, current_replicas=2, ready_replicas=None),
                         Actions(), Actions(), 2)
    series = _series(tel.scrape())
    tel.shutdown()
    assert "careplane_demand" not in series
    assert "careplane_current_replicas" in series


def test_one_trace_per_reconcile_with_step_spans() -> None:
    exporter = InMemorySpanExporter()
    tel = Telemetry(span_exporter=exporter)
    for _ in range(2):
        with tel.reconcile_span("ns", "p"):
            for name in SPAN_NAMES:
                with tel.step(name):
                    pass
    spans = exporter.get_finished_spans()
    tel.shutdown()
    roots = [s for s in spans if s.name == "reconcile"]
    assert len(roots) == 2
    assert roots[0].context.trace_id != roots[1].context.trace_id
    for root in roots:
        children = [s.name for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
        assert children == list(SPAN_NAMES)
        assert root.attributes["careplane.policy"] == "p"


def test_failed_step_marks_span_error() -> None:
    exporter = InMemorySpanExporter()
    tel = Telemetry(span_exporter=exporter)
    try:
        with tel.reconcile_span("ns", "p"), tel.step("query"):
            raise RuntimeError("prometheus down")
    except RuntimeError:
        pass
    query = next(s for s in exporter.get_finished_spans() if s.name == "query")
    tel.shutdown()
    assert not query.status.is_ok


def test_otlp_export_follows_standard_variables() -> None:
    assert not _otlp_requested({})
    assert _otlp_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert _otlp_requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not _otlp_requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not _otlp_requested({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
