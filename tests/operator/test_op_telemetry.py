"""The /metrics endpoint exposes exactly the issue's names; one trace per reconcile with its spans."""

from __future__ import annotations

import re
import urllib.request

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from careplane.decision.types import (
    Actions,
    AnomalySummary,
    CircuitBreakerSettings,
    ForecastSummary,
    Observations,
)
from careplane.operator.telemetry import METRIC_NAMES, SPAN_NAMES, Telemetry, _otlp_requested
from careplane.sandbox.emulator import EmulatedCluster
from careplane.sandbox.prometheus import LiveExporter, PrometheusServer


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


def test_forgotten_policy_disappears_from_gauges_and_counters() -> None:
    tel = Telemetry(span_exporter=InMemorySpanExporter())
    _record(tel)
    tel.record_reconcile("clinical", "other", 0.01, Observations(demand=50.0, current_replicas=1, ready_replicas=1),
                         Actions(), Actions(), 1)
    before = tel.scrape()
    tel.forget("clinical", "fhir-api")
    after = tel.scrape()
    tel.shutdown()
    assert 'policy="fhir-api"' in before
    gone = [line for line in after.splitlines() if 'policy="fhir-api"' in line and not line.startswith("#")]
    # only the reconcile-time histogram keeps it (the SDK has no observable histogram)
    assert {re.split(r"[{ ]", line, maxsplit=1)[0] for line in gone} <= {
        "careplane_reconcile_seconds_bucket", "careplane_reconcile_seconds_count", "careplane_reconcile_seconds_sum"}
    assert 'careplane_desired_replicas{namespace="clinical",policy="other"} 1.0' in after


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


@pytest.mark.integration
def test_deleted_policy_disappears_from_the_operator_metrics(
    cluster: EmulatedCluster, prometheus: PrometheusServer, exporter: LiveExporter
) -> None:
    from operator_harness import OperatorProcess, deployment, operator_config, scaling_policy

    for name in ("kept", "dropped"):
        exporter.set_gauge("careplane_test_demand", {"service": name, "namespace": "clinical"}, 100.0)
        cluster.create(deployment(f"api-{name}", "clinical"))
        cluster.create(scaling_policy(name, "clinical", f"api-{name}", f'sum(careplane_test_demand{{service="{name}"}})'))
    prometheus.wait_for_series('careplane_test_demand{service="dropped"}')
    op = OperatorProcess(operator_config(cluster, prometheus.url, "op-telemetry")).start()

    def desired() -> set[str]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).read().decode()
        return set(re.findall(r'careplane_desired_replicas\{namespace="clinical",policy="([^"]+)"\}', body))

    try:
        cluster.wait_for(lambda: desired() == {"kept", "dropped"}, timeout=15)
        cluster.delete("careplane.io/v1alpha1", "ScalingPolicy", "dropped", "clinical")
        cluster.wait_for(lambda: desired() == {"kept"}, timeout=15)
        ticks = len(op.results("clinical/kept"))
        op.wait_ticks("clinical/kept", ticks + 1, timeout=15)
        assert desired() == {"kept"}  # and it does not come back
    finally:
        op.stop()
