"""Holt-Winters (additive, damped trend) estimated by statsmodels, updated in O(1) per sample.

statsmodels estimates the smoothing parameters and initial states (that is
the expensive, rare part, redone every ``refit_every`` slots on a bounded
recent window). Per-sample updates and forecasts run the textbook recursions
here because statsmodels' results objects re-run the whole filter on
``append`` (milliseconds per sample).

Season: the shortest configured season with two cycles of history (daily
before weekly: a weekly season on minute data would be 10,080 seasonal
states); without one, Holt's damped trend alone.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from careplane.forecasting.online import OnlineForecaster

MAX_ROWS = 10000


class HoltWinters(OnlineForecaster):
    """Additive damped Holt-Winters; see the module docstring."""

    name = "holt_winters"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.alpha = self.beta = self.gamma = 0.0
        self.phi = 1.0
        self.level = 0.0
        self.trend = 0.0
        self.m = 0
        self.season = np.zeros(1)  # season[abs_index % m]
        self._hs = np.arange(1, 2)
        self._damp: np.ndarray = np.zeros(0)  # cached sum of phi^j, j = 1..h
        self._damp_phi = math.nan

    def _fit_model(self) -> None:
        if not self._estimation_due():
            return  # the smoothing parameters stand; the states are updated every sample
        filled = self.hist.filled_view()
        n = filled.shape[0]
        seasons = self.usable_seasons(min_cycles=2.0)
        m = seasons[0] if seasons else 0
        rows = min(n, max(4 * m, 2000), max(MAX_ROWS, 2 * m + 10))
        y = filled[n - rows :]
        last = self.hist.next_index - 1
        if rows < 10 or np.std(y) < 1e-12:
            self.alpha, self.beta, self.gamma, self.phi, self.m = 0.5, 0.0, 0.0, 1.0, 0
            self.level, self.trend = float(filled[-1]), 0.0
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(
                y,
                trend="add",
                damped_trend=True,
                seasonal="add" if m else None,
                seasonal_periods=m or None,
                initialization_method="heuristic" if m else "estimated",
            )
            fit = model.fit(optimized=True, use_brute=False)  # the brute-force start grid costs seconds
        p = fit.params
        self.alpha = float(p["smoothing_level"])
        self.beta = float(p.get("smoothing_trend", 0.0) or 0.0)
        self.gamma = float(p.get("smoothing_seasonal", 0.0) or 0.0) if m else 0.0
        self.phi = float(p.get("damping_trend", 1.0) or 1.0)
        self.level = float(fit.level[-1])
        self.trend = float(fit.trend[-1])
        self.m = m
        if m:
            self.season = np.zeros(m)
            tail = np.asarray(fit.season)[-m:]
            self.season[(last - m + 1 + np.arange(m)) % m] = tail

    def _update(self, y: float) -> None:
        if not self._fitted:
            return
        index = self.hist.next_index - 1
        m = self.m
        s_old = float(self.season[index % m]) if m else 0.0  # (a Python float: numpy scalar arithmetic costs more)
        prev_level, prev_trend = self.level, self.trend
        if math.isnan(y):
            self.level = prev_level + self.phi * prev_trend
            self.trend = self.phi * prev_trend
            return
        self.level = self.alpha * (y - s_old) + (1 - self.alpha) * (prev_level + self.phi * prev_trend)
        self.trend = self.beta * (self.level - prev_level) + (1 - self.beta) * self.phi * prev_trend
        if m:
            self.season[index % m] = self.gamma * (y - prev_level - self.phi * prev_trend) + (1 - self.gamma) * s_old

    def _predict(self, steps: int) -> np.ndarray:
        # the damped sums per horizon depend on h and phi only: computed for the longest forecast so far and
        # sliced (a gappy series asks for a different number of steps at every call)
        if self._damp.shape[0] < steps or self._damp_phi != self.phi:
            size = max(steps, 2 * self._damp.shape[0] if self._damp_phi == self.phi else steps)
            self._hs = np.arange(1, size + 1)
            self._damp = self._hs.astype(float) if self.phi == 1.0 else self.phi * (1 - self.phi**self._hs) / (1 - self.phi)
            self._damp_phi = self.phi
        mean = self.level + self._damp[:steps] * self.trend
        if self.m:
            start = self.hist.next_index % self.m  # the season slot of the first step ahead
            if start + steps <= self.m:  # the usual case: the steps ahead do not wrap around the season
                mean += self.season[start : start + steps]
            elif steps <= self.m:  # wrapping once (a day ahead on hourly data): the two slices, joined
                mean += np.concatenate((self.season[start:], self.season[: start + steps - self.m]))
            else:
                mean += self.season[(start + self._hs[:steps] - 1) % self.m]
        return mean
