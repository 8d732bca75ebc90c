"""The reconcile shell with in-memory ports and a stand-in decision core (fast, no cluster).

The stand-in core is deliberately simple (replicas = ceil(demand / capacity),
hold when demand is unknown) so these tests pin the *shell*: what is queried,
what is written, when, and what the status and events say. The real core runs
in the integration tests.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from careplane.decision.types import Actions, ForecastSummary, Observations
from careplane.decision.types import Explanation as Expl
from careplane.operator import ports
from careplane.operator.reconcile import PolicyReconciler
from careplane.operator.settings import STATE_ANNOTATION
from careplane.operator.telemetry import Telemetry


class State:
    def __init__(self, ticks: int = 0) -> None:
        self.ticks = ticks

    def to_dict(self) -> dict[str, int]:
        return {"ticks": self.ticks}

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> State:
        return cls(int(data["ticks"]))


class Models:
    def __init__(self, spec: Any, step_seconds: float, *, reading_window_seconds: float | None = None) -> None:
        self.reading_window = reading_window_seconds
        self.rebuilt_with = -1
        self.seen: list[float | None] = []
        self.raw: list[Observations] = []

    def rebuild(self, times: np.ndarray, values: np.ndarray) -> None:
        self.rebuilt_with = len(values)

    def observe(self, now: float, raw: Observations) -> Observations:
        self.seen.append(raw.demand)
        self.raw.append(raw)
        fc = ForecastSummary(raw.demand or 0.0, (raw.demand or 0.0) * 1.2, 0.0, 900, "stand-in")
        return Observations(raw.demand, raw.current_replicas, raw.ready_replicas, forecast=fc)


class Core:
    DecisionState = State
    WorkloadModels = Models

    @staticmethod
    def decide(spec: Any, obs: Observations, state: State, now: float) -> tuple[Actions, State, Expl]:
        new = State(state.ticks + 1)
        if obs.demand is None:
            return Actions(), new, Expl("hold", "demand unknown: holding", metrics_available=False,
                                        recommended_replicas=obs.current_replicas)
        want = max(spec.replicas.min, min(spec.replicas.max, math.ceil(obs.demand / spec.demand.perReplicaCapacity)))
        return Actions(replicas=want), new, Expl("reactive", f"demand needs {want} replicas", recommended_replicas=want)


class FakeMetrics:
    def __init__(self) -> None:
        self.demand: float | Exception = 120.0
        self.queries: list[str] = []
        self.history_calls = 0
        self.by_backend: dict[str, float | None] | Exception = {}

    async def instant(self, namespace: str, query: str, at: float) -> float:
        self.queries.append(query)
        if isinstance(self.demand, Exception):
            raise self.demand
        return self.demand

    async def instant_by(self, namespace: str, query: str, label: str, at: float) -> dict[str, float | None]:
        self.queries.append(f"{query} by {label}")
        if isinstance(self.by_backend, Exception):
            raise self.by_backend
        return self.by_backend

    async def history(self, namespace: str, query: str, start: float, end: float, step: float) -> tuple[Any, Any]:
        self.history_calls += 1
        n = int((end - start) // step) + 1
        return np.arange(n) * step + start, np.full(n, 100.0)


class FakeCluster:
    def __init__(self) -> None:
        self.replicas = 1
        self.exists = True
        self.hpa: str | None = None
        self.scaled: list[int] = []
        self.patches: list[dict[str, Any]] = []
        self.obj: dict[str, Any] = {}

    async def get_scale(self, namespace: str, target: Any) -> ports.Scale:
        if not self.exists:
            raise ports.TargetMissing(f"Deployment {target.name} not found")
        return ports.Scale(self.replicas, self.replicas, self.replicas)

    async def set_scale(self, namespace: str, target: Any, replicas: int) -> None:
        self.scaled.append(replicas)
        self.replicas = replicas

    async def scaling_conflict(self, namespace: str, target: Any) -> str | None:
        return self.hpa

    async def set_circuit_breaker(self, *args: Any) -> bool:
        return False

    async def set_weights(self, *args: Any) -> bool:
        return False

    async def patch_policy(self, namespace: str, name: str, *, status: Any, annotations: Any) -> None:
        self.patches.append({"status": status, "annotations": annotations})
        meta = self.obj.setdefault("metadata", {})
        for k, v in (annotations or {}).items():
            meta.setdefault("annotations", {})[k] = v
        if status:
            merged = _merge(self.obj.get("status") or {}, status)
            self.obj["status"] = merged


def _merge(old: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(old, dict):
        return patch
    out = dict(old)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def policy(**spec: Any) -> dict[str, Any]:
    base = {
        "targetRef": {"name": "api"},
        "intervalSeconds": 15,
        "replicas": {"min": 1, "max": 10},
        "demand": {"query": "sum(rate(http_requests_total[1m]))", "perReplicaCapacity": 50},
        "forecast": {"historySeconds": 3600},
    }
    base.update(spec)
    return {"apiVersion": "careplane.io/v1alpha1", "kind": "ScalingPolicy",
            "metadata": {"name": "p", "namespace": "ns", "generation": 1}, "spec": base}


class Rig:
    def __init__(self, body: dict[str, Any], *, exporter: InMemorySpanExporter | None = None) -> None:
        self.metrics, self.cluster = FakeMetrics(), FakeCluster()
        self.cluster.obj = body
        self.exporter = exporter or InMemorySpanExporter()
        self.telemetry = Telemetry(span_exporter=self.exporter)
        self.now = 1_700_000_000.0
        self.stop = False
        self.rec = self.new()

    def new(self) -> PolicyReconciler:
        return PolicyReconciler("ns", "p", metrics=self.metrics, cluster=self.cluster, telemetry=self.telemetry,
                                identity="op-1", clock=lambda: self.now, should_stop=lambda: self.stop, core=Core)

    def tick(self) -> Any:
        self.now += 15
        return asyncio.run(self.rec.tick(copy.deepcopy(self.cluster.obj)))

    def condition(self, kind: str) -> dict[str, Any]:
        return next(c for c in self.cluster.obj["status"]["conditions"] if c["type"] == kind)


def test_active_scales_once_and_reports() -> None:
    rig = Rig(policy())
    result = rig.tick()
    assert rig.cluster.scaled == [3]
    assert result.changed.replicas == 3
    assert [e.reason for e in result.events][-1] == "Scaled"
    status = rig.cluster.obj["status"]
    assert status["desiredReplicas"] == 3 and status["currentReplicas"] == 1
    assert rig.condition("Ready")["status"] == "True"
    assert json.loads(rig.cluster.obj["metadata"]["annotations"][STATE_ANNOTATION]) == {"ticks": 1}
    assert rig.cluster.obj["metadata"]["annotations"]["careplane.io/reconciled-by"] == "op-1"
    again = rig.tick()
    assert rig.cluster.scaled == [3]  # nothing differs: no second write
    assert again.changed == Actions()
    assert rig.metrics.history_calls == 1  # models rebuilt once, then updated incrementally
    assert rig.rec.models.rebuilt_with == 240  # 3600 s of history on a 15 s step, up to now - one interval
    assert rig.rec.models.reading_window == 60.0  # the query's rate(...[1m]): a rise is extrapolated over 1 min
    assert rig.rec.models.seen == [120.0, 120.0]


def test_spans_per_reconcile() -> None:
    rig = Rig(policy())
    rig.tick()
    names = [s.name for s in rig.exporter.get_finished_spans()]
    assert names.count("reconcile") == 1
    for step in ("query", "forecast", "detect", "decide", "actuate"):
        assert step in names


def test_forecast_only_changes_nothing_but_status() -> None:
    rig = Rig(policy(mode="ForecastOnly"))
    result = rig.tick()
    assert rig.cluster.scaled == []
    assert rig.cluster.obj["status"]["desiredReplicas"] == 3
    assert rig.condition("Ready")["reason"] == "ForecastOnly"
    assert "Recommendation" in [e.reason for e in result.events]


def test_paused_reads_and_writes_nothing_but_its_condition() -> None:
    rig = Rig(policy(mode="Paused"))
    rig.tick()
    assert rig.metrics.queries == [] and rig.cluster.scaled == []
    assert rig.condition("Ready")["reason"] == "Paused"


def test_hpa_conflict_blocks_scaling() -> None:
    rig = Rig(policy())
    rig.cluster.hpa = "HorizontalPodAutoscaler api-hpa scales Deployment api"
    rig.tick()
    assert rig.cluster.scaled == []
    assert rig.condition("Conflict")["status"] == "True"
    assert rig.condition("Ready")["reason"] == "Conflict"
    assert rig.cluster.obj["status"]["desiredReplicas"] == 3  # still recommends


def test_metrics_outage_holds_then_recovers() -> None:
    rig = Rig(policy())
    rig.tick()
    rig.metrics.demand = ports.MetricsError("connection refused", reason="PrometheusUnavailable")
    rig.cluster.replicas = 3
    result = rig.tick()
    assert rig.cluster.scaled == [3]
    assert rig.condition("MetricsAvailable")["status"] == "False"
    assert rig.condition("MetricsAvailable")["reason"] == "PrometheusUnavailable"
    assert "current" not in rig.cluster.obj["status"]["demand"]  # no stale demand figure lingers
    assert any(e.type == "Warning" and e.reason == "PrometheusUnavailable" for e in result.events)
    assert rig.rec.models.seen[-1] is None  # the gap is fed as unknown, not zero
    rig.metrics.demand = 400.0
    rig.tick()
    assert rig.cluster.scaled == [3, 8]
    assert rig.condition("MetricsAvailable")["status"] == "True"


def test_rejected_query_is_a_condition() -> None:
    rig = Rig(policy())
    rig.metrics.demand = ports.QueryRejected('selector {namespace="other"} reads another namespace')
    rig.tick()
    assert rig.condition("MetricsAvailable")["reason"] == "QueryRejected"
    assert "other" in rig.condition("MetricsAvailable")["message"]


def test_missing_target_is_reported_without_deciding() -> None:
    rig = Rig(policy())
    rig.cluster.exists = False
    rig.tick()
    assert rig.condition("TargetFound")["status"] == "False"
    assert rig.condition("Ready")["reason"] == "TargetNotFound"
    assert rig.rec.models is None


def test_invalid_policy_is_reported_and_touches_nothing() -> None:
    body = policy()
    body["spec"]["replicas"] = {"min": 5, "max": 2}
    rig = Rig(body)
    rig.tick()
    ready = rig.condition("Ready")
    assert ready["reason"] == "InvalidPolicy" and "min must be <= max" in ready["message"]
    assert rig.metrics.queries == [] and rig.cluster.scaled == []


def test_restart_continues_from_the_saved_state() -> None:
    rig = Rig(policy())
    rig.tick()
    rig.tick()
    assert rig.rec.state.ticks == 2
    rig.rec = rig.new()  # a new operator process: nothing in memory
    rig.tick()
    assert rig.rec.state.ticks == 3
    assert rig.cluster.scaled == [3]


def test_stopping_operator_does_not_actuate() -> None:
    rig = Rig(policy())
    rig.stop = True
    result = rig.tick()
    assert result.aborted and rig.cluster.scaled == []


def test_models_rebuilt_only_when_their_inputs_change() -> None:
    rig = Rig(policy())
    rig.tick()
    rig.cluster.obj["spec"]["replicas"]["max"] = 20
    rig.tick()
    assert rig.metrics.history_calls == 1
    rig.cluster.obj["spec"]["demand"]["query"] = "sum(rate(http_requests_total{code!~'5..'}[1m]))"
    rig.tick()
    assert rig.metrics.history_calls == 2


def test_state_signature_ignores_only_ageing() -> None:
    from careplane.operator.reconcile import state_refresh_seconds, state_signature

    base = {"version": 1, "recommendations": [[10.0, 5], [25.0, 5]], "lastReplicas": 5, "panicUntil": None,
            "metricsMissingSince": None, "lastDecisionTime": 25.0}
    aged = {**base, "recommendations": [[25.0, 5], [40.0, 5]], "lastDecisionTime": 40.0}
    assert state_signature(base) == state_signature(aged)
    assert state_signature(base) != state_signature({**aged, "recommendations": [[25.0, 5], [40.0, 3]]})
    assert state_signature(base) != state_signature({**base, "lastReplicas": 6})
    assert state_signature(base) != state_signature({**base, "metricsMissingSince": 30.0})
    rig = Rig(policy())
    assert state_refresh_seconds(None) == 60.0
    spec = __import__("careplane.validation", fromlist=["parse_policy"]).parse_policy(rig.cluster.obj).spec
    assert state_refresh_seconds(spec) == 60.0  # default 300 s stabilisation: a quarter is 75, capped at 60


ROUTING = {
    "kind": "VirtualService", "name": "api",
    "backends": [{"name": "primary", "weight": 90}, {"name": "secondary", "weight": 10}],
    "backendErrorRateQuery": "sum by (backend) (rate(errors_total[1m])) / sum by (backend) (rate(requests_total[1m]))",
}


def test_per_backend_error_rates_reach_the_models() -> None:
    rig = Rig(policy(routing=ROUTING))
    rig.metrics.by_backend = {"primary": 0.0, "secondary": 0.4, "not-a-policy-backend": 0.9}
    rig.tick()
    assert f"{ROUTING['backendErrorRateQuery']} by backend" in rig.metrics.queries
    assert dict(rig.rec.models.raw[-1].backend_error_rates) == {"primary": 0.0, "secondary": 0.4}
    # a backend Prometheus has no series for is unknown, not healthy
    rig.metrics.by_backend = {"primary": 0.01}
    rig.tick()
    assert dict(rig.rec.models.raw[-1].backend_error_rates) == {"primary": 0.01, "secondary": None}
    # an outage of that one query leaves the rates unknown and the rest of the reconcile running
    rig.metrics.by_backend = ports.MetricsError("down")
    rig.tick()
    assert dict(rig.rec.models.raw[-1].backend_error_rates) == {}
    assert rig.condition("Ready")["status"] == "True"


def test_no_backend_query_without_the_setting() -> None:
    rig = Rig(policy())
    rig.tick()
    assert not any(q.endswith(" by backend") for q in rig.metrics.queries)
    assert dict(rig.rec.models.raw[-1].backend_error_rates) == {}


def test_rebuilt_models_are_frozen_out_of_full_collections_and_released_on_delete() -> None:
    """A rebuild moves the models into gc's permanent generation (full collections skip them); dropping a
    policy unfreezes, so cyclic garbage it leaves is found by the next full collection."""
    import gc

    from careplane.operator import gc_policy

    gc.unfreeze()
    rig = Rig(policy())
    rig.tick()
    assert rig.metrics.history_calls == 1
    frozen = gc.get_freeze_count()
    assert frozen > 0
    assert not any(obj is rig.rec.models for obj in gc.get_objects())  # not in any collected generation
    gc_policy.release_frozen()
    assert gc.get_freeze_count() == 0
    assert any(obj is rig.rec.models for obj in gc.get_objects())
