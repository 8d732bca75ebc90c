"""Fourier (harmonic) regression: the periodic model behind Crane's DSP/FFT predictor, plus a level correction.

Crane reconstructs the series from its strongest FFT frequencies and repeats it
forward. A least-squares fit of sine/cosine terms at the harmonics of each
season is the same reconstruction on a gappy, possibly irregular history (an
FFT needs a complete regular window). On top, the current departure from the
periodic curve decays forward as an AR(1): ``F(t+h) + phi^h r_t`` (with
``correct_level=False`` this is Crane's plain periodic forecast).
"""

from __future__ import annotations

import numpy as np

from careplane.forecasting.features import fourier_terms, period_slots
from careplane.forecasting.online import OnlineForecaster

MAX_HARMONICS = {0: 10, 1: 6}  # shortest season, longer seasons
MAX_ROWS = 40000


def harmonics_for(seasons: list[int], n: int) -> list[int]:
    """Harmonics per season: fewer for long seasons, none for seasons the history does not cover 1.5 times."""
    out = []
    for i, m in enumerate(seasons):
        cap = MAX_HARMONICS[0] if i == 0 else MAX_HARMONICS[1]
        out.append(min(cap, max(0, m // 2 - 1)) if n >= 1.5 * m else 0)
    return out


class FourierForecaster(OnlineForecaster):
    """Least-squares harmonic model of each season plus an AR(1) level correction."""

    name = "fourier"

    def __init__(self, *, correct_level: bool = True, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.correct_level = correct_level
        self._coef = np.zeros(1)
        self._periods: list[float] = []
        self._harmonics: list[int] = []
        self._phi = 0.0
        self._last_resid = np.zeros(0)
        self._table: np.ndarray | None = None
        self._wrapped: tuple[np.ndarray, np.ndarray] | None = None  # see ``_curve_from_last``
        self._phi_pow: np.ndarray = np.ones(1)
        self._offsets_cache = np.arange(0, 2)

    def curve(self, index: np.ndarray) -> np.ndarray:
        """The fitted periodic curve at absolute slot indices (a table lookup when the seasons are on the grid)."""
        if self._table is not None:
            return self._table[index % self._table.shape[0]]
        times = np.asarray(self.slot_time(index), dtype=float)
        terms = fourier_terms(times, self._periods, self._harmonics)
        return self._coef[0] + terms @ self._coef[1:]

    def _steps_index(self, steps: int) -> np.ndarray:
        """Absolute slots last, last+1, ..., last+steps (cached offsets)."""
        if self._offsets_cache.shape[0] != steps + 1:
            self._offsets_cache = np.arange(0, steps + 1)
        return (self.hist.next_index - 1) + self._offsets_cache

    def _fit_model(self) -> None:
        self._fit_curve()
        resid = self._last_resid
        if resid.size > 10 and np.std(resid) > 0:
            self._phi = float(np.clip(np.corrcoef(resid[1:], resid[:-1])[0, 1], 0.0, 0.999))
        else:
            self._phi = 0.0

    def _fit_curve(self) -> None:
        """Least-squares harmonics on a recent window; leaves the in-sample residuals in ``_last_resid``."""
        filled = self.hist.filled_view()
        raw = self.hist.raw_view()
        n = filled.shape[0]
        # a bounded recent window: the level drifts, and an old regime (an outage) must age out
        seasons = [m for m in self.all_seasons if n >= 1.5 * m]
        window = min(MAX_ROWS, max(2 * seasons[-1], 4 * seasons[0]) if seasons else n)
        start = max(0, n - window)
        idx = np.arange(start, n)
        idx = idx[~np.isnan(raw[idx])]
        self._periods = [m * self.step for m in self.all_seasons]
        self._harmonics = harmonics_for(self.all_seasons, min(n, window))
        if idx.size < 3:
            self._coef = np.array([float(np.nanmean(filled))] + [0.0] * (2 * sum(self._harmonics)))
            self._last_resid = np.zeros(0)
            self._table = None
            return
        terms = fourier_terms(np.asarray(self.slot_time(self.hist.offset + idx)), self._periods, self._harmonics)
        design = np.hstack([np.ones((idx.size, 1)), terms])
        self._coef, *_ = np.linalg.lstsq(design, raw[idx], rcond=None)
        self._last_resid = raw[idx] - design @ self._coef
        self._build_table()

    def _build_table(self) -> None:
        self._table = None
        period = period_slots(self._periods, self.step)
        if period is not None and self.t0 is not None:
            self._table = self.curve(np.arange(period))  # curve() computes directly while _table is None

    def _curve_from_last(self, steps: int) -> np.ndarray:
        """The curve at slots last, last + 1, ..., last + steps.

        Where the curve is a table (seasons on the grid) this is a slice of the table followed by its own
        beginning again (``_wrapped``, rebuilt when the table or the steps asked for outgrow it): the same
        table entries as ``curve`` of those slots, without the index arithmetic and gather per forecast.
        """
        table = self._table
        if table is None:
            return self.curve(self._steps_index(steps))
        wrapped = getattr(self, "_wrapped", None)  # (absent on a model pickled before it existed)
        period = table.shape[0]
        if wrapped is None or wrapped[0] is not table or wrapped[1].shape[0] < period + steps + 1:
            width = max(steps + 1, 2 * (wrapped[1].shape[0] - period) if wrapped is not None and wrapped[0] is table else 0)
            wrapped = self._wrapped = (table, np.concatenate((table, np.resize(table, width))))
        start = (self.hist.next_index - 1) % period
        result: np.ndarray = wrapped[1][start : start + steps + 1]
        return result

    def _predict(self, steps: int) -> np.ndarray:
        curve = self._curve_from_last(steps)
        if not self.correct_level:
            return curve[1:].copy()  # (a view of the wrapped table otherwise: the caller may write to its forecast)
        if self._phi_pow.shape[0] < steps or self._phi_pow[0] != self._phi:
            # phi^h per h: computed for the longest forecast so far and sliced (gappy series change steps every call)
            grown = 2 * self._phi_pow.shape[0] if self._phi_pow[0] == self._phi else 0
            self._phi_pow = self._phi ** np.arange(1, max(steps, grown) + 1)
        r = self.hist.filled[self.hist.end - 1] - curve[0]
        return curve[1:] + r * self._phi_pow[:steps]
