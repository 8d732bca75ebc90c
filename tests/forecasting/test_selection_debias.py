"""auto's bias-corrected twins, recency-weighted interval quantiles, river's folded forecast."""

from __future__ import annotations

import numpy as np

from careplane.forecasting.auto import DEBIAS_SUFFIX, AutoForecaster
from careplane.forecasting.intervals import ResidualCalibrator
from careplane.forecasting.online import OnlineForecaster
from careplane.forecasting.registry import make_forecaster
from careplane.forecasting.river_model import RiverForecaster

from .conftest import HOUR, seasonal_counts


class _Shrunk(OnlineForecaster):
    """A deliberately biased model: always 80% of the last value."""

    name = "shrunk"

    def _predict(self, steps: int) -> np.ndarray:
        return np.full(steps, 0.8 * self.hist.filled[self.hist.end - 1])


def test_debiased_twin_removes_a_persistent_bias() -> None:
    """The only candidate under-forecasts by 20%: auto must use its corrected twin and land on the level."""
    rng = np.random.default_rng(3)
    values = 100.0 + rng.normal(0, 1.0, 600)
    times = np.arange(600) * HOUR
    model = AutoForecaster(candidates=[_Shrunk], step_seconds=HOUR, max_horizon=3)
    model.fit(times[:500], values[:500])
    for t, y in zip(times[500:], values[500:], strict=True):
        model.learn_one(float(t), float(y))
        fc = model.forecast(3)
    assert DEBIAS_SUFFIX in model.chosen
    assert np.all(np.abs(fc.mean - 100.0) < 3.0), fc.mean  # the raw candidate says 80
    assert model.chosen.split(":")[0] in model.names


def test_auto_with_twins_still_beats_naive_on_a_seasonal_series() -> None:
    """Twins double the columns auto selects from: on a plain seasonal series it must still clearly beat the last value."""
    times, values = seasonal_counts(24 * 7 * 6, seed=5)
    start = len(values) - 24 * 7
    model = make_forecaster("auto", step_seconds=HOUR, max_horizon=1)
    model.fit(times[:start], values[:start])
    errors = []
    for t, y in zip(times[start:], values[start:], strict=True):
        errors.append(abs(float(model.forecast(1).mean[0]) - y))
        model.learn_one(float(t), float(y))
    naive_err = np.mean(np.abs(np.diff(values[start - 1 :])))
    assert np.mean(errors) < 0.8 * naive_err


def test_weighted_quantiles_follow_recent_residuals() -> None:
    """Old residuals (an outage) are wide, recent ones narrow: recency weighting narrows the interval, equal weights do not."""
    rng = np.random.default_rng(1)
    mean = np.array([100.0])
    widths = {}
    for fraction in (None, 0.1):
        cal = ResidualCalibrator(window=1000, refresh_every=50, min_count=10, halflife_fraction=fraction)
        cal.set_level(0.0, 1.0)
        rng = np.random.default_rng(1)
        for i in range(1000):
            cal.record(i, mean)
            cal.observe(i + 1, 100.0 + rng.normal(0, 40.0 if i < 600 else 5.0))
        lower, upper = cal.interval(mean, 0.9)
        widths[fraction] = float(upper[0] - lower[0])
    # N(0, 5): 80% interval about 12.8 wide; the equal-weight window still holds 60% of N(0, 40)
    assert widths[0.1] < 20.0 < widths[None]


def test_river_folded_forecast_equals_predict_one() -> None:
    """The affine fold of river's pipeline reproduces its own recursive predict_one, including long horizons."""
    times, values = seasonal_counts(24 * 7 * 3, seed=8)
    model = RiverForecaster(step_seconds=HOUR, max_horizon=24)
    model.fit(times[:400], values[:400])
    for t, y in zip(times[400:430], values[400:430], strict=True):
        model.learn_one(float(t), float(y))
        for steps in (1, 24, 200):
            assert np.allclose(model._predict(steps), model._predict_reference(steps), rtol=1e-9, atol=1e-9)
