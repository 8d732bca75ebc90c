"""Rolling-origin evaluation: the protocol of ``careplane forecast eval`` and the benchmark.

For every test row t and horizon N the forecast comes from a model that has
learned rows up to t - N only: the model is fitted on the rows up to the
first origin, then fed one row at a time (``learn_one``) and asked for a
forecast after each. Several horizons are scored in one pass (a forecast of
``max(N)`` steps holds all of them). Costs are CPU time of this process: on a
shared machine, wall time mostly measures the neighbours.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from careplane.forecasting.base import Forecaster


@dataclass
class EvalResult:
    """Forecasts for each test row (rows ``test_start..n-1``) per horizon, plus costs."""

    horizons: list[int]
    mean: dict[int, np.ndarray]
    lower: dict[int, np.ndarray]
    upper: dict[int, np.ndarray]
    fit_seconds: float
    update_microseconds: float


def rolling_forecasts(
    model: Forecaster,
    times: np.ndarray,
    values: np.ndarray,
    test_start: int,
    horizons: Sequence[int],
    quantile: float = 0.9,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Causal rolling forecasts of rows ``test_start..`` at each horizon (rows count, gaps in time allowed)."""
    hs = sorted({int(h) for h in horizons})
    n = len(values)
    h_max = hs[-1]
    first_origin = test_start - h_max
    if first_origin < 0:
        raise ValueError("the horizon reaches before the first row")
    out = {h: np.full(n - test_start, np.nan) for h in hs}
    lo = {h: np.full(n - test_start, np.nan) for h in hs}
    up = {h: np.full(n - test_start, np.nan) for h in hs}
    started = time.process_time()
    model.fit(times[: first_origin + 1], values[: first_origin + 1])
    fit_seconds = time.process_time() - started
    steps_ahead = getattr(model, "steps_ahead", None)
    spent = 0.0
    updates = 0
    for origin in range(first_origin, n - 1):
        begin = time.process_time()
        if origin > first_origin:
            model.learn_one(float(times[origin]), float(values[origin]))
        targets = [(h, origin + h) for h in hs if test_start <= origin + h < n]
        if not targets:
            spent += time.process_time() - begin
            continue
        if steps_ahead is not None:
            ahead = [max(1, int(steps_ahead(float(times[row])))) for _, row in targets]
        else:
            ahead = [h for h, _ in targets]
        fc = model.forecast(max(ahead), quantile)
        spent += time.process_time() - begin
        updates += 1
        for (h, row), k in zip(targets, ahead, strict=True):
            out[h][row - test_start] = fc.mean[k - 1]
            lo[h][row - test_start] = fc.lower[k - 1]
            up[h][row - test_start] = fc.upper[k - 1]
        if progress is not None:
            progress(origin)
    return EvalResult(hs, out, lo, up, fit_seconds, 1e6 * spent / max(1, updates))


def mase_scale(values: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive of period ``season`` (Hyndman's MASE denominator), gaps skipped."""
    season = max(1, season)
    if len(values) <= season:
        season = 1
    diff = np.abs(values[season:] - values[:-season])
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if diff.size else math.nan


def metrics(actual: np.ndarray, forecast: np.ndarray, lower: np.ndarray, upper: np.ndarray, scale: float) -> dict[str, float]:
    """r2, mae, rmse, mase, coverage over rows where both the actual and the forecast are known."""
    ok = np.isfinite(actual) & np.isfinite(forecast)
    if not ok.any():
        return {k: math.nan for k in ("r2", "mae", "rmse", "mase", "coverage")}
    a, f = actual[ok], forecast[ok]
    err = a - f
    sst = float(np.sum((a - a.mean()) ** 2))
    mae = float(np.mean(np.abs(err)))
    inside = (a >= lower[ok]) & (a <= upper[ok])
    return {
        "r2": 1.0 - float(np.sum(err**2)) / sst if sst > 0 else math.nan,
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mase": mae / scale if scale and math.isfinite(scale) and scale > 0 else math.nan,
        "coverage": float(np.mean(inside)),
    }
