"""From a demand forecast to replicas: what the decision core provisions for.

A replica asked for now is ready after ``pod_startup_seconds``; it must then
serve the demand until the next decision can take effect, so capacity is
planned for the whole window [now, now + startup + horizon] at the policy's
quantile (the forecast's ``upper``).
"""

from __future__ import annotations

import math

import numpy as np

from careplane.decision.types import ForecastSummary
from careplane.forecasting.base import Forecast


def window_steps(step_seconds: float, pod_startup_seconds: float, horizon_seconds: float) -> int:
    """Forecast steps covering (now, now + startup + horizon]; at least one."""
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be positive, got {step_seconds}")
    return max(1, math.ceil((max(0.0, pod_startup_seconds) + max(0.0, horizon_seconds)) / step_seconds - 1e-9))


def _window(values: np.ndarray, steps: int) -> np.ndarray:
    window = np.asarray(values, dtype=float)[:steps]
    return window[np.isfinite(window)]


def replicas_needed(
    forecast: Forecast,
    *,
    step_seconds: float,
    per_replica_capacity: float,
    pod_startup_seconds: float,
    horizon_seconds: float,
    target_utilization: float = 1.0,
) -> int | None:
    """Replicas that serve the highest forecast (at its quantile) over the window; ``None`` when unknown.

    ``target_utilization`` (0, 1] leaves headroom: each replica is planned at
    ``per_replica_capacity * target_utilization``. Unknown (NaN) forecasts
    never read as zero demand: if the whole window is unknown the answer is ``None``.
    """
    if per_replica_capacity <= 0:
        raise ValueError(f"per_replica_capacity must be positive, got {per_replica_capacity}")
    if not 0 < target_utilization <= 1:
        raise ValueError(f"target_utilization must be in (0, 1], got {target_utilization}")
    steps = window_steps(step_seconds, pod_startup_seconds, horizon_seconds)
    upper = _window(forecast.upper, steps)
    if upper.size == 0:
        return None
    peak = max(0.0, float(upper.max()))
    return math.ceil(peak / (per_replica_capacity * target_utilization) - 1e-9)


def summarize(
    forecast: Forecast,
    *,
    step_seconds: float,
    pod_startup_seconds: float,
    horizon_seconds: float,
    model: str,
    model_error: float | None = None,
) -> ForecastSummary | None:
    """Condense a forecast over the provisioning window into the decision core's :class:`ForecastSummary`.

    ``None`` when the window holds no finite forecast (unknown, not zero).
    """
    steps = window_steps(step_seconds, pod_startup_seconds, horizon_seconds)
    mean, upper, lower = (_window(a, steps) for a in (forecast.mean, forecast.upper, forecast.lower))
    if mean.size == 0 or upper.size == 0 or lower.size == 0:
        return None
    error = model_error if model_error is not None and math.isfinite(model_error) else None
    return ForecastSummary(
        mean=float(mean.max()),
        upper=float(upper.max()),
        lower=float(lower.min()),
        horizon_seconds=round(horizon_seconds),
        model=model,
        model_error=error,
    )
