"""Capacity planning: the window, the quantile, unknown forecasts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from careplane.forecasting.base import Forecast
from careplane.forecasting.capacity import replicas_needed, summarize, window_steps


def fc(mean: list[float], spread: float = 10.0) -> Forecast:
    m = np.array(mean, dtype=float)
    return Forecast(m, m - spread, m + spread, 0.9)


def test_window_covers_startup_plus_horizon() -> None:
    assert window_steps(60, 120, 300) == 7
    assert window_steps(60, 0, 0) == 1
    assert window_steps(15, 30, 30) == 4
    with pytest.raises(ValueError):
        window_steps(0, 1, 1)


def test_replicas_follow_the_highest_upper_inside_the_window_only() -> None:
    # window of 3 steps (60 s step, 60 s startup, 120 s horizon): the spike at step 5 is outside it
    forecast = fc([100, 150, 120, 90, 1000], spread=10)
    n = replicas_needed(forecast, step_seconds=60, per_replica_capacity=20, pod_startup_seconds=60, horizon_seconds=120)
    assert n == math.ceil(160 / 20)
    longer = replicas_needed(forecast, step_seconds=60, per_replica_capacity=20, pod_startup_seconds=60, horizon_seconds=240)
    assert longer == math.ceil(1010 / 20)


def test_target_utilization_leaves_headroom() -> None:
    forecast = fc([100.0], spread=0)
    assert replicas_needed(forecast, step_seconds=60, per_replica_capacity=10, pod_startup_seconds=0, horizon_seconds=0) == 10
    assert replicas_needed(forecast, step_seconds=60, per_replica_capacity=10, pod_startup_seconds=0, horizon_seconds=0, target_utilization=0.5) == 20


def test_unknown_forecast_is_none_not_zero() -> None:
    nan = np.full(4, np.nan)
    forecast = Forecast(nan, nan, nan, 0.9)
    assert replicas_needed(forecast, step_seconds=60, per_replica_capacity=10, pod_startup_seconds=60, horizon_seconds=60) is None
    assert summarize(forecast, step_seconds=60, pod_startup_seconds=60, horizon_seconds=60, model="auto") is None


def test_partial_nan_uses_the_known_steps() -> None:
    forecast = fc([np.nan, 50.0, np.nan], spread=5)
    assert replicas_needed(forecast, step_seconds=60, per_replica_capacity=10, pod_startup_seconds=60, horizon_seconds=120) == 6


def test_summary_condenses_the_window() -> None:
    m = np.array([10.0, 30.0, 20.0, 99.0])
    forecast = Forecast(m, np.array([5.0, 25.0, 1.0, 0.0]), np.array([15.0, 40.0, 28.0, 500.0]), 0.9)
    s = summarize(forecast, step_seconds=60, pod_startup_seconds=60, horizon_seconds=120, model="lag_regression", model_error=0.4)
    assert s is not None
    assert (s.mean, s.upper, s.lower) == (30.0, 40.0, 1.0)
    assert s.model == "lag_regression" and s.model_error == 0.4 and s.horizon_seconds == 120
    assert summarize(forecast, step_seconds=60, pod_startup_seconds=0, horizon_seconds=60, model="x", model_error=math.nan).model_error is None  # type: ignore[union-attr]
