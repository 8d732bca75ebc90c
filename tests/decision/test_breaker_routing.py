"""Breaker and routing read every active anomaly signal, not only the strongest one.

The sandbox demo showed why: a demand anomaly (score 1.0) was the summary's
``signal`` for the whole run, so an error anomaly during it never tightened
the breaker. ``AnomalySummary.active_signals`` lists them all.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from careplane.decision import AnomalySummary, DecisionState, Observations, decide
from careplane.decision.breaker import active_signals, decide_breaker, is_error_signal, service_degraded
from careplane.decision.routing import unhealthy_backends
from careplane.policy import ScalingPolicySpec

T0 = 1_795_000_000.0
BREAKER = {"destinationRule": "dr", "pendingRequestsPerReplica": 20, "maxPendingRequests": {"min": 10, "max": 300},
           "consecutive5xxErrors": {"min": 3, "max": 20, "default": 10}}
ROUTING = {"name": "r", "maxShiftPerStep": 10, "backends": [
    {"name": "primary", "weight": 90, "minWeight": 50, "maxWeight": 100},
    {"name": "secondary", "weight": 10, "minWeight": 0, "maxWeight": 50}]}


def spec(**extra: Any) -> ScalingPolicySpec:
    doc: dict[str, Any] = {
        "targetRef": {"name": "w"},
        "replicas": {"min": 2, "max": 50},
        "demand": {"query": "q", "perReplicaCapacity": 50.0, "targetUtilization": 0.7, "podStartupSeconds": 90},
        "slo": {"errorRateQuery": "e", "maxErrorRate": 0.01, "latencyQuery": "l", "latencyTargetSeconds": 0.3},
        "circuitBreaker": BREAKER, "routing": ROUTING, **extra,
    }
    return ScalingPolicySpec.model_validate(doc)


def summary(*active: str, strongest: str = "demand") -> AnomalySummary:
    return AnomalySummary(score=1.0, active=bool(active), signal=strongest, since=T0 if active else None,
                          signal_scores={s: 1.0 for s in (strongest, *active)}, active_signals=tuple(sorted(active)))


def obs(anomaly: AnomalySummary | None = None, **kw: Any) -> Observations:
    return Observations(demand=60.0, current_replicas=2, ready_replicas=2, anomaly=anomaly, **kw)


def test_an_error_anomaly_behind_a_stronger_demand_anomaly_tightens_the_breaker() -> None:
    hidden = summary("demand", "errors", strongest="demand")
    decision = decide_breaker(spec(), obs(hidden, error_rate=0.005), None, 2)
    assert decision.consecutive_5xx_errors == 3 and decision.note and "errors anomaly" in decision.note
    # a demand anomaly alone, with errors and latency within the SLO, leaves the breaker alone
    assert decide_breaker(spec(), obs(summary("demand"), error_rate=0.005), None, 2).consecutive_5xx_errors == 10


def test_a_failing_backend_behind_a_demand_anomaly_is_drained() -> None:
    hidden = summary("demand", "backend:secondary", strongest="demand")
    assert unhealthy_backends(spec(), obs(hidden)) == ["secondary"]
    actions, _, _ = decide(spec(), obs(hidden), DecisionState.initial(), T0)
    assert actions.weights == {"primary": 100, "secondary": 0}


def test_the_breaker_stays_tightened_while_errors_stay_above_the_slo_after_the_anomaly_ends() -> None:
    """An anomaly ends once the error level is the new normal; errors above the SLO still are not healthy."""
    policy = spec()
    state = DecisionState.initial()
    seen = []
    for i, (anomaly, rate) in enumerate([(summary("errors"), 0.06), (None, 0.06), (None, 0.03), (None, 0.02),
                                         (None, 0.005), (None, 0.005)]):
        actions, state, _ = decide(policy, obs(anomaly, error_rate=rate), state, T0 + 15 * i)
        assert actions.circuit_breaker is not None
        seen.append(actions.circuit_breaker.consecutive_5xx_errors)
    assert seen == [3, 3, 3, 3, 4, 5]  # tightened while above 1 %, then relaxes one step per decision


def test_a_summary_without_active_signals_still_counts_its_signal() -> None:
    """Summaries built by hand or by an older monitor list no ``active_signals``: their ``signal`` counts."""
    old = AnomalySummary(score=0.999, active=True, signal="latency", since=T0, signal_scores={"latency": 0.999})
    assert active_signals(old) == ("latency",)
    assert service_degraded(spec(), obs(old)) is not None
    assert active_signals(AnomalySummary(score=0.999, active=False, signal="errors", since=None)) == ()


SIGNALS = st.sampled_from(["demand", "latency", "errors", "backend:primary", "backend:secondary"])


@given(active=st.lists(SIGNALS, unique=True, max_size=5), strongest=SIGNALS,
       error_rate=st.one_of(st.none(), st.floats(0.0, 0.5)), enabled=st.booleans())
def test_breaker_tightens_exactly_when_an_error_signal_is_active_or_the_slo_is_breached(
    active: list[str], strongest: str, error_rate: float | None, enabled: bool
) -> None:
    policy = spec(anomaly={"enabled": enabled})
    anomaly = summary(*active, strongest=strongest)
    decision = decide_breaker(policy, obs(anomaly, error_rate=error_rate), None, 2)
    expected = (enabled and any(is_error_signal(s) for s in active)) or (error_rate is not None and error_rate > 0.01)
    assert (decision.consecutive_5xx_errors == 3) == expected
    # routing also drains a backend whose score alone reaches the sensitivity (``strongest`` scores 1.0)
    scored = {s for s, v in anomaly.signal_scores.items() if v >= policy.anomaly.sensitivity}
    bad = unhealthy_backends(policy, obs(anomaly))
    assert set(bad) == ({s.removeprefix("backend:") for s in {*active, *scored} if s.startswith("backend:")}
                        if enabled else set())


def test_the_pending_queue_is_never_smaller_than_what_ready_replicas_drain_within_the_slo_latency() -> None:
    # 20 per replica declared; 50 req/s x 0.3 s = 15 per replica within the SLO: the declared value stands
    assert decide_breaker(spec(), obs(), None, 2).settings.max_pending_requests == 40  # type: ignore[union-attr]
    # a slower SLO (1 s): 4 ready replicas drain 200 requests within it, more than 4 x 20
    slow = spec(slo={"errorRateQuery": "e", "maxErrorRate": 0.01, "latencyQuery": "l", "latencyTargetSeconds": 1.0})
    four = Observations(demand=60.0, current_replicas=4, ready_replicas=4)
    assert decide_breaker(slow, four, None, 4).settings.max_pending_requests == 200  # type: ignore[union-attr]
    # ... and the policy's bounds still win (max 300)
    many = Observations(demand=60.0, current_replicas=40, ready_replicas=40)
    assert decide_breaker(slow, many, None, 40).settings.max_pending_requests == 300  # type: ignore[union-attr]


def test_a_backend_routing_drains_tightens_the_breaker_in_the_same_decision() -> None:
    """The demo's second failure: routing drained the failing region at its first errors, so the service-wide
    ratio never crossed the SLO and the breaker stayed relaxed while the region failed."""
    failing = obs(error_rate=0.004, backend_error_rates={"primary": 0.0, "secondary": 0.6})
    actions, _, why = decide(spec(), failing, DecisionState.initial(), T0)
    assert actions.weights == {"primary": 100, "secondary": 0}
    assert actions.circuit_breaker is not None and actions.circuit_breaker.consecutive_5xx_errors == 3
    assert any("backend secondary error rate" in n for n in why.notes)
    # an unknown rate (a drained backend has no traffic) is not evidence of failure
    drained = obs(error_rate=0.0, backend_error_rates={"primary": 0.0, "secondary": None})
    assert decide_breaker(spec(), drained, None, 2).consecutive_5xx_errors == 10
