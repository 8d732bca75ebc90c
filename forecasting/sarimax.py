"""SARIMAX for long seasons: dynamic harmonic regression (Fourier terms + ARMA errors).

A seasonal ARIMA with a period of 1,440 (daily, minute data) or 10,080
(weekly) is out of reach for statsmodels' state space (the state grows with
the period). The standard remedy (Hyndman & Athanasopoulos, *FPP* §12.1) is
harmonic regression for the seasons and a short ARMA for the errors. Here the
harmonics are least squares (:class:`~careplane.forecasting.fourier.FourierForecaster`'s
curve) and the ARMA(2,1) is estimated by statsmodels' SARIMAX on the recent
residuals. Per-sample updates run the ARMA innovation recursion here because
statsmodels' ``append``/``extend`` rebuild a results object per call
(milliseconds).

:class:`SeasonalSarimax` is the classic hand-wired pick (SARIMA(1,0,1)(0,1,1)_m
fitted once and extended by statsmodels per sample), kept as a benchmark
baseline for hourly data.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.signal import lfilter, lfiltic
from statsmodels.tsa.statespace.sarimax import SARIMAX

from careplane.forecasting.fourier import FourierForecaster
from careplane.forecasting.online import OnlineForecaster

ARMA_ROWS = 1200
ORDER = (2, 0, 1)
RUN_FILTER_MIN = 16  # known residuals in a row from which ``_restart_recursion`` filters them in scipy


class HarmonicSarimax(FourierForecaster):
    """Fourier seasons + ARMA(2,1) errors (statsmodels estimates, O(1) recursion here)."""

    name = "sarimax"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ar = np.zeros(ORDER[0])
        self.ma = np.zeros(ORDER[2])
        self._r: list[float] = [0.0] * ORDER[0]  # last residuals, newest first
        self._e: list[float] = [0.0] * ORDER[2]  # last innovations, newest first
        self._resp = np.zeros((0, ORDER[0] + ORDER[2]))
        self._resp_params: np.ndarray | None = None
        self._params_float: tuple[np.ndarray, np.ndarray, list[float], list[float]] | None = None  # see ``_one_step``

    def _fit_model(self) -> None:
        self._fit_curve()
        resid = self._residuals(ARMA_ROWS)
        if not self._estimation_due():
            self._restart_recursion(resid)  # the ARMA parameters stand; its state follows the new curve
            return
        self.ar = np.zeros(ORDER[0])
        self.ma = np.zeros(ORDER[2])
        known = resid[np.isfinite(resid)]
        if known.size >= 50 and np.std(known) > 1e-12:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    # cov_type="none": only the point estimates are used, and the parameter covariance
                    # (numerical derivatives of the likelihood) cost about a third of the fit
                    res = SARIMAX(resid, order=ORDER, trend="n", concentrate_scale=True).fit(disp=False, maxiter=25, cov_type="none")
                    params = np.asarray(res.params, dtype=float)
                    self.ar = params[: ORDER[0]]
                    self.ma = params[ORDER[0] : ORDER[0] + ORDER[2]]
                except (np.linalg.LinAlgError, ValueError):
                    pass
        # the forecast's impulse response depends on the parameters only: built here, with the refit,
        # rather than in the first forecast after it
        self._resp = self._response(self.max_horizon)
        self._resp_params = self.ar
        self._restart_recursion(resid)

    def _restart_recursion(self, resid: np.ndarray) -> None:
        """Innovations over the recent residuals give the recursion its starting state.

        The recursion is ``_step`` once per residual; a run of known residuals is that same recursion as a linear
        filter (innovations e = B(z) / A(z) r with B = 1 - ar z, A = 1 + ma z), which scipy's lfilter runs in C
        from the state before the run: 500 Python steps were most of a refit's cost. Unknown residuals (and
        short runs) take the Python step. Equal to the step-by-step recursion to rounding (tested).
        """
        self._r = [0.0] * ORDER[0]
        self._e = [0.0] * ORDER[2]
        values = np.asarray(resid[-500:], dtype=float)
        finite = np.isfinite(values)
        b = np.concatenate(([1.0], -np.asarray(self.ar, dtype=float)))
        a = np.concatenate(([1.0], np.asarray(self.ma, dtype=float)))
        breaks = [*np.flatnonzero(~finite).tolist(), values.shape[0]]
        i = 0
        for stop in breaks:  # a known run values[i:stop], then the unknown residual at ``stop``
            if stop - i >= RUN_FILTER_MIN:
                run = values[i:stop]
                e, _ = lfilter(b, a, run, zi=lfiltic(b, a, self._e, self._r))
                self._r = (run[::-1][: ORDER[0]].tolist() + self._r)[: ORDER[0]]
                self._e = (e[::-1][: ORDER[2]].tolist() + self._e)[: ORDER[2]]
            else:
                for value in values[i:stop].tolist():
                    self._step(value)
            if stop < values.shape[0]:
                self._step(math.nan)
            i = stop + 1

    def _residuals(self, rows: int) -> np.ndarray:
        raw = self.hist.raw_view()
        n = raw.shape[0]
        start = max(0, n - rows)
        return raw[start:] - self.curve(self.hist.offset + np.arange(start, n))

    def _one_step(self) -> float:
        # the parameters as Python floats (cached per parameter array): arithmetic on numpy scalars costs several
        # times more, and this runs once per sample and 500 times per refit (the same IEEE products and sums)
        cached = getattr(self, "_params_float", None)  # (absent on a model pickled before it existed)
        if cached is None or cached[0] is not self.ar or cached[1] is not self.ma:
            cached = self._params_float = (self.ar, self.ma, self.ar.tolist(), self.ma.tolist())
        ar, ma = cached[2], cached[3]
        # (map(float.__mul__) over the pairs: the products and the left-to-right sum of the generator form, without a
        # generator frame per sum; the state lists hold Python floats of the parameters' lengths)
        return float(sum(map(float.__mul__, ar, self._r)) + sum(map(float.__mul__, ma, self._e)))

    def _step(self, r: float) -> None:
        pred = self._one_step()
        if math.isnan(r):
            r, e = pred, 0.0
        else:
            e = r - pred
        if self._r:
            self._r = [r, *self._r[:-1]]
        if self._e:
            self._e = [e, *self._e[:-1]]

    def _update(self, y: float) -> None:
        if not self._fitted:
            return
        index = self.hist.next_index - 1
        if math.isnan(y):
            r = math.nan
        elif self._table is not None:  # the curve's table lookup on one scalar: numpy on a 1-element array costs more
            r = y - float(self._table[index % self._table.shape[0]])
        else:
            r = y - float(self.curve(np.array([index]))[0])
        self._step(r)

    def _response(self, steps: int) -> np.ndarray:
        """(steps, p + q) matrix M with ARMA forecasts = M @ [r_t.., e_t..] (the recursion is linear in its state)."""
        size = ORDER[0] + ORDER[2]
        out = np.zeros((steps, size))
        for j in range(size):
            state = np.zeros(size)
            state[j] = 1.0
            r, e = list(state[: ORDER[0]]), list(state[ORDER[0] :])
            for h in range(steps):
                value = sum(a * x for a, x in zip(self.ar, r, strict=True)) + sum(b * x for b, x in zip(self.ma, e, strict=True))
                out[h, j] = value
                if r:
                    r = [value, *r[:-1]]
                if e:
                    e = [0.0, *e[:-1]]
        return out

    def _predict(self, steps: int) -> np.ndarray:
        if self._resp.shape[0] < steps or self._resp_params is not self.ar:
            # at least doubling (row h depends on h and the parameters only): a gappy series asks for a few more
            # steps at a time, and rebuilding the response at every new maximum cost more than the forecasts
            grown = 2 * self._resp.shape[0] if self._resp_params is self.ar else 0
            self._resp = self._response(max(steps, grown, self.max_horizon))
            self._resp_params = self.ar
        curve = self._curve_from_last(steps)[1:]
        return curve + self._resp[:steps] @ np.array(self._r + self._e)


class SeasonalSarimax(OnlineForecaster):
    """Baseline: SARIMA(1,0,1)(0,1,1)_m fitted once by statsmodels, extended per sample (slow: hourly data only)."""

    name = "sarimax_seasonal"

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("refit_every", 10**9)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._res: object | None = None

    def _fit_model(self) -> None:
        seasons = self.usable_seasons(min_cycles=3.0)
        m = seasons[0] if seasons else 0
        y = self.hist.raw_view()[-max(10 * m, 500) :]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SARIMAX(y, order=(1, 0, 1), seasonal_order=(0, 1, 1, m) if m else (0, 0, 0, 0), trend="n")
            self._res = model.fit(disp=False, maxiter=50)

    def _update(self, y: float) -> None:
        if self._res is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._res = self._res.extend(np.array([y]))  # type: ignore[attr-defined]

    def _predict(self, steps: int) -> np.ndarray:
        if self._res is None:
            return np.full(steps, self.hist.filled[self.hist.end - 1])
        return np.asarray(self._res.forecast(steps), dtype=float)  # type: ignore[attr-defined]
