"""`auto` selection and the empirical intervals: behaviour that a wrong implementation would fail."""

from __future__ import annotations

import numpy as np

from careplane.forecasting.evaluation import metrics, rolling_forecasts
from careplane.forecasting.intervals import ResidualCalibrator
from careplane.forecasting.registry import make_forecaster

from .conftest import HOUR, seasonal_counts


def test_auto_uses_the_model_that_fits_a_random_walk() -> None:
    """On a random walk the last value is the best forecast: auto must land on it (or equal it)."""
    rng = np.random.default_rng(7)
    values = 500 + np.cumsum(rng.normal(0, 5, 800))
    times = np.arange(800) * HOUR
    start = 600
    errors = {}
    for name in ("naive", "auto"):
        model = make_forecaster(name, step_seconds=HOUR, max_horizon=1)
        result = rolling_forecasts(model, times, values, start, [1])
        errors[name] = metrics(values[start:], result.mean[1], result.lower[1], result.upper[1], 1.0)["mae"]
        if name == "auto":
            assert model.chosen.split(":")[0] in model.names  # type: ignore[attr-defined]
            assert model.model_error is not None and model.model_error > 0  # type: ignore[attr-defined]
    assert errors["auto"] <= 1.05 * errors["naive"]


def test_auto_beats_naive_on_a_seasonal_series() -> None:
    times, values = seasonal_counts(24 * 7 * 6, seed=11)
    start = len(values) - 24 * 7
    scores = {}
    for name in ("naive", "auto"):
        model = make_forecaster(name, step_seconds=HOUR, max_horizon=6)
        result = rolling_forecasts(model, times, values, start, [6])
        scores[name] = metrics(values[start:], result.mean[6], result.lower[6], result.upper[6], 1.0)
    assert scores["auto"]["mae"] < 0.7 * scores["naive"]["mae"]


def test_intervals_are_calibrated_and_heteroscedastic() -> None:
    """Poisson counts: the 80% interval covers about 80%, and it is wider at high demand."""
    times, values = seasonal_counts(24 * 7 * 8, seed=2, base=60.0)
    start = len(values) - 24 * 7 * 3
    model = make_forecaster("lag_regression", step_seconds=HOUR, max_horizon=1)
    result = rolling_forecasts(model, times, values, start, [1], quantile=0.9)
    m = metrics(values[start:], result.mean[1], result.lower[1], result.upper[1], 1.0)
    assert 0.72 <= m["coverage"] <= 0.88, m["coverage"]
    width = result.upper[1] - result.lower[1]
    level = result.mean[1]
    high, low = width[level > np.quantile(level, 0.8)], width[level < np.quantile(level, 0.2)]
    assert high.mean() > 1.3 * low.mean()


def test_calibrator_quantiles_match_the_residuals() -> None:
    """Feed known errors: the interval reproduces their quantiles (scaled by sqrt(level))."""
    cal = ResidualCalibrator(window=2000, refresh_every=50, min_count=10)
    cal.set_level(0.0, 1.0)
    rng = np.random.default_rng(0)
    mean = np.array([100.0])
    for i in range(1500):
        cal.record(i, mean)
        cal.observe(i + 1, 100.0 + rng.normal(0, 10.0))
    lower, upper = cal.interval(mean, 0.9)
    # N(0, 10): 10th and 90th percentiles at -/+ 12.8
    assert abs(upper[0] - 112.8) < 1.5 and abs(lower[0] - 87.2) < 1.5
    # longer horizons never calibrated: widened, not narrower
    lower3, upper3 = cal.interval(np.array([100.0, 100.0, 100.0]), 0.9)
    assert upper3[2] > upper3[0] and lower3[2] < lower3[0]


def test_calibrator_ignores_gaps_and_stale_forecasts() -> None:
    cal = ResidualCalibrator(window=100, refresh_every=10, min_count=5)
    cal.record(0, np.array([10.0, 10.0]))
    cal.observe(1, float("nan"))  # a gap scores nothing
    assert cal.seen == 0
    cal.observe(5, 10.0)  # nothing was forecast for slot 5
    assert np.isnan(cal.res[:, 0]).all()


def test_auto_keeps_its_errors_when_a_longer_forecast_is_asked() -> None:
    times, values = seasonal_counts(24 * 14, seed=4)
    model = make_forecaster("auto", step_seconds=HOUR, max_horizon=2)
    model.fit(times, values)
    before = model._sqsum[:2].copy()  # type: ignore[attr-defined]
    assert np.all(before > 0)
    fc = model.forecast(10)
    assert fc.mean.shape == (10,) and np.all(np.isfinite(fc.mean))
    assert np.array_equal(model._sqsum[:2], before)  # type: ignore[attr-defined]


def _coverage_after_a_calmer_regime(aci_rate: float) -> float:
    """Errors N(0, 30) for 1000 steps, then N(0, 10): the share of the later actuals inside the 80% interval
    issued just before each arrived (equal weights: the window remembers the noisy regime for 1500 steps)."""
    cal = ResidualCalibrator(window=1500, refresh_every=50, min_count=10, halflife_fraction=None, aci_rate=aci_rate)
    cal.set_level(0.0, 1.0)
    rng = np.random.default_rng(3)
    mean = np.array([100.0])
    inside = []
    for i in range(2500):
        cal.record(i, mean)
        lower, upper = cal.interval(mean, 0.9)
        y = 100.0 + rng.normal(0, 30.0 if i < 1000 else 10.0)
        if i >= 1000:
            inside.append(lower[0] <= y <= upper[0])
        cal.observe(i + 1, y)
    return float(np.mean(inside))


def test_adaptive_conformal_levels_restore_coverage_after_a_regime_change() -> None:
    """Without the feedback the interval stays sized for the old noise (coverage near 1); with it the
    coverage of what comes next approaches the nominal 80%."""
    stale = _coverage_after_a_calmer_regime(aci_rate=0.0)
    adaptive = _coverage_after_a_calmer_regime(aci_rate=0.005)
    assert stale > 0.92, stale
    assert abs(adaptive - 0.8) < 0.06 and abs(adaptive - 0.8) < abs(stale - 0.8) - 0.1, (adaptive, stale)
