"""Hypothesis strategies: random valid ScalingPolicies and observation streams with gaps."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from careplane.decision.types import AnomalySummary, ForecastSummary, Observations, ReactiveSummary
from careplane.policy import ScalingPolicySpec


@st.composite
def backends(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(2, 4))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=n - 1, max_size=n - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    out = []
    for i, w in enumerate(weights):
        lo = draw(st.integers(0, w))
        hi = draw(st.integers(w, 100))
        out.append({"name": f"b{i}", "weight": w, "minWeight": lo, "maxWeight": hi})
    return out


@st.composite
def policies(draw: st.DrawFn) -> ScalingPolicySpec:
    lo = draw(st.integers(0, 20))
    hi = draw(st.integers(max(lo, 1), 60))
    doc: dict[str, Any] = {
        "targetRef": {"name": "w"},
        "mode": draw(st.sampled_from(["Active", "Active", "ForecastOnly", "Paused"])),
        "criticality": draw(st.sampled_from(["critical", "standard", "batch"])),
        "replicas": {
            "min": lo,
            "max": hi,
            "maxScaleUpStep": draw(st.integers(1, 20)),
            "maxScaleDownStep": draw(st.integers(1, 20)),
            "scaleDownStabilizationSeconds": draw(st.sampled_from([0, 60, 300, 900])),
        },
        "demand": {
            "query": "q",
            "perReplicaCapacity": draw(st.floats(0.5, 500)),
            "targetUtilization": draw(st.floats(0.1, 1.0)),
            "podStartupSeconds": draw(st.integers(0, 300)),
        },
        "forecast": {"enabled": draw(st.booleans()), "quantile": draw(st.floats(0.5, 0.999))},
        "anomaly": {"enabled": draw(st.booleans()), "sensitivity": 0.99},
    }
    if draw(st.booleans()):
        fb = draw(st.integers(lo, hi))
        doc["fallback"] = {"onMetricsUnavailable": "replicas", "replicas": fb}
    if draw(st.booleans()):
        cmin = draw(st.integers(1, 10))
        cmax = draw(st.integers(cmin, 30))
        doc["circuitBreaker"] = {
            "destinationRule": "dr",
            "pendingRequestsPerReplica": draw(st.integers(1, 100)),
            "maxPendingRequests": {"min": draw(st.integers(1, 50)), "max": draw(st.integers(50, 3000))},
            "consecutive5xxErrors": {"min": cmin, "max": cmax, "default": draw(st.integers(cmin, cmax))},
        }
    if draw(st.booleans()):
        doc["routing"] = {"name": "r", "backends": draw(backends()), "maxShiftPerStep": draw(st.integers(1, 30))}
    if draw(st.booleans()):
        doc["schedules"] = [
            {
                "cron": draw(st.sampled_from(["* * * * *", "0 7 * * 1-5", "30 2 * * *"])),
                "durationSeconds": draw(st.integers(60, 7200)),
                "minReplicas": draw(st.integers(0, hi)),
                "timezone": draw(st.sampled_from(["UTC", "America/Chicago", "Asia/Kolkata"])),
            }
        ]
    return ScalingPolicySpec.model_validate(doc)


demand_values = st.one_of(
    st.floats(0, 5000),
    st.none(),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-1.0),
)


@st.composite
def observations(draw: st.DrawFn, backend_names: tuple[str, ...] = ()) -> Observations:
    forecast = None
    if draw(st.booleans()):
        mean = draw(st.floats(0, 5000))
        forecast = ForecastSummary(mean=mean, upper=mean * draw(st.floats(1, 3)), lower=0.0, horizon_seconds=900, model="m")
    anomaly = None
    if draw(st.booleans()):
        signal = draw(st.sampled_from(["demand", "latency", "errors", *[f"backend:{b}" for b in backend_names]]))
        score = draw(st.floats(0, 1))
        anomaly = AnomalySummary(score=score, active=draw(st.booleans()), signal=signal, since=None,
                                 signal_scores={signal: score})
    reactive = None
    if draw(st.booleans()):
        upper = draw(st.one_of(st.floats(0, 20000), st.just(math.nan), st.just(math.inf)))
        reactive = ReactiveSummary(upper=upper, basis=draw(st.sampled_from(["reading", "forecast"])),
                                   ratio=1.0, samples=draw(st.integers(0, 5000)),
                                   hold_seconds=draw(st.one_of(st.none(), st.sampled_from([0.0, 45.0, 75.0, 300.0, 900.0]),
                                                               st.just(math.nan))))
    rates = {b: draw(st.one_of(st.none(), st.floats(0, 1))) for b in backend_names}
    return Observations(
        demand=draw(demand_values),
        current_replicas=draw(st.one_of(st.none(), st.integers(0, 80))),
        ready_replicas=draw(st.one_of(st.none(), st.integers(0, 80))),
        latency_seconds=draw(st.one_of(st.none(), st.floats(0, 5))),
        error_rate=draw(st.one_of(st.none(), st.floats(0, 1))),
        backend_error_rates=rates,
        forecast=forecast,
        anomaly=anomaly,
        reactive=reactive,
    )
