"""Forecast-residual detector: how surprising a sample is given its one-step prediction interval.

Any :class:`careplane.forecasting.base.Forecaster` can drive it (for example one
from ``careplane.forecasting.registry.make_forecaster``): the interval of
``forecast(1, quantile)`` gives the predictive spread, the residual is scored as
a normal z-score against it. Those forecasters return numpy arrays and are
built for minute-level decisions; at anomaly-detection rates (20,000 samples/s)
the array overhead per sample dominates, so by default the detector uses
:class:`LocalTrendPredictor`, a damped Holt model in plain Python that also
satisfies the ``Forecaster`` protocol.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from careplane.anomaly.stats import surprise, surprise_probability
from careplane.forecasting.base import Forecast, Forecaster


class LocalTrendPredictor:
    """Damped-trend exponential smoothing with an EW residual variance, O(1) per sample.

    Gaps (NaN) are skipped: they neither move the level nor count as zero.
    """

    name = "local_trend"
    __slots__ = ("_alpha", "_beta", "_level", "_n", "_phi", "_trend", "_var", "_var_alpha")

    def __init__(self, alpha: float = 0.5, beta: float = 0.05, phi: float = 0.9, var_half_life: float = 100.0) -> None:
        self._alpha, self._beta, self._phi = alpha, beta, phi
        self._var_alpha = 1.0 - 0.5 ** (1.0 / var_half_life)
        self._level = 0.0
        self._trend = 0.0
        self._var = 0.0
        self._n = 0

    def fit(self, times: np.ndarray, values: np.ndarray) -> None:
        for t, y in zip(times, values, strict=True):
            self.learn_one(float(t), float(y))

    def predict(self) -> tuple[float, float]:
        """One-step mean and standard deviation (0 before two samples)."""
        return self._level + self._phi * self._trend, math.sqrt(self._var)

    def learn_one(self, t: float, y: float) -> None:
        if y != y:  # gap
            return
        n = self._n
        self._n = n + 1
        if n == 0:
            self._level = y
            return
        pred = self._level + self._phi * self._trend
        r = y - pred
        a = self._var_alpha if n > 20 else 1.0 / n
        self._var += a * (r * r - self._var)
        level = pred + self._alpha * r
        self._trend = self._beta * (level - self._level) + (1.0 - self._beta) * self._phi * self._trend
        self._level = level

    def forecast(self, steps: int, quantile: float = 0.9) -> Forecast:
        from statistics import NormalDist

        z = NormalDist().inv_cdf(quantile)
        mean = np.empty(steps)
        damp, total = 1.0, 0.0
        for h in range(steps):
            damp *= self._phi
            total += damp
            mean[h] = self._level + total * self._trend
        spread = z * math.sqrt(self._var) * np.sqrt(np.arange(1, steps + 1))
        return Forecast(mean=mean, lower=mean - spread, upper=mean + spread, quantile=quantile)


class ForecastResidualDetector:
    """Scores the :func:`surprise` of the z-score of the residual of ``x`` against the forecaster's one-step interval."""

    name = "forecast_residual"

    def __init__(
        self,
        forecaster: Forecaster | None = None,
        quantile: float = 0.9,
        step_seconds: float = 60.0,
        warmup: int = 10,
        min_relative_std: float = 0.002,
        free: float = 2.0,
        span: float = 3.0,
    ) -> None:
        self._free, self._span = free, span
        self.forecaster: Any = forecaster if forecaster is not None else LocalTrendPredictor()
        self._fast = isinstance(self.forecaster, LocalTrendPredictor)
        self._quantile = quantile
        from statistics import NormalDist

        self._z_q = NormalDist().inv_cdf(quantile)
        self._step = step_seconds
        self._warmup = warmup
        self._min_rel = min_relative_std
        self._n = 0
        self._lo = math.inf  # range seen so far: floors the spread of a flat stream
        self._hi = -math.inf

    def zscore(self, x: float) -> float:
        if self._n < self._warmup:
            return 0.0
        if self._fast:
            mean, std = self.forecaster.predict()
        else:
            f = self.forecaster.forecast(1, self._quantile)
            mean = float(f.mean[0])
            std = float(f.upper[0] - f.mean[0]) / self._z_q
        span = self._hi - self._lo
        floor = self._min_rel * span if span > 0.0 else 1e-9 * (1.0 + abs(x))
        return (x - mean) / (std if std > floor else floor)

    def score_one(self, x: float) -> float:
        return surprise(self.zscore(x), self._free, self._span)

    def probability(self, score: float) -> float:
        """P(|Z| < z) of the z-score behind ``score`` (used by the workload monitor)."""
        return surprise_probability(score, self._free, self._span)

    def learn_one(self, x: float) -> None:
        self._n += 1
        if x < self._lo:
            self._lo = x
        if x > self._hi:
            self._hi = x
        self.forecaster.learn_one(self._n * self._step, x)
