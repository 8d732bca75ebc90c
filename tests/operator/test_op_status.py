"""Status conditions, reasons, messages and transition times; events text; merge patches."""

from __future__ import annotations

import pytest

from careplane.decision.types import (
    Actions,
    AnomalySummary,
    CircuitBreakerSettings,
    Explanation,
    ForecastSummary,
    Observations,
    RecurringPeak,
)
from careplane.operator import events as ev
from careplane.operator import status as st
from careplane.status import ScalingPolicyStatus

T0, T1 = 1_700_000_000.0, 1_700_000_015.0


def conds(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status["conditions"]}


def healthy(**over: object) -> st.Outcome:
    base = dict(
        mode="Active",
        generation=3,
        target=st.Check(True, "Found", "Deployment api has 3 replicas"),
        metrics=st.Check(True, "QuerySucceeded", "demand 120 requests/s"),
        conflict=st.Check(False, "NoConflict", "none"),
        observations=Observations(
            demand=120.0, current_replicas=3, ready_replicas=3,
            forecast=ForecastSummary(150.0, 180.0, 90.0, 900, "holt_winters", 0.8),
            anomaly=AnomalySummary(0.1, False, None, None),
        ),
        explanation=Explanation("forecast", "forecast 180 req/s needs 5 replicas", recommended_replicas=5),
        actions=Actions(replicas=5, weights={"a": 90, "b": 10},
                        circuit_breaker=CircuitBreakerSettings(100, 200, 10, 30, 50)),
        desired_replicas=5,
    )
    base.update(over)
    return st.Outcome(**base)  # type: ignore[arg-type]


def test_healthy_active_status() -> None:
    status = st.build_status(None, healthy(), T0)
    c = conds(status)
    assert [x["type"] for x in status["conditions"]] == [
        "Ready", "TargetFound", "MetricsAvailable", "Conflict", "AnomalyDetected"]
    assert c["Ready"] == {"type": "Ready", "status": "True", "reason": "Reconciled",
                          "message": "forecast 180 req/s needs 5 replicas", "lastTransitionTime": "2023-11-14T22:13:20Z"}
    assert c["MetricsAvailable"]["status"] == "True" and c["Conflict"]["status"] == "False"
    assert c["AnomalyDetected"]["reason"] == "NoAnomaly"
    assert status["desiredReplicas"] == 5 and status["currentReplicas"] == 3 and status["observedGeneration"] == 3
    assert status["demand"] == {"current": 120.0, "forecast": 150.0, "forecastUpper": 180.0, "horizonSeconds": 900,
                                "model": "holt_winters", "modelError": 0.8}
    assert status["circuitBreaker"] == {"maxPendingRequests": 100, "consecutive5xxErrors": 10}
    assert status["routing"] == {"weights": {"a": 90, "b": 10}}
    assert status["lastDecision"]["replicas"] == 5


def test_status_names_the_recurring_peak_that_set_the_bound() -> None:
    """A bound raised by past seasons' rise over this window shows as recurringPeak, 'k of K', and the schema takes it."""
    peak = RecurringPeak(peak=540.0, rise=480.0, agreeing=5, seasons=7, season_seconds=86400.0)
    forecast = ForecastSummary(150.0, 540.0, 90.0, 900, "auto", 0.8, recurring=peak, model_upper=180.0)
    outcome = healthy(observations=Observations(demand=120.0, current_replicas=3, ready_replicas=3, forecast=forecast))
    status = st.build_status(None, outcome, T0)
    assert status["demand"]["forecastUpper"] == 540.0
    assert status["demand"]["recurringPeak"] == 540.0 and status["demand"]["recurringSeasons"] == "5 of 7"
    ScalingPolicyStatus.model_validate(status)  # the CRD's status schema is generated from this model
    assert "recurringPeak" not in st.build_status(None, healthy(), T0)["demand"]


def test_transition_time_moves_only_when_status_changes() -> None:
    first = st.build_status(None, healthy(), T0)
    same = st.build_status(first, healthy(explanation=Explanation("reactive", "other words", recommended_replicas=4)), T1)
    assert conds(same)["Ready"]["lastTransitionTime"] == conds(first)["Ready"]["lastTransitionTime"]
    assert conds(same)["Ready"]["message"] == "other words"
    down = st.build_status(same, healthy(metrics=st.Check(False, "QueryFailed", "connection refused"),
                                         explanation=Explanation("hold", "holding 3 replicas", metrics_available=False)), T1)
    assert conds(down)["MetricsAvailable"] == {"type": "MetricsAvailable", "status": "False", "reason": "QueryFailed",
                                              "message": "connection refused", "lastTransitionTime": "2023-11-14T22:13:35Z"}
    assert conds(down)["Ready"]["reason"] == "MetricsUnavailable"
    assert "holding 3 replicas" in conds(down)["Ready"]["message"]
    assert conds(down)["TargetFound"]["lastTransitionTime"] == conds(first)["TargetFound"]["lastTransitionTime"]
    assert [c["type"] for c in st.transitions(same["conditions"], down["conditions"])] == ["Ready", "MetricsAvailable"]


