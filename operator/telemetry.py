"""careplane's own telemetry: Prometheus metrics and one OpenTelemetry trace per reconcile.

Why OpenTelemetry and not ``prometheus_client`` directly: the issue asks for
the OTel SDK, so that the same instruments can go to an OTLP collector as well
as to a ``/metrics`` endpoint. The Prometheus exporter names series after the
instrument name plus unit/kind suffixes; the names below are chosen so that
what Prometheus scrapes is exactly the issue's names
(``careplane_decisions`` -> ``careplane_decisions_total``, the histogram
``careplane_reconcile_seconds`` with unit ``s`` keeps its name). A test scrapes
the endpoint and checks every name.

Each :class:`Telemetry` owns its own ``CollectorRegistry``, ``MeterProvider``
and ``TracerProvider`` (nothing global), so tests and benchmarks can run many.
Spans go to an OTLP/HTTP exporter only when the standard ``OTEL_*`` variables
ask for one (``OTEL_TRACES_EXPORTER=otlp`` or an ``OTEL_EXPORTER_OTLP_*``
endpoint); the exporter itself reads the endpoint, headers and timeout from
those variables. Tests pass an in-memory exporter.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, Status, StatusCode
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from careplane.decision.types import Actions, Observations

SERVICE_NAME = "careplane-operator"
# Reconcile latency buckets in seconds: the target is p99 < 1 s, so resolve 5 ms .. 10 s.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Names exactly as scraped (see the module docstring for why the counters lack `_total` here).
METRIC_NAMES = (
    "careplane_desired_replicas",
    "careplane_current_replicas",
    "careplane_forecast_demand",
    "careplane_demand",
    "careplane_anomaly_score",
    "careplane_circuit_breaker_max_pending",
    "careplane_routing_weight",
    "careplane_decisions_total",
    "careplane_reconcile_seconds",
    "careplane_errors_total",
)

SPAN_NAMES = ("query", "forecast", "detect", "decide", "actuate", "status")  # status: only when something is written


def _otlp_requested(env: Mapping[str, str]) -> bool:
    """Whether the standard OTel variables ask for OTLP trace export."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporters = {e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if "none" in exporters:
        return False
    if "otlp" in exporters:
        return True
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


Labels = tuple[tuple[str, str], ...]


