"""Circuit-breaker settings (an Istio DestinationRule's connection pool and outlier detection).

* maxPendingRequests follows ready replicas x pendingRequestsPerReplica: a queue
  sized to what the workload can drain, clamped to the policy's bounds.
* consecutive5xxErrors drops to the policy's minimum at once while errors or
  latency are anomalous (or above the SLO), ejecting failing endpoints sooner,
  and relaxes by one per decision back to the default afterwards (a sudden
  relax would re-admit flapping endpoints all together).
"""

from __future__ import annotations

from dataclasses import dataclass

from careplane.decision.types import CircuitBreakerSettings, Observations
from careplane.policy import ScalingPolicySpec


@dataclass(frozen=True)
class BreakerDecision:
    settings: CircuitBreakerSettings | None
    consecutive_5xx_errors: int | None
    note: str | None


def service_degraded(policy: ScalingPolicySpec, obs: Observations) -> str | None:
    """Why the service looks unhealthy (latency/error anomaly or SLO breach), or None."""
    anomaly = obs.anomaly
    # A failing routing backend ("backend:<name>") is an error anomaly too: outlier detection is what ejects it.
    error_signal = anomaly is not None and (
        anomaly.signal in ("latency", "errors") or (anomaly.signal or "").startswith("backend:")
    )
    if policy.anomaly.enabled and anomaly is not None and anomaly.active and error_signal:
        return f"{anomaly.signal} anomaly (score {anomaly.score:.2f})"
    slo = policy.slo
    if slo is not None:
        if slo.maxErrorRate is not None and obs.error_rate is not None and obs.error_rate > slo.maxErrorRate:
            return f"error rate {obs.error_rate:.3g} above {slo.maxErrorRate:.3g}"
        if (
            slo.latencyTargetSeconds is not None
            and obs.latency_seconds is not None
            and obs.latency_seconds > slo.latencyTargetSeconds
        ):
            return f"latency {obs.latency_seconds:.3g}s above {slo.latencyTargetSeconds:.3g}s"
    return None


def decide_breaker(
    policy: ScalingPolicySpec, obs: Observations, previous_5xx: int | None, replicas: int | None
) -> BreakerDecision:
    spec = policy.circuitBreaker
    if spec is None:
        return BreakerDecision(None, None, None)
    ready = obs.ready_replicas if obs.ready_replicas is not None else replicas
    if ready is None:
        ready = policy.replicas.min
    pending = min(max(ready * spec.pendingRequestsPerReplica, spec.maxPendingRequests.min), spec.maxPendingRequests.max)
    bounds = spec.consecutive5xxErrors
    prev = previous_5xx if previous_5xx is not None else bounds.default
    prev = min(max(prev, bounds.min), bounds.max)
    degraded = service_degraded(policy, obs)
    if degraded is not None:
        errors, note = bounds.min, f"circuit breaker tightened: {degraded}"
    elif prev < bounds.default:
        errors, note = prev + 1, "circuit breaker relaxing towards its default"
    elif prev > bounds.default:
        errors, note = prev - 1, None
    else:
        errors, note = prev, None
    settings = CircuitBreakerSettings(
        max_pending_requests=pending,
        # one connection per pending request slot: the pool limit and the queue limit move together
        max_connections=pending,
        consecutive_5xx_errors=errors,
        base_ejection_seconds=spec.baseEjectionSeconds,
        max_ejection_percent=spec.maxEjectionPercent,
    )
    return BreakerDecision(settings, errors, note)