@pytest.mark.parametrize(
    ("outcome", "reason", "status"),
    [
        (st.Outcome(mode="Active", invalid="spec.replicas.max: is required"), "InvalidPolicy", "False"),
        (st.Outcome(mode="Paused"), "Paused", "True"),
        (st.Outcome(mode="Active", target=st.Check(False, "TargetNotFound", "Deployment api not found")),
         "TargetNotFound", "False"),
        (healthy(conflict=st.Check(True, "HorizontalPodAutoscaler", "HPA api scales it")), "Conflict", "False"),
        (healthy(mode="ForecastOnly"), "ForecastOnly", "True"),
        (healthy(error="ApiError: 503"), "ReconcileError", "False"),
    ],
)
def test_ready_reasons(outcome: st.Outcome, reason: str, status: str) -> None:
    ready = conds(st.build_status(None, outcome, T0))["Ready"]
    assert (ready["reason"], ready["status"]) == (reason, status)


def test_invalid_policy_keeps_other_conditions() -> None:
    first = st.build_status(None, healthy(), T0)
    bad = st.build_status(first, st.Outcome(mode="Active", invalid="x"), T1)
    assert conds(bad)["TargetFound"] == conds(first)["TargetFound"]
    assert conds(bad)["Ready"]["status"] == "False"


def test_active_anomaly_condition() -> None:
    obs = Observations(demand=1.0, current_replicas=1, ready_replicas=1,
                       anomaly=AnomalySummary(0.999, True, "backend:secondary", T0))
    status = st.build_status(None, healthy(observations=obs), T1)
    anomaly = conds(status)["AnomalyDetected"]
    assert anomaly["status"] == "True" and anomaly["reason"] == "BackendSecondaryAnomaly"
    assert status["anomaly"]["since"] == "2023-11-14T22:13:20Z"


def test_merge_patch_removes_stale_values_and_skips_unchanged() -> None:
    old = {"demand": {"current": 5.0, "forecast": 7.0}, "currentReplicas": 2, "desiredReplicas": 3}
    new = {"demand": {"forecast": 7.0}, "currentReplicas": 2, "desiredReplicas": 4}
    assert st.merge_patch(old, new) == {"demand": {"current": None}, "desiredReplicas": 4}
    assert st.merge_patch(new, new) == {}


def test_status_is_valid_for_the_crd_model() -> None:
    with pytest.raises(ValueError):
        st.build_status(None, healthy(desired_replicas="many"), T0)  # type: ignore[arg-type]


def test_event_texts() -> None:
    explanation = Explanation("forecast", "forecast 180 req/s needs 5 replicas", notes=("shift 10 away from b",))
    events = ev.for_actions(
        Actions(replicas=5, weights={"a": 100, "b": 0}), explanation, target_kind="Deployment", target_name="api",
        before_replicas=3, destination_rule="api", route_kind="HTTPRoute", route_name="api-route",
    )
    assert events == [
        ev.Event("Normal", "Scaled", "Deployment api: 3 -> 5 replicas (forecast): forecast 180 req/s needs 5 replicas"),
        ev.Event("Normal", "WeightsShifted", "HTTPRoute api-route: a=100, b=0: shift 10 away from b"),
    ]
    warn = ev.condition_changed({"type": "MetricsAvailable", "status": "False", "reason": "QueryFailed", "message": "x"})
    assert warn == ev.Event("Warning", "QueryFailed", "MetricsAvailable=False: x")
    ok = ev.condition_changed({"type": "MetricsAvailable", "status": "True", "reason": "QuerySucceeded", "message": ""})
    assert ok.type == "Normal"
    assert len(ev.scaled("Deployment", "x", 1, 2, Explanation("r", "m" * 5000)).message) == ev.MAX_MESSAGE


def test_last_decision_time_moves_only_when_the_decision_changes() -> None:
    first = st.build_status(None, healthy(), T0)
    again = st.build_status(first, healthy(), T1)
    assert again["lastDecision"] == first["lastDecision"]
    assert st.merge_patch(first, again) == {}
    other = st.build_status(again, healthy(desired_replicas=6), T1)
    assert other["lastDecision"]["time"] == "2023-11-14T22:13:35Z" and other["lastDecision"]["replicas"] == 6
