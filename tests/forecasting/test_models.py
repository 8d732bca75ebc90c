"""Every model: the Forecaster shape, gaps, short and degenerate histories, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from careplane.forecasting.base import Forecaster
from careplane.forecasting.registry import MODELS, available, make_forecaster
from careplane.policy import ForecastModel

from .conftest import HOUR, seasonal_counts

ALL = available()


def test_registry_names_are_exactly_the_policy_models() -> None:
    assert set(MODELS) == {m.value for m in ForecastModel}


def test_unknown_model_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown forecast model"):
        make_forecaster("prophet", step_seconds=60)


@pytest.mark.parametrize("name", sorted(MODELS))  # the naive baseline does not follow cycles by design
def test_fit_then_forecast_follows_the_daily_cycle(name: str, hourly: tuple[np.ndarray, np.ndarray]) -> None:
    times, values = hourly
    model = make_forecaster(name, step_seconds=HOUR, max_horizon=6)
    assert isinstance(model, Forecaster)
    model.fit(times, values)
    fc = model.forecast(6, 0.9)
    assert fc.mean.shape == fc.lower.shape == fc.upper.shape == (6,)
    assert np.all(np.isfinite(fc.mean)) and np.all(fc.lower <= fc.upper)
    # the next hours' truth (noise-free rate) is within a loose band of every sensible model
    t_next = times[-1] + HOUR * np.arange(1, 7)
    week = np.where((t_next // 86400) % 7 >= 5, 0.6, 1.0)
    rate = 40.0 * week * (1 + 0.7 * np.sin(2 * np.pi * t_next / 86400.0))
    assert np.mean(np.abs(fc.mean - rate)) < 25.0


@pytest.mark.parametrize("name", ALL)
def test_gaps_are_not_zeros(name: str) -> None:
    """A flat series at 100 with a long gap: forecasts stay near 100, never pulled to 0."""
    model = make_forecaster(name, step_seconds=HOUR, max_horizon=3)
    times = np.arange(400) * HOUR
    values = np.full(400, 100.0) + np.random.default_rng(1).normal(0, 1, 400)
    values[200:260] = np.nan
    model.fit(times[:300], values[:300])
    for i in range(300, 330):
        model.learn_one(times[i], math.nan)  # a second gap, online
    fc = model.forecast(3)
    assert np.all(np.abs(fc.mean - 100.0) < 10.0), fc.mean


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("history", [[], [5.0], [5.0, 7.0], [0.0] * 50, [3.0] * 30])
def test_tiny_constant_and_zero_histories_never_crash(name: str, history: list[float]) -> None:
    model = make_forecaster(name, step_seconds=60, max_horizon=4)
    times = np.arange(len(history)) * 60.0
    model.fit(times, np.array(history))
    fc = model.forecast(4)
    if not history:
        assert np.all(np.isnan(fc.mean))  # nothing known: unknown, not zero
        return
    assert np.all(np.isfinite(fc.mean))
    assert np.allclose(fc.mean, history[-1], atol=max(1.0, 0.5 * abs(history[-1])))


@pytest.mark.parametrize("name", ALL)
def test_learn_one_only_start(name: str) -> None:
    """Built from learn_one alone (an operator after a restart with no history): works from the second sample."""
    model = make_forecaster(name, step_seconds=60, max_horizon=2)
    for i, y in enumerate([10.0, 12.0, math.nan, 11.0, 13.0]):
        model.learn_one(i * 60.0, y)
    fc = model.forecast(2)
    assert np.all(np.isfinite(fc.mean)) and np.all(fc.mean > 0)


@pytest.mark.parametrize("name", ALL)
def test_same_input_same_output(name: str) -> None:
    times, values = seasonal_counts(24 * 20, seed=3)
    a = make_forecaster(name, step_seconds=HOUR, max_horizon=3)
    b = make_forecaster(name, step_seconds=HOUR, max_horizon=3)
    for model in (a, b):
        model.fit(times[:300], values[:300])
        for i in range(300, 340):
            model.learn_one(times[i], values[i])
    fa, fb = a.forecast(3), b.forecast(3)
    assert np.array_equal(fa.mean, fb.mean) and np.array_equal(fa.upper, fb.upper)


def test_series_shorter_than_a_season_falls_back() -> None:
    """Two days of minute data with a weekly season configured: no weekly lag exists, forecasts still work."""
    model = make_forecaster("seasonal_naive", step_seconds=60, seasonalities_seconds=(604800,), max_horizon=2)
    times = np.arange(2880) * 60.0
    values = np.arange(2880, dtype=float)
    model.fit(times, values)
    assert model.forecast(2).mean[0] == pytest.approx(2879.0)  # naive fallback: the last value


def test_irregular_times_map_to_slots() -> None:
    """Rows 5 minutes apart with a missing hour: the model sees a gap, and steps_ahead counts slots."""
    model = make_forecaster("lag_regression", step_seconds=300, max_horizon=2)
    times = np.concatenate((np.arange(100), np.arange(112, 200))) * 300.0
    model.fit(times, np.full(times.shape, 20.0))
    assert model.hist.next_index == 200
    assert np.isnan(model.hist.raw[100:112]).all()
    assert model.steps_ahead(times[-1] + 900.0) == 3


@pytest.mark.parametrize("name", ["lag_regression", "sarimax", "river", "auto"])
def test_truncated_history_gives_identical_forecasts(name: str) -> None:
    """Causality: forecasts on the common rows do not depend on rows after them."""
    from careplane.forecasting.evaluation import rolling_forecasts

    times, values = seasonal_counts(24 * 12, seed=9)
    start = 24 * 10
    full = rolling_forecasts(make_forecaster(name, step_seconds=HOUR, max_horizon=2), times, values, start, [2])
    cut = rolling_forecasts(make_forecaster(name, step_seconds=HOUR, max_horizon=2), times[:-30], values[:-30], start, [2])
    common = len(values) - 30 - start
    assert common > 0
    assert np.array_equal(full.mean[2][:common], cut.mean[2][:common])
    assert np.array_equal(full.upper[2][:common], cut.upper[2][:common])


@pytest.mark.parametrize("name", ["seasonal_naive", "lag_regression", "auto"])
def test_model_name_and_rolling_error_are_exposed(name: str, hourly: tuple[np.ndarray, np.ndarray]) -> None:
    times, values = hourly
    model = make_forecaster(name, step_seconds=HOUR, max_horizon=2)
    assert model.model_error is None  # nothing scored yet
    model.fit(times, values)
    error = model.model_error
    assert error is not None and 0 < error < 5
    assert model.chosen == name if name != "auto" else model.chosen.split(":")[0] in model.names  # type: ignore[attr-defined]
