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
from statsmodels.tsa.statespace.sarimax import SARIMAX

from careplane.forecasting.fourier import FourierForecaster
from careplane.forecasting.online import OnlineForecaster

ARMA_ROWS = 1200
ORDER = (2, 0, 1)


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
        """Innovations over the recent residuals give the recursion its starting state."""
        self._r = [0.0] * ORDER[0]
        self._e = [0.0] * ORDER[2]
        for value in resid[-500:]:
            self._step(float(value))

    def _residuals(self, rows: int) -> np.ndarray:
        raw = self.hist.raw_view()
        n = raw.shape[0]
        start = max(0, n - rows)
        return raw[start:] - self.curve(self.hist.offset + np.arange(start, n))

    def _one_step(self) -> float:
        return float(sum(a * r for a, r in zip(self.ar, self._r, strict=True)) + sum(b * e for b, e in zip(self.ma, self._e, strict=True)))

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
            self._resp = self._response(max(steps, self.max_horizon))
            self._resp_params = self.ar
        curve = self.curve(self._steps_index(steps)[1:])
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
