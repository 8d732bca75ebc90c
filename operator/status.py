"""What one reconcile tells the SRE: the ScalingPolicy ``status`` as pure functions.

No I/O and no clock here (``now`` is an argument), so tests pin every reason,
message and transition time. The shape is :class:`careplane.status.ScalingPolicyStatus`
(the CRD's status schema); :func:`build_status` validates its output against
that model so the operator can never write a status the API server rejects.

Conditions follow the Kubernetes convention: ``lastTransitionTime`` changes
only when ``status`` changes; reason and message may change in between.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from careplane.decision.types import Actions, Explanation, Observations
from careplane.status import ConditionType, ScalingPolicyStatus

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
CONDITION_ORDER = tuple(ConditionType)


def rfc3339(moment: float | dt.datetime) -> str:
    """Seconds since the epoch (or an aware datetime) as RFC 3339 UTC with a ``Z``."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Check:
    """The verdict of one check, as a condition: ``ok`` None means not known this time."""

    ok: bool | None
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Outcome:
    """Everything one reconcile learned and did, in the terms the status speaks.

    A field left ``None`` was not evaluated this time (e.g. an invalid policy
    stops before the target is looked at); its condition keeps its last value.
    """

    mode: str
    generation: int | None = None
    invalid: str | None = None  # the PolicyError text when the policy is invalid
    target: Check | None = None  # TargetFound
    metrics: Check | None = None  # MetricsAvailable
    conflict: Check | None = None  # Conflict: ok=True means a conflict exists
    error: str | None = None  # an unexpected failure (API 5xx after retries, ...)
    observations: Observations | None = None
    explanation: Explanation | None = None
    actions: Actions | None = None  # what decide() returned (recommendations in ForecastOnly)
    desired_replicas: int | None = None


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str


def _bool(value: bool | None) -> str:
    return UNKNOWN if value is None else (TRUE if value else FALSE)


def ready_condition(outcome: Outcome) -> Condition:
    """Ready says whether careplane is doing what the policy asks, and if not, the first reason why."""
    ready = ConditionType.READY.value
    if outcome.invalid is not None:
        return Condition(ready, FALSE, "InvalidPolicy", f"policy rejected: {outcome.invalid}")
    if outcome.mode == "Paused":
        return Condition(ready, TRUE, "Paused", "mode is Paused: careplane reads nothing and changes nothing")
    if outcome.target is not None and outcome.target.ok is False:
        return Condition(ready, FALSE, "TargetNotFound", outcome.target.message)
    if outcome.conflict is not None and outcome.conflict.ok:
        return Condition(ready, FALSE, "Conflict", outcome.conflict.message)
    if outcome.error is not None:
        return Condition(ready, FALSE, "ReconcileError", outcome.error)
    if outcome.metrics is not None and outcome.metrics.ok is False:
        what = outcome.explanation.message if outcome.explanation else "holding the current replicas"
        return Condition(ready, FALSE, "MetricsUnavailable", f"{outcome.metrics.message}; {what}")
    if outcome.mode == "ForecastOnly":
        return Condition(ready, TRUE, "ForecastOnly", "recommendations are written to status; nothing is changed")
    return Condition(ready, TRUE, "Reconciled", outcome.explanation.message if outcome.explanation else "reconciled")


def anomaly_condition(observations: Observations | None) -> Condition | None:
    kind = ConditionType.ANOMALY_DETECTED.value
    if observations is None or observations.anomaly is None:
        return None
    anomaly = observations.anomaly
    if anomaly.active:
        signal = anomaly.signal or "demand"
        reason = "".join(part.capitalize() for part in signal.replace(":", "-").split("-")) + "Anomaly"
        return Condition(kind, TRUE, reason, f"anomalous {signal} (score {anomaly.score:.3f})")
    return Condition(kind, FALSE, "NoAnomaly", f"anomaly score {anomaly.score:.3f}")


def conditions_for(outcome: Outcome) -> list[Condition]:
    """The conditions this reconcile can speak for (the others keep their previous values)."""
    out = [ready_condition(outcome)]
    if outcome.target is not None:
        out.append(
            Condition(ConditionType.TARGET_FOUND.value, _bool(outcome.target.ok), outcome.target.reason,
                      outcome.target.message)
        )
    if outcome.metrics is not None:
        out.append(
            Condition(ConditionType.METRICS_AVAILABLE.value, _bool(outcome.metrics.ok), outcome.metrics.reason,
                      outcome.metrics.message)
        )
    if outcome.conflict is not None:
        out.append(
            Condition(ConditionType.CONFLICT.value, _bool(outcome.conflict.ok), outcome.conflict.reason,
                      outcome.conflict.message)
        )
    anomaly = anomaly_condition(outcome.observations)
    if anomaly is not None:
        out.append(anomaly)
    return out


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None, updates: Sequence[Condition], now: str
) -> list[dict[str, Any]]:
    """Previous conditions updated in place; ``lastTransitionTime`` moves only when ``status`` changes."""
    merged: dict[str, dict[str, Any]] = {}
    for old in previous or ():
        if isinstance(old, Mapping) and old.get("type") in CONDITION_ORDER:
            merged[str(old["type"])] = dict(old)
    for new in updates:
        before = merged.get(new.type)
        changed = before is None or before.get("status") != new.status
        merged[new.type] = {
            "type": new.type,
            "status": new.status,
            "reason": new.reason,
            "message": new.message[:32768],
            "lastTransitionTime": now if changed else (before or {}).get("lastTransitionTime", now),
        }
    return [merged[t.value] for t in CONDITION_ORDER if t.value in merged]


