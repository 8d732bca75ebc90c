"""Routing weights: shift traffic away from a backend whose errors are anomalous, and back gradually.

Invariants (checked by property tests): integer weights, summing to 100, each
within [minWeight, maxWeight], and at most ``maxShiftPerStep`` points moved per
decision (points moved = sum of the increases).

The target puts every unhealthy backend at its minWeight and spreads the rest
over the healthy ones in proportion to their normal weights (within bounds);
with no unhealthy backend (or all of them) the target is the normal weights.
The step walks from the current weights towards the target one point at a
time, largest surplus to largest deficit: every intermediate state stays within
bounds because each backend moves only towards its (in-bounds) target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from careplane.decision.breaker import DEFAULT_MAX_ERROR_RATE, active_signals  # one rule for breaker and routing
from careplane.decision.types import Observations
from careplane.policy import Backend, ScalingPolicySpec


@dataclass(frozen=True)
class RoutingDecision:
    weights: dict[str, int] | None
    note: str | None


def unhealthy_backends(policy: ScalingPolicySpec, obs: Observations) -> list[str]:
    """Backends with an anomalous or above-SLO error rate; an unknown rate is not evidence of failure."""
    assert policy.routing is not None
    limit = DEFAULT_MAX_ERROR_RATE
    if policy.slo is not None and policy.slo.maxErrorRate is not None:
        limit = policy.slo.maxErrorRate
    anomalous = set()
    anomaly = obs.anomaly
    if policy.anomaly.enabled and anomaly is not None:
        for signal, score in anomaly.signal_scores.items():
            if signal.startswith("backend:") and score >= policy.anomaly.sensitivity:
                anomalous.add(signal.removeprefix("backend:"))
        for signal in active_signals(anomaly):
            if signal.startswith("backend:"):
                anomalous.add(signal.removeprefix("backend:"))
    bad = []
    for backend in policy.routing.backends:
        rate = obs.backend_error_rates.get(backend.name)
        known = rate is not None and math.isfinite(rate)
        if backend.name in anomalous or (known and rate > limit):  # type: ignore[operator]
            bad.append(backend.name)
    return bad


def target_weights(backends: list[Backend], unhealthy: set[str]) -> dict[str, int]:
    """Normal weights, or unhealthy at minWeight and the rest spread over healthy ones within bounds."""
    normal = {b.name: b.weight for b in backends}
    if not unhealthy or len(unhealthy) == len(backends):
        return normal
    weights = {b.name: b.minWeight for b in backends if b.name in unhealthy}
    healthy = [b for b in backends if b.name not in unhealthy]
    remaining = 100 - sum(weights.values())
    # water-filling: proportional shares, clamped to bounds, re-spread until stable
    fixed: dict[str, int] = {}
    free = list(healthy)
    while free:
        budget = remaining - sum(fixed.values())
        base = sum(max(b.weight, 1) for b in free)
        shares = {b.name: budget * max(b.weight, 1) / base for b in free}
        clamped = [b for b in free if not b.minWeight <= shares[b.name] <= b.maxWeight]
        if not clamped:
            weights.update(_round_to_total(shares, budget, {b.name: b for b in free}))
            break
        for b in clamped:
            fixed[b.name] = b.minWeight if shares[b.name] < b.minWeight else b.maxWeight
        free = [b for b in free if b.name not in fixed]
    weights.update(fixed)
    if sum(weights.values()) != 100 or any(
        not b.minWeight <= weights.get(b.name, -1) <= b.maxWeight for b in backends
    ):
        return normal  # infeasible split: the normal weights are always valid (validated policy)
    return weights


def _round_to_total(shares: Mapping[str, float], total: int, by_name: Mapping[str, Backend]) -> dict[str, int]:
    """Largest-remainder rounding to integers summing to ``total``, within each backend's bounds."""
    out = {n: max(by_name[n].minWeight, min(by_name[n].maxWeight, math.floor(s))) for n, s in shares.items()}
    order = sorted(shares, key=lambda n: shares[n] - math.floor(shares[n]), reverse=True)
    short = total - sum(out.values())
    while short > 0:
        grown = False
        for n in order:
            if short > 0 and out[n] < by_name[n].maxWeight:
                out[n] += 1
                short -= 1
                grown = True
        if not grown:
            break
    return out


def step_towards(current: Mapping[str, int], target: Mapping[str, int], max_shift: int) -> dict[str, int]:
    """Move at most ``max_shift`` points from surplus backends to deficit backends."""
    weights = dict(current)
    for _ in range(max_shift):
        surplus = max(weights, key=lambda n: (weights[n] - target[n], n))
        deficit = min(weights, key=lambda n: (weights[n] - target[n], n))
        if weights[surplus] - target[surplus] <= 0 or weights[deficit] - target[deficit] >= 0:
            break
        weights[surplus] -= 1
        weights[deficit] += 1
    return weights


def valid_weights(backends: list[Backend], weights: Mapping[str, int] | None) -> bool:
    if weights is None or set(weights) != {b.name for b in backends}:
        return False
    return sum(weights.values()) == 100 and all(b.minWeight <= weights[b.name] <= b.maxWeight for b in backends)


def decide_routing(
    policy: ScalingPolicySpec, obs: Observations, previous: Mapping[str, int] | None
) -> RoutingDecision:
    routing = policy.routing
    if routing is None:
        return RoutingDecision(None, None)
    backends = routing.backends
    current = {b.name: b.weight for b in backends}
    if previous is not None and valid_weights(backends, previous):
        current = dict(previous)
    bad = unhealthy_backends(policy, obs)
    target = target_weights(backends, set(bad))
    weights = step_towards(current, target, routing.maxShiftPerStep)
    note = None
    if bad:
        note = f"shifting traffic away from {', '.join(bad)}"
    elif weights != {b.name: b.weight for b in backends}:
        note = "routing returning to normal weights"
    return RoutingDecision(weights, note)
