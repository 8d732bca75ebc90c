"""Kubernetes Events for what careplane did and why.

The texts are pure functions (tested exactly); :func:`post` hands them to
kopf's event poster, which queues them in memory and writes ``v1/Event``
objects in the background (so a slow API never blocks a reconcile), and
``settings.posting`` rate-limits nothing by default: careplane posts only on
actions and on condition transitions, not every interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from careplane.decision.types import Actions, CircuitBreakerSettings, Explanation

NORMAL, WARNING = "Normal", "Warning"
MAX_MESSAGE = 1024  # the API server truncates event messages; keep ours readable and whole


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def scaled(kind: str, name: str, before: int | None, after: int, explanation: Explanation) -> Event:
    start = "?" if before is None else str(before)
    return Event(NORMAL, "Scaled", _cut(f"{kind} {name}: {start} -> {after} replicas ({explanation.reason}): {explanation.message}"))


def circuit_breaker_tuned(name: str, settings: CircuitBreakerSettings, explanation: Explanation) -> Event:
    notes = "; ".join(explanation.notes)
    text = (
        f"DestinationRule {name}: http1MaxPendingRequests={settings.max_pending_requests}, "
        f"maxConnections={settings.max_connections}, consecutive5xxErrors={settings.consecutive_5xx_errors}, "
        f"baseEjectionTime={settings.base_ejection_seconds}s, maxEjectionPercent={settings.max_ejection_percent}"
    )
    return Event(NORMAL, "CircuitBreakerTuned", _cut(text + (f": {notes}" if notes else "")))


def weights_shifted(kind: str, name: str, weights: Mapping[str, int], explanation: Explanation) -> Event:
    shown = ", ".join(f"{backend}={weight}" for backend, weight in weights.items())
    notes = "; ".join(explanation.notes)
    return Event(NORMAL, "WeightsShifted", _cut(f"{kind} {name}: {shown}" + (f": {notes}" if notes else "")))


def recommended(replicas: int | None, explanation: Explanation) -> Event:
    """ForecastOnly: what Active mode would have done."""
    return Event(NORMAL, "Recommendation", _cut(f"would set {replicas} replicas ({explanation.reason}): {explanation.message}"))


# A condition turning to these statuses is bad news (Warning); anything else is Normal.
_BAD = {"Ready": "False", "TargetFound": "False", "MetricsAvailable": "False", "Conflict": "True", "AnomalyDetected": "True"}


def condition_changed(condition: Mapping[str, Any]) -> Event:
    kind, status = str(condition["type"]), str(condition["status"])
    severity = WARNING if _BAD.get(kind) == status else NORMAL
    reason = str(condition.get("reason") or kind)
    return Event(severity, reason, _cut(f"{kind}={status}: {condition.get('message', '')}"))


def for_actions(
    changed: Actions,
    explanation: Explanation,
    *,
    target_kind: str,
    target_name: str,
    before_replicas: int | None,
    destination_rule: str | None,
    route_kind: str | None,
    route_name: str | None,
) -> list[Event]:
    """One event per thing actually changed."""
    out: list[Event] = []
    if changed.replicas is not None:
        out.append(scaled(target_kind, target_name, before_replicas, changed.replicas, explanation))
    if changed.circuit_breaker is not None and destination_rule:
        out.append(circuit_breaker_tuned(destination_rule, changed.circuit_breaker, explanation))
    if changed.weights is not None and route_name:
        out.append(weights_shifted(route_kind or "VirtualService", route_name, changed.weights, explanation))
    return out


def post(body: Any, events: Sequence[Event]) -> None:
    """Queue events on the ScalingPolicy (kopf posts them in the background)."""
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
