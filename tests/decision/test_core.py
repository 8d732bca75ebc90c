"""Example-based tests of each decision term: what sets the replicas, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from careplane.decision import AnomalySummary, DecisionState, ForecastSummary, Observations, decide
from careplane.policy import ScalingPolicySpec

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()  # a Monday, 06:00 in Chicago


def spec(**overrides: Any) -> ScalingPolicySpec:
    doc: dict[str, Any] = {
        "targetRef": {"name": "w"},
        "replicas": {"min": 2, "max": 50, "maxScaleUpStep": 50, "maxScaleDownStep": 50, "scaleDownStabilizationSeconds": 300},
        "demand": {"query": "q", "perReplicaCapacity": 10.0, "targetUtilization": 0.5, "podStartupSeconds": 60},
    }
    for key, value in overrides.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return ScalingPolicySpec.model_validate(doc)


def fc(upper: float, mean: float | None = None) -> ForecastSummary:
    return ForecastSummary(mean=upper if mean is None else mean, upper=upper, lower=0.0, horizon_seconds=900, model="m")


def obs(demand: float | None, current: int = 5, **kw: Any) -> Observations:
    return Observations(demand=demand, current_replicas=current, ready_replicas=current, **kw)


def test_forecast_sets_replicas_for_the_upper_quantile() -> None:
    actions, _, why = decide(spec(), obs(50.0, forecast=fc(upper=120.0)), DecisionState.initial(), T0)
    assert actions.replicas == 12 and why.reason == "forecast"
    assert why.terms["forecast"] == 12 and why.terms["reactive"] == 5  # full capacity: the quantile carries headroom


def test_without_forecast_the_reactive_floor_keeps_target_utilisation_headroom() -> None:
    actions, _, why = decide(spec(), obs(50.0, current=8), DecisionState.initial(), T0)
    assert actions.replicas == 10 and why.reason == "reactive"
    # ... and needing twice the ready replicas is Knative's panic trigger
    actions, _, why = decide(spec(), obs(50.0, current=5), DecisionState.initial(), T0)
    assert actions.replicas == 10 and why.reason == "panic"


def test_critical_workloads_keep_headroom_even_with_a_forecast() -> None:
    actions, _, why = decide(spec(criticality="critical"), obs(50.0, forecast=fc(60.0)), DecisionState.initial(), T0)
    assert actions.replicas == 10 and why.reason == "reactive"


def test_panic_when_demand_jumps_far_beyond_the_forecast_and_no_scale_down_during_the_window() -> None:
    policy = spec(replicas={"scaleDownStabilizationSeconds": 0})
    actions, state, why = decide(policy, obs(100.0, forecast=fc(40.0)), DecisionState.initial(), T0)
    assert why.reason == "panic" and actions.replicas == 20  # demand at targetUtilization
    calm = obs(10.0, current=20, forecast=fc(40.0))
    actions, state, why = decide(policy, calm, state, T0 + 30)
    assert actions.replicas == 20 and why.reason == "panic"  # inside the panic window: hold
    actions, state, why = decide(policy, calm, state, T0 + 30 + 61)
    assert actions.replicas == 4 and why.reason == "forecast"  # the window has passed


def test_batch_workloads_do_not_panic() -> None:
    _, _, why = decide(spec(criticality="batch"), obs(100.0, forecast=fc(40.0)), DecisionState.initial(), T0)
    assert why.reason != "panic" and "panic" not in why.terms


def test_a_benign_demand_spike_is_served_but_not_chased() -> None:
    spike = AnomalySummary(score=0.999, active=True, signal="demand", since=T0, signal_scores={"demand": 0.999})
    policy = spec(slo={"latencyTargetSeconds": 0.3, "maxErrorRate": 0.01, "latencyQuery": "l", "errorRateQuery": "e"})
    healthy = obs(100.0, forecast=fc(40.0), anomaly=spike, latency_seconds=0.1, error_rate=0.0)
    actions, _, why = decide(policy, healthy, DecisionState.initial(), T0)
    assert actions.replicas == 10 and "panic" not in why.terms  # current demand at full capacity only
    hurting = obs(100.0, forecast=fc(40.0), anomaly=spike, latency_seconds=0.9, error_rate=0.0)
    actions, _, why = decide(policy, hurting, DecisionState.initial(), T0)
    assert actions.replicas == 20 and why.reason == "panic"  # latency suffers: chase it


def anomalous(*signals: str) -> AnomalySummary:
    """An anomaly summary with these signals active."""
    return AnomalySummary(score=0.999, active=True, signal=signals[0], since=T0,
                          signal_scores=dict.fromkeys(signals, 0.999), active_signals=tuple(sorted(signals)))


def test_without_a_latency_measurement_a_saturating_spike_is_real_demand() -> None:
    """No latency SLO (vitals ingestion): health is judged by the reading against the ready capacity."""
    errors_only = spec(criticality="critical", slo={"maxErrorRate": 0.01, "errorRateQuery": "e"})
    spike = anomalous("demand")
    # 20 req/s on 5 ready replicas of 10 at targetUtilization 0.5 = 25: fits, so served at full capacity
    # (2 replicas) without the critical headroom (4)
    within = obs(20.0, anomaly=spike, error_rate=0.0)
    actions, _, why = decide(errors_only, within, DecisionState.initial(), T0)
    assert actions.replicas == 2 and "not extrapolated" in why.message
    # a saturated service reads its capacity (50 req/s): holding "current demand at full capacity" would
    # hold the replicas for the whole surge; beyond targetUtilization it is scaled as real demand
    saturated = obs(50.0, forecast=fc(60.0), anomaly=spike, error_rate=0.0)
    actions, _, why = decide(errors_only, saturated, DecisionState.initial(), T0)
    assert actions.replicas == 10 and why.reason == "reactive" and "not extrapolated" not in why.message


def test_a_spike_that_follows_errors_is_a_retry_storm_and_is_not_chased() -> None:
    """Errors first (above the SLO while demand is ordinary), then anomalous demand: served at full capacity,
    not chased; the other order is an overload, and is."""
    policy = spec(criticality="critical", slo={"maxErrorRate": 0.01, "errorRateQuery": "e"})
    _, state, _ = decide(policy, obs(20.0, error_rate=0.2), DecisionState.initial(), T0)
    assert state.errors_since == T0 and state.errors_before_demand
    state = DecisionState.from_dict(state.to_dict())  # the episode survives an operator restart
    actions, state, why = decide(policy, obs(50.0, anomaly=anomalous("demand"), error_rate=0.02), state, T0 + 15)
    assert actions.replicas == 5 and "panic" not in why.terms and "retry storm" in why.message
    assert state.errors_since == T0  # the episode goes on
    # once the errors are over, the same demand is real demand again (critical headroom: 50 / (10 x 0.5))
    actions, state, why = decide(policy, obs(50.0, anomaly=anomalous("demand"), error_rate=0.0), state, T0 + 30)
    assert actions.replicas == 10 and state.errors_since is None and "retry storm" not in why.message
    # an error anomaly or a failing routing backend starts an episode too (no error-rate reading needed)
    _, state, _ = decide(policy, obs(20.0, anomaly=anomalous("errors")), DecisionState.initial(), T0)
    assert state.errors_before_demand
    assert decide(policy, obs(50.0, anomaly=anomalous("demand", "errors")), state, T0 + 15)[0].replicas == 5
    # an unknown error rate neither starts nor ends an episode
    _, state, _ = decide(policy, obs(20.0, error_rate=0.2), DecisionState.initial(), T0)
    _, gap, _ = decide(policy, obs(20.0, error_rate=None), state, T0 + 15)
    assert gap.errors_since == T0 and gap.errors_before_demand


def test_an_overload_that_causes_errors_is_chased() -> None:
    policy = spec(criticality="critical", slo={"maxErrorRate": 0.01, "errorRateQuery": "e"})
    _, state, _ = decide(policy, obs(50.0, anomaly=anomalous("demand"), error_rate=0.0), DecisionState.initial(), T0)
    # demand first, then the errors it causes, even with both anomalies active in the same decision
    actions, state, why = decide(policy, obs(50.0, anomaly=anomalous("demand", "errors"), error_rate=0.2),
                                 state, T0 + 15)
    assert state.errors_since == T0 + 15 and not state.errors_before_demand
    assert actions.replicas == 10 and "retry storm" not in why.message
    first, _, _ = decide(policy, obs(50.0, anomaly=anomalous("demand", "errors"), error_rate=0.2),
                         DecisionState.initial(), T0)
    assert first.replicas == 10  # both at once: not known to be errors first, so chased


def test_scale_down_waits_for_the_stabilisation_window() -> None:
    policy = spec()
    _, state, _ = decide(policy, obs(90.0, current=9, forecast=fc(90.0)), DecisionState.initial(), T0)
    actions, state, why = decide(policy, obs(20.0, current=9, forecast=fc(20.0)), state, T0 + 60)
    assert actions.replicas == 9 and why.reason == "stabilization"
    actions, state, why = decide(policy, obs(20.0, current=9, forecast=fc(20.0)), state, T0 + 301)
    assert actions.replicas == 2


def test_step_limits_and_bounds() -> None:
    policy = spec(replicas={"maxScaleUpStep": 3, "maxScaleDownStep": 1, "scaleDownStabilizationSeconds": 0, "max": 7})
    actions, _, why = decide(policy, obs(1000.0, current=2), DecisionState.initial(), T0)
    assert actions.replicas == 5 and why.reason == "step-limit"
    actions, _, why = decide(policy, obs(1000.0, current=6), DecisionState.initial(), T0)
    assert actions.replicas == 7 and why.reason == "max"
    actions, _, why = decide(policy, obs(0.0, current=6), DecisionState.initial(), T0)
    assert actions.replicas == 5 and why.reason == "step-limit"


@pytest.mark.parametrize("demand", [None, float("nan"), float("inf"), -3.0])
def test_missing_demand_holds_or_falls_back_never_zero(demand: float | None) -> None:
    actions, state, why = decide(spec(), obs(demand, current=7), DecisionState.initial(), T0)
    assert actions.replicas == 7 and why.reason == "hold" and not why.metrics_available
    assert state.metrics_missing_since == T0
    fallback = spec(fallback={"onMetricsUnavailable": "replicas", "replicas": 12})
    actions, _, why = decide(fallback, obs(demand, current=7), DecisionState.initial(), T0)
    assert actions.replicas == 12 and why.reason == "fallback"
    actions, _, why = decide(spec(), Observations(demand=demand, current_replicas=None, ready_replicas=None),
                             DecisionState.initial(), T0)
    assert actions.replicas is None and why.reason == "hold"  # nothing known: leave it alone


def test_schedule_floor_follows_the_local_clock() -> None:
    clinic = spec(schedules=[{"cron": "0 7 * * 1-5", "durationSeconds": 3600, "minReplicas": 15, "timezone": "America/Chicago"}])
    before, _, _ = decide(clinic, obs(10.0), DecisionState.initial(), T0 + 3599)  # 06:59:59 CST
    during, _, why = decide(clinic, obs(10.0), DecisionState.initial(), T0 + 3600)  # 07:00 CST = 13:00 UTC
    assert before.replicas == 2 and during.replicas == 15 and why.reason == "schedule"
    summer = datetime(2026, 7, 6, 12, 30, tzinfo=UTC).timestamp()  # 07:30 CDT
    assert decide(clinic, obs(10.0), DecisionState.initial(), summer)[0].replicas == 15


def test_forecast_only_recommends_and_paused_does_nothing() -> None:
    actions, _, why = decide(spec(mode="ForecastOnly"), obs(50.0, forecast=fc(120.0)), DecisionState.initial(), T0)
    assert actions.replicas is None and actions.weights is None and why.recommended_replicas == 12
    state = DecisionState(last_replicas=3)
    actions, same, why = decide(spec(mode="Paused"), obs(500.0), state, T0)
    assert actions.replicas is None and same is state and why.reason == "paused"


BREAKER = {"destinationRule": "dr", "pendingRequestsPerReplica": 20, "maxPendingRequests": {"min": 10, "max": 300},
           "consecutive5xxErrors": {"min": 3, "max": 20, "default": 10}}


def test_circuit_breaker_follows_ready_replicas_and_tightens_on_error_anomalies() -> None:
    policy = spec(circuitBreaker=BREAKER)
    actions, state, _ = decide(policy, obs(50.0, current=40), DecisionState.initial(), T0)
    assert actions.circuit_breaker is not None
    assert actions.circuit_breaker.max_pending_requests == 300  # 40 x 20 clamped to the bound
    assert actions.circuit_breaker.consecutive_5xx_errors == 10
    errors = AnomalySummary(score=0.999, active=True, signal="errors", since=T0, signal_scores={"errors": 0.999})
    actions, state, why = decide(policy, obs(50.0, current=5, anomaly=errors), state, T0 + 15)
    assert actions.circuit_breaker is not None and actions.circuit_breaker.consecutive_5xx_errors == 3
    assert actions.circuit_breaker.max_pending_requests == 100
    assert any("tightened" in n for n in why.notes)
    seen = []
    for i in range(9):
        actions, state, _ = decide(policy, obs(50.0, current=5), state, T0 + 30 + 15 * i)
        assert actions.circuit_breaker is not None
        seen.append(actions.circuit_breaker.consecutive_5xx_errors)
    assert seen == [4, 5, 6, 7, 8, 9, 10, 10, 10]  # relaxed gradually


def test_a_failing_backend_tightens_the_breaker_but_a_demand_anomaly_does_not() -> None:
    policy = spec(circuitBreaker=BREAKER)
    _, state, _ = decide(policy, obs(50.0, current=5), DecisionState.initial(), T0)
    backend = AnomalySummary(score=0.999, active=True, signal="backend:secondary", since=T0,
                             signal_scores={"backend:secondary": 0.999})
    actions, _, _ = decide(policy, obs(50.0, current=5, anomaly=backend), state, T0 + 15)
    assert actions.circuit_breaker is not None and actions.circuit_breaker.consecutive_5xx_errors == 3
    demand = AnomalySummary(score=0.999, active=True, signal="demand", since=T0, signal_scores={"demand": 0.999})
    actions, _, _ = decide(policy, obs(50.0, current=5, anomaly=demand), state, T0 + 15)
    assert actions.circuit_breaker is not None and actions.circuit_breaker.consecutive_5xx_errors == 10


ROUTING = {"name": "r", "maxShiftPerStep": 10, "backends": [
    {"name": "primary", "weight": 90, "minWeight": 20, "maxWeight": 100},
    {"name": "secondary", "weight": 10, "minWeight": 0, "maxWeight": 80}]}


def test_routing_shifts_away_from_a_failing_backend_and_back_gradually() -> None:
    policy = spec(routing=ROUTING)
    state = DecisionState.initial()
    failing = {"primary": 0.3, "secondary": 0.0}
    history = []
    for i in range(8):
        actions, state, _ = decide(policy, obs(50.0, backend_error_rates=failing), state, T0 + 15 * i)
        assert actions.weights is not None
        history.append(actions.weights["primary"])
    assert history == [80, 70, 60, 50, 40, 30, 20, 20]  # 10 points a step, down to primary's minWeight... bounded by secondary's max
    healthy = {"primary": 0.0, "secondary": 0.0}
    back = []
    for i in range(8):
        actions, state, _ = decide(policy, obs(50.0, backend_error_rates=healthy), state, T0 + 200 + 15 * i)
        assert actions.weights is not None
        back.append(actions.weights["primary"])
    assert back == [30, 40, 50, 60, 70, 80, 90, 90]
