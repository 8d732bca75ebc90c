"""The model layer: WorkloadModels fills forecasts and anomaly states; the window calibrator covers as it says."""

from __future__ import annotations

import math

import numpy as np

from careplane.decision.calibration import WindowCalibrator
from careplane.decision.models import WorkloadModels
from careplane.decision.types import Observations
from careplane.policy import ScalingPolicySpec


def spec(quantile: float = 0.9) -> ScalingPolicySpec:
    return ScalingPolicySpec.model_validate({
        "targetRef": {"name": "w"},
        "replicas": {"min": 1, "max": 100},
        "demand": {"query": "q", "perReplicaCapacity": 5.0, "podStartupSeconds": 120},
        "forecast": {"model": "seasonal_naive", "horizonSeconds": 0, "seasonalitySeconds": [3600], "quantile": quantile},
    })


def test_window_calibrator_covers_the_window_maximum_at_its_quantile() -> None:
    rng = np.random.default_rng(7)
    step, width, q = 60.0, 3, 0.9
    cal = WindowCalibrator(step_seconds=step, window=1500)
    values = rng.poisson(30 * 60, size=6000) / 60.0  # 30 req/s, Poisson counts per minute
    hits = total = 0
    for k in range(len(values)):
        cal.observe(k - 1, values[k - 1] if k else None)
        upper = cal.upper(30.0, q)
        cal.issue(k, k + width - 1, 30.0)
        if upper is not None and k + width <= len(values) and k > 2000:
            total += 1
            hits += values[k:k + width].max() <= upper
    assert total > 3000
    assert abs(hits / total - q) < 0.03
    # the per-step quantile would have covered the 3-step maximum far less often
    per_step = np.quantile(values, q)
    windows = np.lib.stride_tricks.sliding_window_view(values, width).max(axis=1)
    assert (windows <= per_step).mean() < q - 0.15


def test_observe_fills_forecast_and_anomaly_and_keeps_gaps_unknown() -> None:
    models = WorkloadModels(spec(), 60.0)
    rng = np.random.default_rng(1)
    t = np.arange(400) * 60.0
    values = 40 + 10 * np.sin(2 * np.pi * t / 3600) + rng.normal(0, 1, len(t))
    models.rebuild(t[:300], values[:300])
    out = None
    for i in range(300, 400):
        demand = None if i in (350, 351) else float(values[i])
        out = models.observe(t[i] + 60, Observations(demand=demand, current_replicas=5, ready_replicas=5), sample_time=t[i])
        if demand is None:
            assert out.demand is None  # a gap stays unknown
    assert out is not None and out.forecast is not None and out.anomaly is not None
    assert out.forecast.lower <= out.forecast.mean <= out.forecast.upper
    assert 20 < out.forecast.mean < 70
    assert models.calibrator.ready  # the rebuild replayed enough windows to calibrate


def test_a_second_reading_in_the_same_step_does_not_learn_twice() -> None:
    models = WorkloadModels(spec(), 60.0)
    first = models.observe(60.0, Observations(demand=10.0, current_replicas=1, ready_replicas=1))
    again = models.observe(75.0, Observations(demand=10.0, current_replicas=1, ready_replicas=1), sample_time=60.0)
    assert first.forecast == again.forecast and models.forecaster is not None
    assert models.forecaster.n_observed == 1  # type: ignore[attr-defined]


def test_disabled_models_leave_the_summaries_empty() -> None:
    off = spec().model_copy(update={"forecast": spec().forecast.model_copy(update={"enabled": False}),
                                    "anomaly": spec().anomaly.model_copy(update={"enabled": False})})
    out = WorkloadModels(off, 60.0).observe(0.0, Observations(demand=math.nan, current_replicas=None, ready_replicas=None))
    assert out.forecast is None and out.anomaly is None and out.demand is None


def test_the_recurring_peak_is_kept_only_with_a_season_longer_than_the_window() -> None:
    # spec(): 120 s window, a 1 h season: "one season ago" exists
    models = WorkloadModels(spec(), 60.0)
    assert models.recurrence is not None and models.recurrence.season == 3600.0
    # a window of 900 + 120 s against a 600 s season has no "same window one season ago" yet unseen
    short = spec().model_copy(update={"forecast": spec().forecast.model_copy(
        update={"horizonSeconds": 900, "seasonalitySeconds": [600]})})
    assert WorkloadModels(short, 60.0).recurrence is None


def test_the_forecast_upper_bound_carries_an_hourly_recurring_burst() -> None:
    # a 5-minute burst at the same minute of every hour on a flat series, seen for 5 hours
    models = WorkloadModels(spec(), 60.0)
    t = np.arange(0, 6 * 3600, 60.0)
    values = np.where((t % 3600 >= 1800) & (t % 3600 < 2100), 80.0, 10.0)
    now = 5 * 3600 + 1800 - 120.0  # one window (podStartupSeconds 120) ahead of the sixth burst
    past = t < now
    models.rebuild(t[past], values[past])
    out = models.observe(now, Observations(demand=10.0, current_replicas=2, ready_replicas=2), sample_time=now)
    f = out.forecast
    assert f is not None and f.recurring is not None
    assert f.recurring.peak == 80.0 and f.recurring.seasons == 5 and f.recurring.agreeing == 5
    assert f.upper >= 80.0 and f.model_upper is not None
