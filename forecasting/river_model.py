"""An online linear model from river: learns every sample by SGD, no refits.

Why it is here: it is the cheapest model that keeps adapting without any
batch refit (concept drift handled by construction), the way river models are
meant to run. Features for the next slot: the last three values, the mean of
the last 16, the value one cycle back for each season the history covers,
and the daily phase; inputs and target are standardised online.
Multi-step forecasts are recursive (predictions feed the short lags).
"""

from __future__ import annotations

import math

import numpy as np
from river import compose, linear_model, optim, preprocessing

from careplane.forecasting.online import OnlineForecaster

FIT_ROWS = 20000
RECENT = 3
MEAN_WINDOW = 16


class RiverForecaster(OnlineForecaster):
    """river LinearRegression on lag features; see the module docstring."""

    name = "river"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._model = self._new_model()
        self._day = 86400.0 / self.step

    def _new_model(self) -> preprocessing.TargetStandardScaler:
        return preprocessing.TargetStandardScaler(
            regressor=compose.Pipeline(  # type: ignore[arg-type]
                preprocessing.StandardScaler(),
                # clipped gradients: one outlier (a spike in a CPU series) must not blow SGD up
                linear_model.LinearRegression(optimizer=optim.SGD(0.005), l2=1e-3, clip_gradient=1.0),
            )
        )

    def _features(self, pos: int, value_at: object, seasons: list[int]) -> dict[str, float]:
        """Features for the slot at buffer position ``pos`` from values strictly before it."""
        get = value_at  # callable: position -> value
        x = {f"lag{j}": get(pos - j) for j in range(1, RECENT + 1)}  # type: ignore[operator]
        x["mean"] = sum(get(pos - j) for j in range(1, MEAN_WINDOW + 1)) / MEAN_WINDOW  # type: ignore[operator]
        for m in seasons:
            x[f"season{m}"] = get(pos - m)  # type: ignore[operator]
        if self._day >= 4:
            phase = 2 * math.pi * ((self.hist.offset + pos) % self._day) / self._day
            x["day_sin"], x["day_cos"] = math.sin(phase), math.cos(phase)
        return x

    def _seasons(self) -> list[int]:
        return [m for m in self.usable_seasons(min_cycles=1.0) if m > MEAN_WINDOW]

    def _fit_model(self) -> None:
        if self._fitted:
            return  # an online model: it keeps learning; nothing to refit
        self._model = self._new_model()
        filled, raw = self.hist.filled, self.hist.raw
        seasons = self._seasons()
        start = max(MEAN_WINDOW, max(seasons, default=0), self.hist.end - FIT_ROWS)
        for pos in range(start, self.hist.end):
            if not math.isnan(raw[pos]):
                self._model.learn_one(self._features(pos, filled.item, seasons), float(raw[pos]))

    def _update(self, y: float) -> None:
        pos = self.hist.end - 1
        if math.isnan(y) or pos < MEAN_WINDOW:
            return
        seasons = [m for m in self._seasons() if pos >= m]
        self._model.learn_one(self._features(pos, self.hist.filled.item, seasons), y)

    def _predict(self, steps: int) -> np.ndarray:
        end = self.hist.end
        filled = self.hist.filled
        if end <= MEAN_WINDOW:
            return np.full(steps, filled[end - 1])
        seasons = [m for m in self._seasons() if end - m >= 0]
        out = np.empty(steps)

        def value_at(pos: int) -> float:
            return float(out[pos - end]) if pos >= end else float(filled[pos])

        # SGD can still wander on a regime change: keep forecasts within the range seen, widened by its span
        recent = filled[max(0, end - 5000) : end]
        low, high = float(recent.min()), float(recent.max())
        span = max(high - low, 1e-9)
        for h in range(steps):
            value = self._model.predict_one(self._features(end + h, value_at, seasons))
            out[h] = min(max(value, low - span), high + span) if math.isfinite(value) else filled[end - 1]
        return out
