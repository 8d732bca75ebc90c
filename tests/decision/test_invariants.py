"""Property tests: DESIGN.md's safety invariants hold for random policies and observation streams (gaps included)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from careplane.decision import Actions, DecisionState, Observations, decide
from careplane.policy import FallbackAction, Mode, ScalingPolicySpec

from .strategies import observations, policies

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ScalingPolicySpec, list[tuple[float, Observations, bool]]]:
    policy = draw(policies())
    names = tuple(b.name for b in policy.routing.backends) if policy.routing else ()
    stream = []
    t = T0 + draw(st.integers(0, 7 * 86400))
    for _ in range(draw(st.integers(1, 25))):
        t += draw(st.sampled_from([5, 15, 15, 60, 300, 3600]))
        stream.append((t, draw(observations(names)), draw(st.booleans())))  # bool: feed back our replicas
    return policy, stream


def known(demand: float | None) -> bool:
    return demand is not None and math.isfinite(demand) and demand >= 0


def check_step(policy: ScalingPolicySpec, obs: Observations, state: DecisionState, now: float) -> DecisionState:
    actions, new_state, explanation = decide(policy, obs, state, now)
    bounds = policy.replicas
    if policy.mode == Mode.PAUSED:
        assert actions == Actions() and new_state == state
        return new_state
    if policy.mode == Mode.FORECAST_ONLY:
        assert actions == Actions()
    rec = explanation.recommended_replicas
    current = obs.current_replicas if obs.current_replicas is not None else state.last_replicas
    # missing metrics are never read as zero demand, and are reported
    assert explanation.metrics_available == known(obs.demand)
    if rec is None:
        assert not known(obs.demand) and current is None
    else:
        assert bounds.min <= rec <= bounds.max
        if current is not None and bounds.min <= current <= bounds.max:
            assert rec - current <= bounds.maxScaleUpStep
            assert current - rec <= bounds.maxScaleDownStep
            if not known(obs.demand) and policy.fallback.onMetricsUnavailable == FallbackAction.HOLD:
                assert rec >= current  # hold: only a schedule floor can raise it, nothing lowers it
            if known(obs.demand) and rec < current:
                # scale-down stabilisation: never below the highest recommendation of the window the workload's
                # learned hold calls for, which is never longer than the declared one (careplane.decision.hold)
                declared = float(bounds.scaleDownStabilizationSeconds)
                assert all(t == now or now - declared < t < now for t, _ in new_state.recommendations)
                learned = obs.reactive.hold_seconds if obs.reactive is not None else None
                hold = declared if learned is None or not math.isfinite(learned) else min(declared, learned)
                window = [r for t, r in new_state.recommendations if t == now or now - hold < t]
                assert rec >= min(current, max(window))
    if policy.mode == Mode.ACTIVE:
        assert actions.replicas == rec
        if policy.routing is not None:
            w = actions.weights
            assert w is not None
            assert all(isinstance(v, int) for v in w.values())
            assert sum(w.values()) == 100
            for b in policy.routing.backends:
                assert b.minWeight <= w[b.name] <= b.maxWeight
            before = state.weights_map() or {b.name: b.weight for b in policy.routing.backends}
            assert sum(max(0, w[n] - before[n]) for n in w) <= policy.routing.maxShiftPerStep
        else:
            assert actions.weights is None
        cb = policy.circuitBreaker
        if cb is not None:
            s = actions.circuit_breaker
            assert s is not None
            assert cb.maxPendingRequests.min <= s.max_pending_requests <= cb.maxPendingRequests.max
            assert cb.consecutive5xxErrors.min <= s.consecutive_5xx_errors <= cb.consecutive5xxErrors.max
        else:
            assert actions.circuit_breaker is None
    # the state survives a JSON round trip through the CR status unchanged
    assert DecisionState.from_dict(json.loads(json.dumps(new_state.to_dict()))) == new_state
    return new_state


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_hold_over_random_streams(scenario: tuple[ScalingPolicySpec, list]) -> None:
    policy, stream = scenario
    state = DecisionState.initial()
    last: int | None = None
    for now, obs, feed_back in stream:
        if feed_back and last is not None:
            obs = replace(obs, current_replicas=last, ready_replicas=last)
        state = check_step(policy, obs, state, now)
        last = state.last_replicas


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(0, 24))
def test_restart_from_persisted_state_reaches_the_same_outcome(scenario: tuple[ScalingPolicySpec, list], cut: int) -> None:
    """An operator that persists the state, restarts, and reloads it decides exactly as one that never stopped."""
    policy, stream = scenario
    a = b = DecisionState.initial()
    for i, (now, obs, _) in enumerate(stream):
        if i == cut:
            b = DecisionState.from_dict(json.loads(json.dumps(b.to_dict())))
        out_a = decide(policy, obs, a, now)
        out_b = decide(policy, obs, b, now)
        assert out_a == out_b
        a, b = out_a[1], out_b[1]


@settings(max_examples=40, deadline=None)
@given(policies(), st.lists(st.one_of(st.none(), st.just(math.nan)), min_size=1, max_size=10), st.integers(0, 80))
def test_a_stream_of_gaps_never_scales_to_zero(policy: ScalingPolicySpec, gaps: list, current: int) -> None:
    assume(policy.mode != Mode.PAUSED)
    state = DecisionState.initial()
    for i, gap in enumerate(gaps):
        obs = Observations(demand=gap, current_replicas=current, ready_replicas=current)
        _actions, state, explanation = decide(policy, obs, state, T0 + 60 * i)
        assert not explanation.metrics_available
        rec = explanation.recommended_replicas
        assert rec is not None and rec >= policy.replicas.min
        if policy.fallback.onMetricsUnavailable == FallbackAction.HOLD and policy.replicas.min <= current <= policy.replicas.max:
            assert rec >= current
        current = rec
