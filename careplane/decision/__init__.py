"""The decision core: ``decide(policy, observations, state, now)`` and the values it uses."""

from careplane.decision.core import decide
from careplane.decision.state import DecisionState
from careplane.decision.types import (
    Actions,
    AnomalySummary,
    CircuitBreakerSettings,
    Explanation,
    ForecastSummary,
    Observations,
)

__all__ = [
    "Actions",
    "AnomalySummary",
    "CircuitBreakerSettings",
    "DecisionState",
    "Explanation",
    "ForecastSummary",
    "Observations",
    "decide",
]
