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
SPAN_QUANTILE = 0.95  # see ``_horizons_asked``: the forecast lengths the series' own spacing asks for, but its rarest gaps
CALENDAR_HEADROOM = 512  # slots of calendar terms computed ahead (see ``_calendar``)


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
        self._period_terms_cache: tuple[tuple[object, ...], np.ndarray] | None = None  # see ``_period_terms``

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
        self._train_upto(self._horizons_asked())

    def _horizons_asked(self) -> int:
        """How many horizons (slots) to train at a (re)fit: ``max_horizon``, or more where the series has gaps.

        Why: a forecast is asked for the time of an observation ``max_horizon`` observations ahead (the
        ``forecast eval`` protocol); on a series with gaps that is more slots ahead than ``max_horizon``,
        and the first such request trained the missing horizons one doubling at a time (5 -> 10 -> 20 ->
        40 -> 64: up to four trainings, each rebuilding the shared tables; 10-20 ms on a gappy NAB
        series, paid inside the per-sample updates right after every fit and refit). The slots spanned
        by ``max_horizon`` consecutive observations in the history say what will be asked; their
        SPAN_QUANTILE quantile is trained at once (the rarest, longest gaps still grow the horizons on
        demand). On a series without gaps it is ``max_horizon``: nothing changes.
        """
        h = self.max_horizon
        missing = np.isnan(self.hist.raw_view()[-MAX_TRAIN_ROWS:])
        if not missing.any():  # (every span is h: no quantile to compute at every refit of a gapless series)
            return h
        seen = np.flatnonzero(~missing)
        if seen.size <= h:
            return h
        spans = seen[h:] - seen[:-h]
        return int(min(MAX_HORIZON_MODELS, max(h, math.ceil(float(np.quantile(spans, SPAN_QUANTILE))))))

    def _train_upto(self, horizons: int, *, batched: bool = True) -> None:
        """Train the direct models of horizons ``_trained + 1``..``horizons`` on the current history.

        The horizons already trained keep their coefficients until the next scheduled refit
        (``_fit_model`` resets ``_trained``): a longer forecast asked for in between (a gap in a
        series makes the next row many slots ahead) only adds models, so its cost is that of
        the new horizons, not of all of them again.

        Per horizon the estimator is the textbook recipe (standardise the design, ridge on the
        centred data, unscale the coefficients); what differs is how the design's moments are
        obtained. ``batched`` (the default) gets every horizon's Gram matrix from tables shared by
        all horizons and solves them in one batched call (see ``_batched_fits``: a few times
        cheaper than building each horizon's design, which made a gap that grows the horizons to
        40-64 cost tens of ms); ``batched=False`` builds each design and multiplies it out (the
        reference the tests compare against; also used for the first horizon of the first fit,
        whose explicit design RidgeCV needs to pick alpha). The coefficients
        agree to rounding (tested). scikit-learn's Ridge is not used for the solves: it
        validates and copies its input on every call (milliseconds), and a refit solves one
        small (p ~ 30) system per horizon; RidgeCV still picks alpha at the first fit.
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
        todo = list(range(first, horizons + 1))
        fits: dict[int, tuple[np.ndarray, float]] = {}
        # (alpha is chosen by RidgeCV on the first horizon's explicit design: until then the reference way)
        batch_due = batched and origins_all.size > 0 and bool(np.isfinite(filled).all())
        for h in todo:
            if batch_due and self.alpha is not None:
                fits = self._batched_fits(todo[todo.index(h) :], filled, raw, known, o_first, recent_all, cal_all, k_rec, k_cal, scale_w)
                batch_due = False
            offs = offsets[h - 1]
            k_rel = k_rec + offs.size
            if h in fits:
                beta, b0 = fits[h]
            else:
                usable = max(origins_all.size - (h - 1), 0)
                keep = np.flatnonzero(known[o_first + h : o_first + h + usable])  # rows whose target is known
                count = keep.size
                if count < 10:
                    rows_recent.append(np.eye(1, k_rec, 0)[0])
                    rows_season.append(np.zeros(offs.size))
                    rows_cal.append(np.zeros(k_cal))
                    intercepts.append(0.0)
                    continue
                origins = keep + o_first
                targets = origins + h
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
                y_mean = float(y.mean())
                xty = design.T @ (y - y_mean)
                if self.alpha is None:
                    sd = np.sqrt(np.diag(gram) / count)
                    sd[sd < 1e-12] = 1.0
                    self.alpha = float(RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(design * (scale_w / sd), y).alpha_)
                beta, b0 = self._ridge(gram, xty, mu, y_mean, count, scale_w)
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
        self._prepare_prediction(kept=first - 1)

    def _ridge(self, gram: np.ndarray, xty: np.ndarray, mu: np.ndarray, y_mean: float, count: int, scale_w: np.ndarray) -> tuple[np.ndarray, float]:
        """Ridge coefficients and intercept from the centred design's Gram matrix ``gram`` and ``xty`` (its
        product with the centred target): standardise, rank the penalties (see the module docstring), solve, unscale."""
        assert self.alpha is not None
        diag = np.maximum(np.diag(gram), 0.0)  # (>= 0 in exact arithmetic; the batched sums can round below)
        sd = np.sqrt(diag / count)
        sd[sd < 1e-12] = 1.0
        col = scale_w / sd
        gram = gram * (col[:, None] * col[None, :])
        gram.flat[:: gram.shape[0] + 1] += self.alpha  # (the diagonal)
        beta = np.linalg.solve(gram, xty * col) * col
        return beta, y_mean - float(np.dot(beta, mu))

    def _ridge_many(
        self, gram: np.ndarray, xty: np.ndarray, mu: np.ndarray, y_mean: np.ndarray, count: np.ndarray, scale_w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``_ridge`` for a stack of horizons at once (one batched solve): the same steps on (horizons, p, p) arrays."""
        assert self.alpha is not None
        diag = np.maximum(np.diagonal(gram, axis1=1, axis2=2), 0.0)
        sd = np.sqrt(diag / count[:, None])
        sd[sd < 1e-12] = 1.0
        col = scale_w / sd
        scaled = gram * (col[:, :, None] * col[:, None, :])
        index = np.arange(scaled.shape[1])
        scaled[:, index, index] += self.alpha
        beta = np.linalg.solve(scaled, (xty * col)[:, :, None])[:, :, 0] * col
        return beta, y_mean - np.einsum("hp,hp->h", beta, mu)

    def _batched_fits(
        self,
        hs: list[int],
        filled: np.ndarray,
        raw: np.ndarray,
        known: np.ndarray,
        o_first: int,
        recent_all: np.ndarray,
        cal_all: np.ndarray,
        k_rec: int,
        k_cal: int,
        scale_w: np.ndarray,
    ) -> dict[int, tuple[np.ndarray, float]]:
        """Per horizon h in ``hs`` with at least 10 rows: its ridge (coefficients, intercept), without building its design.

        Why: a row of horizon h's design (and its target) is the sum of a part that depends on the origin o only
        (the recent lags, y[t - m], minus the level y[o]) and a part that depends on the target slot T = o + h
        only (the seasonal lags at the target's phase, the calendar terms, y[T]): z = A u(o) + B v(T), with A and B
        fixed 0/1 maps. So Sum z z' over the rows of h is A (Sum u u') A' + B (Sum v v') B' + the cross terms: Sum u u'
        and Sum u v' are products of the per-origin table (~9 columns) at the origins of h's known targets with the
        per-target table (~30 columns), and Sum v v' runs over the known T >= o_first + h, a suffix kept up to date by
        a rank-one update per horizon. That is ~9 x 40 products per row instead of the ~36 x 36 of the design's own
        Gram matrix, and no design is built. Centring is applied to the sums afterwards (Gram - N mu mu'), and the
        ridges of a group of horizons are solved together (``_ridge_many``). Values are taken relative to the last
        value of the history (every column is a difference of values or a calendar term, so this changes nothing
        exactly) to keep the cancellation in the uncentred sums small. The target-relative seasonal offsets change
        only when h crosses a multiple of a season: horizons are processed in groups with the same offsets.
        """
        c = float(filled[-1])
        f = filled - c
        r = raw - c
        n = f.shape[0]
        n_orig = recent_all.shape[0]  # origins o_first .. o_first + n_orig - 1 == n - 2
        level = filled[o_first : o_first + n_orig]
        u_cols = [recent_all - level[:, None], -(level - c)[:, None]]
        u_cols += [(filled[o_first - m : o_first - m + n_orig] - level)[:, None] for m, _ in self._seasons]
        big_u = np.hstack(u_cols)
        q_u = big_u.shape[1]
        groups: dict[tuple[int, ...], list[int]] = {}
        layouts: dict[int, list[tuple[str, int]]] = {}
        for h in hs:
            layout: list[tuple[str, int]] = []  # per seasonal column: ("S", target offset) or ("Z", season index)
            for s_i, (m, two) in enumerate(self._seasons):
                back = m * math.ceil((h + 1) / m)
                layout += [("S", back + 1), ("S", back), ("S", back - 1)]
                if two:
                    layout.append(("S", back + m))
                layout.append(("Z", s_i))
            layouts[h] = layout
            groups.setdefault(tuple(off for kind, off in layout if kind == "S"), []).append(h)
        out: dict[int, tuple[np.ndarray, float]] = {}
        for s_offs, members in groups.items():
            layout = layouts[members[0]]
            k_s = len(layout)
            p = k_rec + k_s + k_cal
            n_sv = len(s_offs)
            q_v = n_sv + k_cal + 1
            # the 0/1 maps from u and v onto the design columns (recent | seasonal | calendar) and the target
            a_map = np.zeros((p + 1, q_u))
            b_map = np.zeros((p + 1, q_v))
            a_map[np.arange(k_rec), np.arange(k_rec)] = 1.0
            s_j = 0
            for j, (kind, val) in enumerate(layout):
                if kind == "S":
                    a_map[k_rec + j, k_rec] = 1.0  # minus the level
                    b_map[k_rec + j, s_j] = 1.0
                    s_j += 1
                else:
                    a_map[k_rec + j, k_rec + 1 + val] = 1.0
            b_map[k_rec + k_s + np.arange(k_cal), n_sv + np.arange(k_cal)] = 1.0
            a_map[p, k_rec] = 1.0
            b_map[p, q_v - 1] = 1.0
            lo = o_first + min(members)
            targets = lo + np.flatnonzero(known[lo:n])  # the known target slots any horizon of the group uses
            v_cols = [f[targets - off][:, None] for off in s_offs]
            if k_cal:
                v_cols.append(cal_all[targets - o_first - 1])
            v_cols.append(r[targets, None])
            v_cols.append(np.ones((targets.size, 1)))  # (its sums are the row counts and the plain sums of u and v)
            big_v = np.hstack(v_cols)
            svv = np.zeros((q_v + 1, q_v + 1))
            done = targets.size  # rows of ``big_v`` already in the suffix sums
            kept: list[int] = []
            counts, guus, guvs, svvs = [], [], [], []
            for h in sorted(members, reverse=True):
                i0 = int(np.searchsorted(targets, o_first + h))  # horizon h's targets: T >= o_first + h
                if i0 < done:  # the targets this horizon adds to the suffix (a row or two)
                    svv += big_v[i0:done].T @ big_v[i0:done]
                    done = i0
                count = targets.size - i0
                if count < 10:
                    continue
                rows_u = big_u[targets[i0:] - h - o_first]  # the origins of those targets
                kept.append(h)
                counts.append(float(count))
                guus.append(rows_u.T @ rows_u)
                guvs.append(rows_u.T @ big_v[i0:])
                svvs.append(svv.copy())
            if not kept:
                continue
            # the rest for every horizon of the group at once (stacked): assemble the design's sums, centre them
            cnt = np.array(counts)
            guu_s, guv_s, svv_s = np.array(guus), np.array(guvs), np.array(svvs)
            cross = a_map @ guv_s[:, :, :-1] @ b_map.T
            g = a_map @ guu_s @ a_map.T + b_map @ svv_s[:, :-1, :-1] @ b_map.T + cross + cross.transpose(0, 2, 1)
            sums = guv_s[:, :, -1] @ a_map.T + svv_s[:, -1, :-1] @ b_map.T  # (horizons, p + 1)
            mu = sums[:, :p] / cnt[:, None]
            y_mean = sums[:, p] / cnt
            gram = g[:, :p, :p] - cnt[:, None, None] * (mu[:, :, None] * mu[:, None, :])
            xty = g[:, :p, p] - cnt[:, None] * mu * y_mean[:, None]
            beta, b0 = self._ridge_many(gram, xty, mu, y_mean, cnt, scale_w)
            for j, h in enumerate(kept):
                out[h] = (beta[j], float(b0[j]))
        return out

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
            # (computed some slots past the request: the next calls, a few slots later, then find them here
            # instead of copying the whole block to append a few rows; future slots' terms are known)
            slots = first + np.arange(have.shape[0], count + CALENDAR_HEADROOM)
            terms = np.vstack((have, fourier_terms(np.asarray(self.slot_time(slots)), self._cal_periods, self._cal_harmonics)))
        else:
            slots = first + np.arange(count + CALENDAR_HEADROOM)
            terms = fourier_terms(np.asarray(self.slot_time(slots)), self._cal_periods, self._cal_harmonics)
        self._cal_cache = (first, terms, key)
        return terms[:count]

    def _prepare_prediction(self, kept: int = 0) -> None:
        """Fold coefficients so that a forecast is one gather, one row-wise dot product and one table row
        (``kept``: the first ``kept`` horizons' coefficients are those of the previous call)."""
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
        old_table, old_period, old_skew = self._cal_table, self._cal_period, self._cal_skew
        self._cal_table, self._cal_period, self._cal_skew = None, None, None
        if self._cal_periods:
            period = period_slots(self._cal_periods, self.step)
            if period is not None and period * self._trained <= 2_000_000:
                terms_t = self._period_terms(period)  # (k, period)
                ks = self._ks
                if kept and old_table is not None and old_skew is not None and old_period == period and old_table.shape[0] == kept:
                    # horizons added to the trained ones (a gap asked for a longer forecast): their rows only,
                    # the rows of the horizons kept are the ones computed before from the same coefficients
                    new_rows = self._coef_cal[kept:] @ terms_t
                    self._cal_table = np.vstack((old_table, new_rows))
                    ks = ks[kept:]
                    phase = (np.arange(period)[:, None] + ks[None, :]) % period
                    self._cal_skew = np.hstack((old_skew, new_rows[ks[None, :] - kept, phase]))
                else:
                    self._cal_table = self._coef_cal @ terms_t  # (horizon, period)
                    # skewed: row c holds horizon h's term at phase c + h, so a forecast made at phase c
                    # reads one contiguous row instead of gathering a diagonal
                    phase = (np.arange(period)[:, None] + ks[None, :]) % period
                    self._cal_skew = self._cal_table[ks[None, :], phase]  # (period, horizon)
                self._cal_period = period

    def _period_terms(self, period: int) -> np.ndarray:
        """The calendar terms of one common cycle of slots, transposed (k, period); cached: they depend on the
        grid and the calendar periods only, and recomputing sines for every slot of a week at each refit or
        horizon growth cost more than the rest of ``_prepare_prediction``."""
        key = (period, tuple(self._cal_periods), tuple(self._cal_harmonics), self.t0, self.step)
        cached = getattr(self, "_period_terms_cache", None)  # (absent on a model pickled before it existed)
        if cached is None or cached[0] != key:
            times = np.asarray(self.slot_time(np.arange(period)))
            terms_t = np.ascontiguousarray(fourier_terms(times, self._cal_periods, self._cal_harmonics).T)
            cached = self._period_terms_cache = (key, terms_t)
        result: np.ndarray = cached[1]
        return result

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

