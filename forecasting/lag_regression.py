"""Penalised lag regression: one ridge per horizon over recent lags, seasonal lags and calendar terms.

Direct (one model per horizon h) rather than recursive, so errors do not
compound and a forecast of all horizons is one gather and a few dot products.

Features for origin t and target t + h (on the gap-filled history):

* recent: y[t], y[t-1], y[t-2] and the means of the last 4, 16 and 64 slots;
* per season m with history: y at the target's phase one cycle back (and its two
  neighbours), two cycles back, and y[t - m] (today's level vs the last cycle);
* calendar: daily and weekly Fourier terms of the target time.

Lags enter relative to the last value and the target is the change from it,
so the ridge shrinks towards "no change" (the random walk), not towards the
training mean: after a level shift the forecast follows the new level.

Penalties differ per feature — the recent and main seasonal lags are penalised
less than the rest (the idea behind the sparsity-ranked lasso: prefer the
features that are a priori most likely to matter). scikit-learn's Ridge has
one alpha, so the ranking is applied by rescaling columns by
``1 / sqrt(weight)`` (an exact reparametrisation of the weighted penalty).
The alpha is chosen by RidgeCV's efficient leave-one-out on horizon 1 at the
first fit and reused; training uses the most recent 12,000 origins.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import RidgeCV

from careplane.forecasting.features import fourier_terms, period_slots
from careplane.forecasting.online import OnlineForecaster, _one_blas_thread

RECENT_LAGS = 3
MEAN_WINDOWS = (4, 16, 64)
PRIORITY_WEIGHT, OTHER_WEIGHT = 1.0, 6.0
MAX_TRAIN_ROWS = 12000
MAX_HORIZON_MODELS = 64


class LagRegression(OnlineForecaster):
    """Direct multi-horizon ridge on lags; see the module docstring."""

    name = "lag_regression"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.alpha: float | None = None
        self._seasons: list[tuple[int, bool]] = []  # (m, has two cycles)
        self._cal_periods: list[float] = []
        self._cal_harmonics: list[int] = []
        self._trained = 0
        self._ks = np.arange(0)
        self._coef_recent = np.zeros((0, 0))
        self._coef_season = np.zeros((0, 0))
        self._coef_cal = np.zeros((0, 0))
        self._intercept = np.zeros(0)
        self._season_offsets = np.zeros((0, 0), dtype=np.int64)
        self._recent_weights = np.zeros((0, 0))  # coef_recent folded onto the last WINDOW filled values
        self._season_rel = np.zeros((0, 0), dtype=np.int64)  # seasonal positions relative to the origin
        self._cal_table: np.ndarray | None = None  # (horizon, phase) calendar contribution
        self._cal_skew: np.ndarray | None = None  # (phase at the forecast, horizon): the same, read by row
        self._rel_all = np.zeros((0, 0), dtype=np.int64)
        self._coef_all = np.zeros((0, 0))
        self._cal_period: int | None = None
        self._cal_cache: tuple[int, np.ndarray, tuple[object, ...]] | None = None  # see ``_calendar``

    # ------------------------------------------------------------ features
    def _recent_matrix(self, filled: np.ndarray, origins: np.ndarray) -> np.ndarray:
        cols = [filled[origins - j] for j in range(RECENT_LAGS)]
        csum = np.concatenate(([0.0], np.cumsum(filled)))
        for w in MEAN_WINDOWS:
            cols.append((csum[origins + 1] - csum[origins + 1 - w]) / w)
        return np.column_stack(cols)

    def _offsets(self, h: int) -> np.ndarray:
        """Backward offsets from the target slot t + h of the seasonal columns (target-relative)."""
        offs: list[int] = []
        for m, two in self._seasons:
            back = m * math.ceil((h + 1) / m)
            offs += [back + 1, back, back - 1]
            if two:
                offs.append(back + m)
            offs.append(m + h)  # y[t - m], written relative to the target
        return np.array(offs, dtype=np.int64)

    def _weights(self) -> np.ndarray:
        w = [PRIORITY_WEIGHT if j < 3 else OTHER_WEIGHT for j in range(RECENT_LAGS)]
        w += [OTHER_WEIGHT] * len(MEAN_WINDOWS)
        for _, two in self._seasons:
            w += [OTHER_WEIGHT, PRIORITY_WEIGHT, OTHER_WEIGHT]
            if two:
                w.append(PRIORITY_WEIGHT)
            w.append(PRIORITY_WEIGHT)
        w += [OTHER_WEIGHT] * (2 * sum(self._cal_harmonics))
        return np.array(w)

    # ------------------------------------------------------------ fitting
    def _fit_model(self) -> None:
        n = self.hist.end
        self._seasons = [(m, n >= 3 * m + 200) for m in self.all_seasons if n >= m + 200 + 64]
        self._cal_periods, self._cal_harmonics = [], []
        for period, k in ((86400.0, 6), (604800.0, 4)):
            # a calendar cycle enters only once the history holds three of it: fewer, and its
            # terms are unidentified (weekday effects from 10 days extrapolate wildly)
            if period / self.step >= 8 and n * self.step >= 3 * period:
                self._cal_periods.append(period)
                self._cal_harmonics.append(k)
        self._trained = 0
        self._coef_recent = self._coef_season = self._coef_cal = np.zeros((0, 0))
        self._intercept = np.zeros(0)
        self._train_upto(self.max_horizon)

    def _train_upto(self, horizons: int) -> None:
        """Train the direct models of horizons ``_trained + 1``..``horizons`` on the current history.

        The horizons already trained keep their coefficients until the next scheduled refit
        (``_fit_model`` resets ``_trained``): a longer forecast asked for in between (a gap in a
        series makes the next row many slots ahead) only adds models, so its cost is that of
        the new horizons, not of all of them again.

        Per horizon this is the textbook recipe (standardise the design, ridge on the centred
        data, unscale the coefficients) arranged to cost less: the calendar terms of every
        target slot are computed once and sliced per horizon (they depend on the target slot
        only), the design is filled in place, and the standardised Gram matrix is scaled from
        the centred design's instead of standardising a copy and centring it again. Same
        estimator; the coefficients agree with the plain recipe to rounding (tested).
        scikit-learn's Ridge is not used for the solves: it validates and copies its input on
        every call (milliseconds), and a refit solves one small (p ~ 30) system per horizon;
        RidgeCV still picks alpha at the first fit.
        """
        horizons = min(horizons, MAX_HORIZON_MODELS)
        first = self._trained + 1
        if first > horizons:
            return
        filled = self.hist.filled_view()
        raw = self.hist.raw_view()
        n = filled.shape[0]
        scale_w = 1.0 / np.sqrt(self._weights())
        k_rec = RECENT_LAGS + len(MEAN_WINDOWS)
        k_cal = 2 * sum(self._cal_harmonics)
        offsets = [self._offsets(h) for h in range(1, horizons + 1)]
        start = max([MEAN_WINDOWS[-1] - 1, RECENT_LAGS - 1] + [int(o.max(initial=0)) - h for h, o in enumerate(offsets, 1)])
        origins_all = np.arange(max(start, n - 1 - MAX_TRAIN_ROWS), max(start, n - 1))
        # the recent block is the same for every horizon: built once
        recent_all = self._recent_matrix(filled, origins_all) if origins_all.size else np.zeros((0, k_rec))
        # calendar terms of the target slots origins_all[0] + 1 ... (origins_all[i] + h is row i + h - 1)
        cal_all = np.zeros((0, k_cal))
        if self._cal_periods and origins_all.size:
            cal_all = self._calendar(self.hist.offset + origins_all[0] + 1, origins_all.size + horizons - 1)
        rows_recent, rows_season, rows_cal = list(self._coef_recent), list(self._coef_season), list(self._coef_cal)
        intercepts: list[float] = self._intercept.tolist()
        known = ~np.isnan(raw)
        o_first = int(origins_all[0]) if origins_all.size else 0  # (origins_all is consecutive: targets are a slice)
        for h, offs in enumerate(offsets[first - 1 :], first):
            usable = max(origins_all.size - (h - 1), 0)
            keep = np.flatnonzero(known[o_first + h : o_first + h + usable])  # rows whose target is known
            if keep.size < 10:
                rows_recent.append(np.eye(1, k_rec, 0)[0])
                rows_season.append(np.zeros(offs.size))
                rows_cal.append(np.zeros(k_cal))
                intercepts.append(0.0)
                continue
            origins = keep + o_first
            targets = origins + h
            k_rel = k_rec + offs.size
            design = np.empty((keep.size, k_rel + k_cal))
            # everything relative to the last value: the ridge then shrinks towards "no change"
            # (the random walk) instead of towards the training mean, which is what survives a level shift
            level = filled[origins]
            design[:, :k_rec] = recent_all[keep]
            if offs.size:
                design[:, k_rec:k_rel] = filled[targets[:, None] - offs[None, :]]
            design[:, :k_rel] -= level[:, None]
            if k_cal:
                design[:, k_rel:] = cal_all[keep + (h - 1)]
            y = raw[targets] - level
            mu = design.mean(axis=0)
            design -= mu  # centred in place
            gram = design.T @ design
            sd = np.sqrt(np.diag(gram) / keep.size)
            sd[sd < 1e-12] = 1.0
            col = scale_w / sd  # standardise, then rank the penalties (see the module docstring)
            y_mean = float(y.mean())
            yc = y - y_mean
            if self.alpha is None:
                self.alpha = float(RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(design * col, y).alpha_)
            gram *= col[:, None] * col[None, :]
            gram[np.diag_indices_from(gram)] += self.alpha
            beta = np.linalg.solve(gram, (design.T @ yc) * col) * col
            b0 = y_mean - float(np.dot(beta, mu))
            # fold the level back: it enters as lag 0 with weight 1 - (sum of the relative coefficients)
            beta_recent = beta[:k_rec].copy()
            beta_recent[0] += 1.0 - float(beta[:k_rel].sum())
            rows_recent.append(beta_recent)
            rows_season.append(beta[k_rec:k_rel])
            rows_cal.append(beta[k_rel:])
            intercepts.append(b0)
        self._coef_recent = np.vstack(rows_recent)
        self._coef_season = np.vstack(rows_season)
        self._coef_cal = np.vstack(rows_cal)
        self._intercept = np.array(intercepts)
        self._season_offsets = np.vstack(offsets)
        self._trained = horizons
        self._prepare_prediction()

    def _calendar(self, first: int, count: int) -> np.ndarray:
        """``fourier_terms`` of the absolute slots first..first+count-1, computed once per slot.

        Why: every training call needs the terms of the last ~12,000 target slots, and computing
        them (sines and cosines of 20 columns) was the largest part of a call that trains only a few
        new horizons (a gap on a 5-minute series grows the horizons 5 -> 10 -> 20 -> 40 within a few
        samples). Each slot's terms depend on its time only, and the sines of one time are the same
        numbers whichever array they are computed in, so the rows kept from the previous call are
        those a new computation would give; only the slots past the cached range are computed.
        """
        key = (tuple(self._cal_periods), tuple(self._cal_harmonics), self.t0, self.step)
        cached = getattr(self, "_cal_cache", None)  # (first slot, terms, key); absent on a model pickled before it existed
        if cached is not None and cached[2] == key and cached[0] <= first <= cached[0] + cached[1].shape[0]:
            start, terms, _ = cached
            have = terms[first - start :]
            if have.shape[0] >= count:
                return have[:count]
            slots = first + np.arange(have.shape[0], count)
            terms = np.vstack((have, fourier_terms(np.asarray(self.slot_time(slots)), self._cal_periods, self._cal_harmonics)))
        else:
            slots = first + np.arange(count)
            terms = fourier_terms(np.asarray(self.slot_time(slots)), self._cal_periods, self._cal_harmonics)
        self._cal_cache = (first, terms, key)
        return terms

    def _prepare_prediction(self) -> None:
        """Fold coefficients so that a forecast is one gather, one row-wise dot product and one table row."""
        window = MEAN_WINDOWS[-1]
        select = np.zeros((RECENT_LAGS + len(MEAN_WINDOWS), window))
        for j in range(RECENT_LAGS):
            select[j, window - 1 - j] = 1.0
        for i, w in enumerate(MEAN_WINDOWS):
            select[RECENT_LAGS + i, window - w :] = 1.0 / w
        self._recent_weights = self._coef_recent @ select
        hs = np.arange(1, self._trained + 1)[:, None]
        self._ks = np.arange(self._trained)  # (cached: a forecast would allocate it twice)
        self._season_rel = hs - self._season_offsets
        # the recent window and the seasonal lags in one gather and one row-wise dot product
        recent_rel = np.broadcast_to(np.arange(1 - window, 1), (self._trained, window))
        self._rel_all = np.hstack((recent_rel, self._season_rel))  # positions relative to the last slot
        self._coef_all = np.hstack((self._recent_weights, self._coef_season))
        self._cal_table, self._cal_period, self._cal_skew = None, None, None
        if self._cal_periods:
            period = period_slots(self._cal_periods, self.step)
            if period is not None and period * self._trained <= 2_000_000:
                times = np.asarray(self.slot_time(np.arange(period)))
                terms = fourier_terms(times, self._cal_periods, self._cal_harmonics)  # (period, k)
                self._cal_table = self._coef_cal @ terms.T  # (horizon, period)
                self._cal_period = period
                # skewed: row c holds horizon h's term at phase c + h, so a forecast made at phase c
                # reads one contiguous row instead of gathering a diagonal
                phase = (np.arange(period)[:, None] + self._ks[None, :]) % period
                self._cal_skew = self._cal_table[self._ks[None, :], phase]  # (period, horizon)

    # ------------------------------------------------------------ prediction
    def _predict(self, steps: int) -> np.ndarray:
        if self._trained == 0:
            return np.full(steps, self.hist.filled[self.hist.end - 1])
        if steps > self._trained and self._trained < MAX_HORIZON_MODELS:
            # at least double: on a gappy series the steps asked for creep up one at a time, and
            # retraining every horizon at each new maximum made the average update cost ms
            with _one_blas_thread():  # type: ignore[attr-defined]  # (as refits: small solves, many BLAS threads only contend)
                self._train_upto(max(steps, 2 * self._trained))
        k = min(steps, self._trained)
        filled = self.hist.filled
        end = self.hist.end
        window = MEAN_WINDOWS[-1]
        if end >= window:
            pred = self._intercept[:k] + np.einsum("ij,ij->i", self._coef_all[:k], filled[(end - 1) + self._rel_all[:k]])
        else:  # a history shorter than the window: its first value stands in for the missing ones
            recent = np.concatenate((np.full(window - end, filled[0]), filled[:end]))
            pred = self._intercept[:k] + self._recent_weights[:k] @ recent
            if self._season_rel.shape[1]:
                pred += np.einsum("ij,ij->i", self._coef_season[:k], filled[(end - 1) + self._season_rel[:k]])
        if self._cal_skew is not None and self._cal_period is not None:
            pred += self._cal_skew[self.hist.next_index % self._cal_period, :k]
        elif self._cal_periods:
            times = np.asarray(self.slot_time(self.hist.next_index + np.arange(k)))
            pred += np.einsum("ij,ij->i", self._coef_cal[:k], fourier_terms(times, self._cal_periods, self._cal_harmonics))
        if steps > k:
            pred = np.concatenate((pred, np.full(steps - k, pred[-1])))
        return pred