def transitions(
    previous: Sequence[Mapping[str, Any]] | None, current: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Conditions whose status differs from the previous status (what deserves an Event)."""
    before = {c.get("type"): c.get("status") for c in previous or () if isinstance(c, Mapping)}
    return [c for c in current if before.get(c["type"]) != c["status"]]


def build_status(previous: Mapping[str, Any] | None, outcome: Outcome, now: float) -> dict[str, Any]:
    """The new ``status`` (a full object, validated against the CRD's status model)."""
    stamp = rfc3339(now)
    previous = previous or {}
    status: dict[str, Any] = {
        "conditions": merge_conditions(previous.get("conditions"), conditions_for(outcome), stamp),
    }
    if outcome.generation is not None:
        status["observedGeneration"] = outcome.generation
    obs = outcome.observations
    if obs is not None:
        status["currentReplicas"] = obs.current_replicas
        demand: dict[str, Any] = {"current": obs.demand}
        if obs.forecast is not None:
            demand |= {
                "forecast": obs.forecast.mean,
                "forecastUpper": obs.forecast.upper,
                "horizonSeconds": obs.forecast.horizon_seconds,
                "model": obs.forecast.model,
                "modelError": obs.forecast.model_error,
            }
            recurring = obs.forecast.recurring
            if recurring is not None:  # careplane.decision.recurrence: past seasons agree on a rise in this window
                demand |= {"recurringPeak": recurring.peak,
                           "recurringSeasons": f"{recurring.agreeing} of {recurring.seasons}"}
        status["demand"] = demand
        if obs.anomaly is not None:
            status["anomaly"] = {
                "score": obs.anomaly.score,
                "active": obs.anomaly.active,
                "signal": obs.anomaly.signal,
                "since": rfc3339(obs.anomaly.since) if obs.anomaly.since is not None else None,
            }
    if outcome.desired_replicas is not None:
        status["desiredReplicas"] = outcome.desired_replicas
    actions = outcome.actions
    if actions is not None and actions.circuit_breaker is not None:
        status["circuitBreaker"] = {
            "maxPendingRequests": actions.circuit_breaker.max_pending_requests,
            "consecutive5xxErrors": actions.circuit_breaker.consecutive_5xx_errors,
        }
    if actions is not None and actions.weights is not None:
        status["routing"] = {"weights": dict(actions.weights)}
    if outcome.explanation is not None:
        decision = {"replicas": outcome.desired_replicas, "reason": outcome.explanation.message}
        before = previous.get("lastDecision") or {}
        # The time of the last *different* decision: an unchanged one is no news and no write.
        same = before.get("replicas") == decision["replicas"] and before.get("reason") == decision["reason"]
        status["lastDecision"] = {"time": before.get("time") if same and before.get("time") else stamp, **decision}
    # Validate: an invalid status would be rejected by the API server on every interval.
    return ScalingPolicyStatus.model_validate(status).model_dump(mode="json", exclude_none=True)


def desired_replicas(explanation: Explanation | None, actions: Actions | None, current: int | None) -> int | None:
    """What careplane wants: the Active-mode recommendation, else the action, else what there is."""
    if explanation is not None and explanation.recommended_replicas is not None:
        return explanation.recommended_replicas
    if actions is not None and actions.replicas is not None:
        return actions.replicas
    return current


def merge_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning ``old`` into ``new``: keys gone from ``new`` become null.

    Why: the status is written with a merge patch, which keeps keys it does not
    mention; a demand figure from before a metrics outage must not linger.
    """
    old = old or {}
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def significant(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of a status that must reach the API server at once; the rest are figures.

    Figures (measured and forecast demand, anomaly score, condition messages
    and the decision's wording, which quote those numbers) move a little on
    every interval; writing them each time is one PATCH and one watch event per
    policy per interval for kopf to process. Conditions' status and reason,
    replica counts, the decision's replicas, breaker and routing values, the
    anomaly's activity and observedGeneration are written as soon as they change;
    figures are refreshed at most every :func:`figures_refresh_seconds`.
    """
    status = status or {}
    anomaly = status.get("anomaly") or {}
    return {
        "conditions": [(c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []
                       if isinstance(c, Mapping)],
        "observedGeneration": status.get("observedGeneration"),
        "currentReplicas": status.get("currentReplicas"),
        "desiredReplicas": status.get("desiredReplicas"),
        "decisionReplicas": (status.get("lastDecision") or {}).get("replicas"),
        "circuitBreaker": status.get("circuitBreaker"),
        "routing": status.get("routing"),
        "anomaly": (anomaly.get("active"), anomaly.get("signal")),
        "demandKnown": "current" in (status.get("demand") or {}),
    }


def figures_refresh_seconds(interval_seconds: float) -> float:
    """How stale the status figures may get: a minute, or one interval when that is longer.

    The live values are on the metrics endpoint every interval; the status is what
    ``kubectl`` shows, where a minute-old demand figure is still informative.
    """
    return max(float(interval_seconds), 60.0)
