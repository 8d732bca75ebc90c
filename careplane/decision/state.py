"""What the decision core remembers between decisions.

Why a frozen, JSON-serialisable value: the operator persists it in the
ScalingPolicy's status between reconciles, so an operator that restarts (or a
second replica that takes over) continues with the same stabilisation window,
panic window, circuit-breaker tightening and routing weights, and reaches the
same outcome as one that never stopped. The backtest threads it through the
replay the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STATE_VERSION = 1


@dataclass(frozen=True)
class DecisionState:
    """Memory of past decisions; ``decide`` returns a new one, never mutates."""

    # (time, recommended replicas) inside the scale-down stabilisation window, oldest first
    recommendations: tuple[tuple[float, int], ...] = ()
    # replicas careplane last decided (used when the target's current replicas are unknown)
    last_replicas: int | None = None
    # panic mode (Knative KPA): no scale-down until this time
    panic_until: float | None = None
    # routing weights last set, by backend name (None: the policy's weights)
    weights: tuple[tuple[str, int], ...] | None = None
    # outlierDetection.consecutive5xxErrors last set (None: the policy's default)
    consecutive_5xx_errors: int | None = None
    # when demand metrics went missing (None: they are available)
    metrics_missing_since: float | None = None
    # when the service's errors rose above its SLO or turned anomalous (None: they are not), and whether demand
    # was still ordinary then: errors first, then a demand anomaly, is the shape of a retry storm
    errors_since: float | None = None
    errors_before_demand: bool = False
    last_decision_time: float | None = None
    version: int = field(default=STATE_VERSION)

    @classmethod
    def initial(cls) -> DecisionState:
        """The state of a policy that has never been decided on."""
        return cls()

    def weights_map(self) -> dict[str, int] | None:
        return None if self.weights is None else dict(self.weights)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (lists, numbers, strings, None)."""
        return {
            "version": self.version,
            "recommendations": [[t, r] for t, r in self.recommendations],
            "lastReplicas": self.last_replicas,
            "panicUntil": self.panic_until,
            "weights": None if self.weights is None else {name: w for name, w in self.weights},
            "consecutive5xxErrors": self.consecutive_5xx_errors,
            "metricsMissingSince": self.metrics_missing_since,
            "errorsSince": self.errors_since,
            "errorsBeforeDemand": self.errors_before_demand,
            "lastDecisionTime": self.last_decision_time,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DecisionState:
        """Inverse of :meth:`to_dict`. A missing, foreign or damaged document gives the initial state.

        Why forgiving: a corrupted status must never crash-loop the operator; starting
        afresh only loses the stabilisation memory, and every safety clamp still applies.
        """
        if not data or data.get("version") != STATE_VERSION:
            return cls.initial()
        try:
            weights_raw = data.get("weights")
            weights = None if weights_raw is None else tuple((str(k), int(v)) for k, v in dict(weights_raw).items())
            return cls(
                recommendations=tuple((float(t), int(r)) for t, r in data.get("recommendations") or ()),
                last_replicas=_opt_int(data.get("lastReplicas")),
                panic_until=_opt_float(data.get("panicUntil")),
                weights=weights,
                consecutive_5xx_errors=_opt_int(data.get("consecutive5xxErrors")),
                metrics_missing_since=_opt_float(data.get("metricsMissingSince")),
                errors_since=_opt_float(data.get("errorsSince")),
                errors_before_demand=bool(data.get("errorsBeforeDemand", False)),
                last_decision_time=_opt_float(data.get("lastDecisionTime")),
            )
        except (TypeError, ValueError):
            return cls.initial()


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