class _LastValues:
    """A thread-safe table of values by label set, read by an observable instrument's callback.

    ``set`` keeps the last value (gauges); ``add`` keeps a running total (counters).
    Rows are grouped by (namespace, policy) so that forgetting a policy is O(its rows).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], dict[Labels, float]] = {}

    @staticmethod
    def _keys(attributes: Mapping[str, str]) -> tuple[tuple[str, str], Labels]:
        return (attributes.get("namespace", ""), attributes.get("policy", "")), tuple(sorted(attributes.items()))

    def set(self, value: float, attributes: Mapping[str, str]) -> None:
        group, key = self._keys(attributes)
        with self._lock:
            self._rows.setdefault(group, {})[key] = float(value)

    def add(self, value: float, attributes: Mapping[str, str]) -> None:
        group, key = self._keys(attributes)
        with self._lock:
            rows = self._rows.setdefault(group, {})
            rows[key] = rows.get(key, 0.0) + value

    def forget(self, namespace: str, name: str) -> None:
        """Drop every row of one policy."""
        with self._lock:
            self._rows.pop((namespace, name), None)

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            rows = [(key, value) for group in self._rows.values() for key, value in group.items()]
        return [Observation(value, dict(key)) for key, value in rows]


class Telemetry:
    """Metrics instruments, the ``/metrics`` endpoint and the reconcile tracer of one operator."""

    def __init__(
        self,
        *,
        span_exporter: SpanExporter | None = None,
        env: Mapping[str, str] | None = None,
        instance: str | None = None,
    ) -> None:
        env = os.environ if env is None else env
        attributes: dict[str, Any] = {"service.name": env.get("OTEL_SERVICE_NAME", SERVICE_NAME)}
        if instance:
            attributes["service.instance.id"] = instance
        resource = Resource.create(attributes)
        self.registry = CollectorRegistry(auto_describe=True)
        self._reader = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
        self.meter_provider = MeterProvider(metric_readers=[self._reader], resource=resource)
        meter = self.meter_provider.get_meter("careplane.operator")

        # Gauges and counters are *observable* instruments over careplane's own tables, not
        # synchronous ones: the SDK keeps a synchronous instrument's last value per label set
        # for ever, so a deleted ScalingPolicy would go on being exported; an observable
        # instrument exports exactly what its callback reports at each collection, and
        # :meth:`forget` drops a policy's rows (see test_deleted_policy_disappears).
        self.desired_replicas = _LastValues()
        self.current_replicas = _LastValues()
        self.forecast_demand = _LastValues()
        self.demand = _LastValues()
        self.anomaly_score = _LastValues()
        self.circuit_breaker_max_pending = _LastValues()
        self.routing_weight = _LastValues()
        self.decisions = _LastValues()  # running totals
        self.errors = _LastValues()
        gauges = (
            ("careplane_desired_replicas", self.desired_replicas, "Replicas careplane wants for the target."),
            ("careplane_current_replicas", self.current_replicas, "Replicas the target has (spec.replicas)."),
            ("careplane_forecast_demand", self.forecast_demand,
             "Forecast demand (requests/s) over the provisioning window, by quantile (mean, upper, lower)."),
            ("careplane_demand", self.demand, "Measured demand in requests/s."),
            ("careplane_anomaly_score", self.anomaly_score, "Anomaly probability in [0, 1]."),
            ("careplane_circuit_breaker_max_pending", self.circuit_breaker_max_pending,
             "http1MaxPendingRequests careplane last decided."),
            ("careplane_routing_weight", self.routing_weight, "Routing weight careplane last decided, by backend."),
        )
        for name, table, description in gauges:
            meter.create_observable_gauge(name, callbacks=[table.observe], description=description)
        meter.create_observable_counter(
            "careplane_decisions", callbacks=[self.decisions.observe],
            description="Decisions that changed something, by action (scale, circuit_breaker, routing).",
        )
        meter.create_observable_counter(
            "careplane_errors", callbacks=[self.errors.observe],
            description="Reconcile errors by kind (metrics, kubernetes, policy, target, internal).",
        )
        self._tables = (*(t for _, t, _ in gauges), self.decisions, self.errors)
        self.reconcile_seconds = meter.create_histogram(
            "careplane_reconcile_seconds",
            unit="s",
            description="Wall time of one reconcile (query, forecast, detect, decide, actuate, status).",
            explicit_bucket_boundaries_advisory=list(RECONCILE_BUCKETS),
        )

        self.tracer_provider = TracerProvider(resource=resource)
        if span_exporter is not None:
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        elif _otlp_requested(env):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.tracer_provider.get_tracer("careplane.operator")
        self._server: Any = None
        self._server_thread: threading.Thread | None = None

    # --- the /metrics endpoint -------------------------------------------------------------
    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns the bound port (0 picks one)."""
        self._server, self._server_thread = start_http_server(port, addr=addr, registry=self.registry)
        return int(self._server.server_address[1])

    def scrape(self) -> str:
        """The text exposition Prometheus would scrape (used by tests and the benchmark)."""
        return generate_latest(self.registry).decode()

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    # --- tracing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def reconcile_span(self, namespace: str, name: str) -> Iterator[Span]:
        """The root span of one reconcile; child spans come from :meth:`step`."""
        with self.tracer.start_as_current_span(
            "reconcile", attributes={"careplane.policy": name, "careplane.namespace": namespace}
        ) as span:
            yield span

    @contextlib.contextmanager
    def step(self, name: str, **attributes: Any) -> Iterator[Span]:
        """A child span (query, forecast, detect, decide, actuate) of the current reconcile."""
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            try:
                yield span
            except Exception as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                raise

    # --- recording -------------------------------------------------------------------------
    def record_error(self, namespace: str, name: str, kind: str) -> None:
        self.errors.add(1, {"namespace": namespace, "policy": name, "kind": kind})

    def forget(self, namespace: str, name: str) -> None:
        """Stop exporting a policy's gauges and counters (it was deleted, or left this operator's shard).

        The ``careplane_reconcile_seconds`` histogram is synchronous (the SDK offers no
        observable histogram), so its series of a deleted policy stay until the process restarts.
        """
        for table in self._tables:
            table.forget(namespace, name)

    def record_reconcile(
        self,
        namespace: str,
        name: str,
        seconds: float,
        observations: Observations | None,
        actions: Actions | None,
        changed: Actions | None,
        desired_replicas: int | None,
    ) -> None:
        """Everything one reconcile reports; ``None`` values are left out (unknown is not zero).

        ``actions`` is what the decision core decided (gauges show it, also in ForecastOnly);
        ``changed`` is what was actually written (the decisions counter counts those).
        """
        labels = {"namespace": namespace, "policy": name}
        self.reconcile_seconds.record(seconds, labels)
        if desired_replicas is not None:
            self.desired_replicas.set(desired_replicas, labels)
        if observations is not None:
            if observations.current_replicas is not None:
                self.current_replicas.set(observations.current_replicas, labels)
            if observations.demand is not None:
                self.demand.set(observations.demand, labels)
            if observations.forecast is not None:
                fc = observations.forecast
                for quantile, value in (("mean", fc.mean), ("upper", fc.upper), ("lower", fc.lower)):
                    self.forecast_demand.set(value, {**labels, "quantile": quantile})
            if observations.anomaly is not None:
                self.anomaly_score.set(observations.anomaly.score, labels)
        if actions is not None:
            if actions.circuit_breaker is not None:
                self.circuit_breaker_max_pending.set(actions.circuit_breaker.max_pending_requests, labels)
            for backend, weight in (actions.weights or {}).items():
                self.routing_weight.set(weight, {**labels, "backend": backend})
        if changed is not None:
            done = {
                "scale": changed.replicas is not None,
                "circuit_breaker": changed.circuit_breaker is not None,
                "routing": changed.weights is not None,
            }
            for action, happened in done.items():
                if happened:
                    self.decisions.add(1, {**labels, "action": action})
