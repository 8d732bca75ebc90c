"""Seasonal naive (multi-season) and naive: the baselines an SRE wires up by hand.

The forecast for a slot is the value one cycle earlier of the longest season
that the history covers (weekly before daily), falling back to shorter seasons
and finally to the last value (naive). Gaps read through the filled history.
"""

from __future__ import annotations

import numpy as np

from careplane.forecasting.online import OnlineForecaster


class SeasonalNaive(OnlineForecaster):
    """y[t + h] = y[t + h - m * ceil(h / m)] for the longest season m with one full cycle of history."""

    name = "seasonal_naive"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._rel: dict[tuple[int, int], np.ndarray] = {}  # cached index offsets per (season, steps)

    def _predict(self, steps: int) -> np.ndarray:
        hist = self.hist
        end = hist.end
        seasons = self.usable_seasons(min_cycles=1.0)
        if not seasons:
            return np.full(steps, hist.filled[end - 1])
        m = seasons[-1]
        rel = self._rel.get((m, steps))
        if rel is None:
            hs = np.arange(1, steps + 1)
            rel = self._rel[(m, steps)] = hs - m * np.ceil(hs / m).astype(np.int64) - 1
        return hist.filled[end + rel]


class Naive(OnlineForecaster):
    """y[t + h] = y[t]: the last known value (random-walk forecast)."""

    name = "naive"

    def _predict(self, steps: int) -> np.ndarray:
        # (empty + fill: np.full's result without its Python wrapper; auto asks for it at every step)
        out = np.empty(steps)
        out.fill(self.hist.filled[self.hist.end - 1])
        return out
