"""Circuit-breaker settings (an Istio DestinationRule's connection pool and outlier detection).

* maxPendingRequests follows ready replicas x pendingRequestsPerReplica: a queue
  sized to what the workload can drain, clamped to the policy's bounds. It is
  never smaller than what the ready replicas drain within the SLO latency
  (ready x perReplicaCapacity x latencyTargetSeconds): a request refused with a
  fast 503 although it would have been served within the SLO is an error the
  queue caused (during a surge, until new pods are ready, every such refusal
  counts against the error SLO).
* consecutive5xxErrors drops to the policy's minimum at once while errors or
  latency are anomalous (or above the SLO), or a routing backend's error rate
  is above the limit routing drains it at, ejecting failing endpoints sooner,
  and relaxes by one per decision back to the default afterwards (a sudden
  relax would re-admit flapping endpoints all together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from careplane.decision.types import AnomalySummary, CircuitBreakerSettings, Observations
from careplane.policy import ScalingPolicySpec

# A backend's error rate counts as failing above this when the policy sets no maxErrorRate (routing's rule too).
DEFAULT_MAX_ERROR_RATE = 0.05


@dataclass(frozen=True)
class BreakerDecision:
    settings: CircuitBreakerSettings | None
    consecutive_5xx_errors: int | None
    note: str | None


def is_error_signal(signal: str) -> bool:
    """Latency, errors, and a failing routing backend (``backend:<name>``: outlier detection ejects it)."""
    return signal in ("latency", "errors") or signal.startswith("backend:")


def active_signals(anomaly: AnomalySummary | None) -> tuple[str, ...]:
    """Every signal with an anomaly in progress.

    A summary that lists none but is active (built by hand, or by a monitor
    that reports one signal) counts its ``signal``.
    """
    if anomaly is None or not anomaly.active:
        return ()
    if anomaly.active_signals:
        return tuple(anomaly.active_signals)
    return (anomaly.signal,) if anomaly.signal else ()


def failing_backends(policy: ScalingPolicySpec, obs: Observations) -> list[tuple[str, float, float]]:
    """(backend, error rate, limit) for each routing backend whose known error rate is above the limit.

    The limit is the SLO's maxErrorRate, or DEFAULT_MAX_ERROR_RATE without one (as routing uses).
    """
    if policy.routing is None:
        return []
    limit = DEFAULT_MAX_ERROR_RATE
    if policy.slo is not None and policy.slo.maxErrorRate is not None:
        limit = policy.slo.maxErrorRate
    out = []
    for backend in policy.routing.backends:
        rate = obs.backend_error_rates.get(backend.name)
        if rate is not None and math.isfinite(rate) and rate > limit:
            out.append((backend.name, float(rate), limit))
    return out


def service_degraded(policy: ScalingPolicySpec, obs: Observations) -> str | None:
    """Why the service looks unhealthy (any latency/error anomaly, an SLO breach, a failing backend), or None.

    Every active signal is looked at, not only the strongest: an error
    anomaly that starts during a demand anomaly must tighten the breaker too.
    """
    anomaly = obs.anomaly
    if policy.anomaly.enabled and anomaly is not None:
        errors = [s for s in active_signals(anomaly) if is_error_signal(s)]
        if errors:
            scores = anomaly.signal_scores
            return ", ".join(f"{s} anomaly (score {scores.get(s, anomaly.score):.2f})" for s in errors)
    slo = policy.slo
    if slo is not None and slo.maxErrorRate is not None and obs.error_rate is not None and (
        obs.error_rate > slo.maxErrorRate
    ):
        return f"error rate {obs.error_rate:.3g} above {slo.maxErrorRate:.3g}"
    # A routing backend failing above the limit routing drains it at: outlier detection is what ejects its
    # endpoints, so it tightens on the same evidence and in the same decision. (Waiting for the service-wide
    # ratio is too late: routing drains the backend at once, and the ratio may never cross the SLO.)
    failing = failing_backends(policy, obs)
    if failing:
        return ", ".join(f"backend {name} error rate {rate:.3g} above {limit:.3g}" for name, rate, limit in failing)
    if (
        slo is not None
        and slo.latencyTargetSeconds is not None
        and obs.latency_seconds is not None
        and obs.latency_seconds > slo.latencyTargetSeconds
    ):
        return f"latency {obs.latency_seconds:.3g}s above {slo.latencyTargetSeconds:.3g}s"
    return None


def slo_drain(policy: ScalingPolicySpec, ready: int) -> int:
    """Requests ``ready`` replicas serve within the SLO latency (0 without a latency target)."""
    slo = policy.slo
    if slo is None or slo.latencyTargetSeconds is None:
        return 0
    return math.floor(ready * policy.demand.perReplicaCapacity * slo.latencyTargetSeconds + 1e-9)


def decide_breaker(
    policy: ScalingPolicySpec, obs: Observations, previous_5xx: int | None, replicas: int | None
) -> BreakerDecision:
    spec = policy.circuitBreaker
    if spec is None:
        return BreakerDecision(None, None, None)
    ready = obs.ready_replicas if obs.ready_replicas is not None else replicas
    if ready is None:
        ready = policy.replicas.min
    pending = max(ready * spec.pendingRequestsPerReplica, slo_drain(policy, ready), spec.maxPendingRequests.min)
    pending = min(pending, spec.maxPendingRequests.max)
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
