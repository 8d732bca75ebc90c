"""``auto``: pick or blend candidate models per horizon by their rolling out-of-sample error.

Every candidate reads auto's one history and forecasts at every step (all are
O(1)-updated models; one that is clearly out of the running sleeps for a while
and is then scored again, see ``careplane.forecasting.dormancy``); when the
actual arrives, each candidate's error at each horizon updates an
exponentially weighted mean squared error (half-life one shortest season,
within 300-3000 steps: multi-step errors are strongly autocorrelated, so a
short memory makes the choice noise-driven; a long one keeps a model that broke). A blend
(inverse-MSE weights over the candidates within 25% of the best rolling MSE) is scored the same way. At each
horizon the forecast is the blend, unless the best single candidate's rolling
error is clearly (3%) lower: on a series where one model is plainly best it is
used; where several are close, picking the argmin would follow noise (the
"forecast combination puzzle") and the blend is used.

Each candidate also has a bias-corrected twin (``<name>_debiased``): its
forecast plus its own recent mean signed error at that horizon (EW, half-life
half the shortest season; errors winsorised like the scores). This is the
intercept correction of Clements & Hendry: after a level shift a periodic or
smoothed model stays biased for days, and the correction moves it onto the new
level within a cycle. Where bias correction only adds noise (spiky series) the
twin's rolling error is worse and it is not used; it costs no model updates
(the same forecasts, shifted) and enters the selection and the blend like any
candidate.

The choice and its rolling error (MASE: EW mean absolute error over the
in-sample MAE of the seasonal naive) are exposed as ``chosen`` and
``model_error`` for the CR status. Intervals are calibrated on auto's own output.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from careplane.forecasting.dormancy import Dormancy
from careplane.forecasting.evaluation import mase_scale
from careplane.forecasting.intervals import MAX_TRACKED_HORIZON, file_diagonal
from careplane.forecasting.lag_regression import LagRegression
from careplane.forecasting.online import OnlineForecaster
from careplane.forecasting.seasonal import Naive, SeasonalNaive

BLEND_RATIO = 1.25
RESELECT = 32  # steps between selections: the error memories have half-lives of 300+ steps, the choice moves slowly
SINGLE_MARGIN = 0.03
DEBIAS_SUFFIX = "_debiased"
RIVER_MIN_STEP = 300.0
WINSOR = 5.0


def _default_candidates(step_seconds: float) -> list[Callable[..., OnlineForecaster]]:
    """Every model with O(1) updates; river's recursive multi-step forecast (~10 us per step ahead)
    only where samples are at least RIVER_MIN_STEP apart, to keep auto within its per-sample budget
    on fine (minute, 15 s) grids."""
    from careplane.forecasting.fourier import FourierForecaster
    from careplane.forecasting.holt_winters import HoltWinters
    from careplane.forecasting.river_model import RiverForecaster
    from careplane.forecasting.sarimax import HarmonicSarimax

    out: list[Callable[..., OnlineForecaster]] = [Naive, SeasonalNaive, LagRegression, FourierForecaster, HoltWinters, HarmonicSarimax]
    if step_seconds >= RIVER_MIN_STEP:
        out.append(RiverForecaster)
    return out


class AutoForecaster(OnlineForecaster):
    """Rolling-error selection over candidates plus their blend, per horizon."""

    name = "auto"
    _predict_clips = True  # the candidates' forecasts are clipped at 0 in ``_predict`` (nonnegative series)

    def __init__(self, *, candidates: list[Callable[..., OnlineForecaster]] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        factories = candidates if candidates is not None else _default_candidates(self.step)
        shared = {
            "step_seconds": self.step,
            "seasonalities_seconds": self.seasonalities_seconds,
            "seed": self.seed,
            "max_horizon": self.max_horizon,
            "refit_every": self.refit_every,
            "calibrate": False,
        }
        self.candidates: list[OnlineForecaster] = [f(**shared) for f in factories]
        self._share_history()
        raw_names = [c.name for c in self.candidates]
        self.names = raw_names + [n + DEBIAS_SUFFIX for n in raw_names] + ["blend"]
        shortest = min(self.all_seasons, default=300)
        halflife = float(np.clip(shortest, 300, 3000))
        self._decay = 1.0 - 0.5 ** (1.0 / halflife)
        # the bias memory is short (half a cycle): it has to follow a level shift within the day, not average over it
        self._bias_decay = 1.0 - 0.5 ** (1.0 / float(np.clip(shortest / 2, 12, 3000)))
        self._dormancy = Dormancy(len(self.candidates), memory=max(1, round(halflife / RESELECT)))
        self._awake = list(enumerate(self.candidates))  # (index, candidate) of those asked for forecasts
        self._alloc(self.max_horizon)
        self._scale = math.nan
        self._chosen = "lag_regression"
        self.chosen_by_horizon: list[str] = []

    def _alloc(self, horizons: int) -> None:
        c = len(self.names)
        self._h = min(MAX_TRACKED_HORIZON, max(1, horizons))
        self._rows = self._h + 1
        # forecasts filed by their TARGET slot: scoring an arriving sample is one plain slice. A row is
        # cleared once its slot is learned (``_score``, ``_update``), so a cell holds a forecast for the
        # next slot of its row or NaN: no table of target slots to file and compare (see ``PendingPredictions``)
        self._pred = np.full((self._rows, self._h, c), np.nan)
        self._mse = np.full((self._h, c), np.nan)
        self._mae = np.full((self._h, c), np.nan)
        # the three EW sums in one block (``_wsum``, ``_sqsum``, ``_absum`` are views): the per-step decay is one operation
        self._sums = np.zeros((3, self._h, c))
        self._batch = np.empty((RESELECT, self._h, c))  # errors not yet in ``_sums`` (see ``_score``)
        self._batch_n = 0
        self._hs = np.arange(1, self._h + 1)
        self._bound = np.full((self._h, 1), np.inf)
        self._neg_bound = -self._bound
        self._buf = np.zeros((c, self._h))  # (zeros, not empty: a sleeping candidate's row is read with weight 0)
        n_c = (c - 1) // 2
        self._bias_acc = np.zeros((2, self._h, n_c))  # ``_bias_sum`` (EW signed error of each raw candidate per horizon), ``_bias_w``
        self._bias = np.zeros((self._h, n_c))
        self._selected_k = -1
        self._since_select = 0
        self._uniform_choice = -1  # the column every horizon's choice is, if they are all one (see ``_select``)

    # views into the stacked sums (properties, not attributes: a copied or unpickled model keeps them aliased)
    @property
    def _wsum(self) -> np.ndarray:
        self._flush()
        return self._sums[0]

    @property
    def _sqsum(self) -> np.ndarray:
        self._flush()
        return self._sums[1]

    @property
    def _absum(self) -> np.ndarray:
        self._flush()
        return self._sums[2]

    @property
    def _bias_sum(self) -> np.ndarray:
        return self._bias_acc[0]

    @property
    def _bias_w(self) -> np.ndarray:
        return self._bias_acc[1]

    def _grow(self, horizons: int) -> None:
        """Track more horizons (a longer forecast was asked for) keeping the errors learned so far."""
        self._flush()
        self._dormancy.wake_all(self._sums, self._bias_acc, self._pred)  # (its saved records have the old horizons)
        self._awake = list(enumerate(self.candidates))
        old = {name: getattr(self, name) for name in ("_sums", "_mse", "_mae", "_bias_acc", "_bias")}
        h_old = self._h
        self._alloc(horizons)
        for name, values in old.items():
            getattr(self, name)[..., :h_old, :] = values
        self._bound[:h_old] = np.inf
        self._neg_bound = -self._bound

    def _share_history(self) -> None:
        """Every candidate reads auto's history (one copy, appended once per slot: the candidates
        only ``_follow`` it). Their own copies held the same values, imputed by the same rule."""
        for cand in self.candidates:
            cand.hist = self.hist

    def fit(self, times: np.ndarray, values: np.ndarray) -> None:
        for cand in self.candidates:  # the candidates are fitted inside auto's fit: full estimates, as alone
            cand._in_fit = True
        try:
            super().fit(times, values)
        finally:
            for cand in self.candidates:
                cand._in_fit = False

    def _reset(self) -> None:
        super()._reset()
        self._share_history()
        if hasattr(self, "_pred"):  # (``fit`` on a used model: its slots start over, the forecasts filed are void)
            self._pred.fill(np.nan)
        if hasattr(self, "_dormancy"):  # (``fit`` on a used model: every candidate forecasts again)
            self._flush()
            self._dormancy.wake_all(self._sums, self._bias_acc, self._pred)
            self._awake = list(enumerate(self.candidates))

    # ------------------------------------------------------------ hooks
    def _fit_model(self) -> None:
        if not self._fitted:
            for cand in self.candidates:
                cand.t0 = self.t0
                cand.hist = self.hist
                cand.nonnegative = self.nonnegative
                cand.n_observed = self.n_observed
                cand._refit()
        observed = self.hist.raw_view()
        season = max(self.usable_seasons(min_cycles=1.5), default=1)
        self._scale = mase_scale(observed[-20000:], season)

    def _final_refit(self) -> None:
        for cand in self.candidates:
            cand._refit()
        self._refit()

    def _update(self, y: float) -> None:
        index = self.hist.next_index - 1
        if not math.isnan(y):
            self._score(index, y)
        else:  # nothing scored: the forecasts made for this slot are spent
            self._pred[index % self._rows] = np.nan
        for cand in self.candidates:
            cand._follow(y)  # the slot is already in the shared history

    def _score(self, index: int, y: float) -> None:
        """File the errors of every forecast made for slot ``index``; update the bias memories now.

        The error memories (``_sums``) are only read when auto selects (every RESELECT steps), with
        the winsorising bound fixed between selections: the errors wait in ``_batch`` and enter in
        one vectorised update (``_flush``), the same numbers as updating them one step at a time.
        The bias memories are read at every forecast and updated here.
        """
        row = index % self._rows
        if self._batch_n == self._batch.shape[0]:
            self._flush()
        diff = self._batch[self._batch_n]
        filed = self._pred[row]
        # (H, C): each horizon's error for this slot, NaN at the horizons not forecast for it (their cells are NaN)
        np.subtract(y, filed, out=diff)
        filed.fill(np.nan)  # (spent: the row is reused for slot index + rows)
        self._batch_n += 1
        self._since_select += 1
        n_c = len(self.candidates)
        signed = np.minimum(np.maximum(diff[:, :n_c], self._neg_bound), self._bound)
        b = self._bias_decay
        bias_acc = self._bias_acc
        if math.isfinite(signed.sum()):  # the usual step: every horizon forecast this slot, every model finite
            bias_acc *= 1 - b
            bias_acc[1] += b
            bias_acc[0] += b * signed
            return
        # only the known errors update their memories; the others are left as they are. (``where=`` on the
        # ufuncs: the same products and sums on the known cells as multiplying the rest by 1 and adding 0,
        # in half the numpy calls; a gappy series, where a few of the tracked horizons were forecast for
        # this slot, takes this path at every observation.)
        known = np.isfinite(signed)
        np.multiply(bias_acc, 1 - b, out=bias_acc, where=known)
        np.add(bias_acc[1], b, out=bias_acc[1], where=known)
        np.multiply(signed, b, out=signed)
        np.add(bias_acc[0], signed, out=bias_acc[0], where=known)

    def _flush(self) -> None:
        """Fold the errors waiting in ``_batch`` into the EW error memories (exponential decay per known error).

        Sequentially each known error x does S <- (1 - a) S + a x (an unknown one leaves S alone); over a
        batch that is S <- S prod_j f_j + sum_j a x_j prod_{l > j} f_l with f_j = 1 - a where x_j is known.
        Errors are winsorised at WINSOR x the best candidate's typical error: an outage or a spike is
        unpredictable for every model, and without the cap the one that happens to hold the last value
        through it wins the selection for weeks.
        """
        m = self._batch_n
        if m == 0:
            return
        self._batch_n = 0
        batch = self._batch[:m]  # (m, H, C)
        known = np.isfinite(batch)
        a = self._decay
        sums = self._sums
        h, c = batch.shape[1], batch.shape[2]
        if known.all():  # every error known: the same decay everywhere
            ab = np.abs(batch)
            clipped = np.minimum(ab, self._bound)
            weights, weight_sum = self._decay_weights(m)
            sums *= (1 - a) ** m
            sums[0] += weight_sum
            # (np.tensordot(weights, x, axes=1) is this reshape and dot, without its ~50 us of Python around them)
            np.square(clipped, out=clipped)
            sums[1] += np.dot(weights, clipped.reshape(m, h * c)).reshape(h, c)
            sums[2] += np.dot(weights, ab.reshape(m, h * c)).reshape(h, c)
            return
        # horizons past the last one with a known error in the batch are left alone: every term there is
        # "unknown" (the update would multiply by 1 and add 0). On a gappy series auto tracks up to 64
        # horizons while the usual forecast is a few steps, so this is most of the arrays: they are cut
        # off before any arithmetic (the (m, 64, C) temporaries of the whole batch were ~250 kB each).
        by_horizon = known.any(axis=(0, 2))
        span = int(np.flatnonzero(by_horizon)[-1]) + 1 if by_horizon.any() else 0
        if span == 0:
            return
        if span < known.shape[1]:
            batch, known, sums = batch[:, :span], known[:, :span], sums[:, :span]
        ab = np.abs(batch)
        clipped = np.minimum(ab, self._bound[:span])
        keep = np.where(known, 1 - a, 1.0)
        through = np.multiply.accumulate(keep[::-1], axis=0)[::-1]  # through[j] = prod_{l >= j} keep[l] (np.cumprod, unwrapped)
        after = np.concatenate((through[1:], np.ones((1, *keep.shape[1:]))))  # prod_{l > j}
        weights = np.where(known, a * after, 0.0)
        sums *= through[0]
        sums[0] += weights.sum(axis=0)
        sums[1] += (weights * np.where(known, clipped * clipped, 0.0)).sum(axis=0)
        sums[2] += (weights * np.where(known, ab, 0.0)).sum(axis=0)

    def _decay_weights(self, m: int) -> tuple[np.ndarray, float]:
        """a (1 - a)^(m - 1 - j) for j < m and their sum (cached per m: a batch is RESELECT errors but for a few)."""
        cache = self.__dict__.setdefault("_decay_cache", {})
        hit = cache.get(m)
        if hit is None:
            a = self._decay
            weights = a * (1 - a) ** np.arange(m - 1, -1, -1, dtype=float)
            hit = cache[m] = (weights, weights.sum())
        result: tuple[np.ndarray, float] = hit
        return result

    def _select(self, k: int) -> None:
        """Refresh errors, blend weights and the per-horizon choice (every RESELECT steps: they move slowly);
        wake and put to sleep candidates (see ``careplane.forecasting.dormancy``)."""
        self._flush()  # (before the bound changes: the waiting errors are winsorised at the bound they were made under)
        dormancy = self._dormancy
        changed = dormancy.wake_due(self._sums, self._bias_acc, self._pred)
        wsum, sqsum, absum = self._sums  # (flushed above)
        known = wsum > 0
        if dormancy.asleep.any():
            known &= ~dormancy.masked_columns  # a sleeping candidate's sums are stale: it takes no part
        # (divisions only where known: NaN elsewhere, and no 0/0 to silence)
        self._mse = np.divide(sqsum, wsum, out=np.full(wsum.shape, np.nan), where=known)
        self._mae = np.divide(absum, wsum, out=np.full(wsum.shape, np.nan), where=known)
        # (the rolling errors are finite or NaN: fmin skips the NaN, a row of NaN gives inf)
        best = np.fmin.reduce(self._mae, axis=1, initial=np.inf)
        self._bound = (WINSOR * best)[:, None]
        self._neg_bound = -self._bound
        mse = self._mse[:k, :-1]
        inv = np.where(np.isfinite(mse), 1.0 / np.maximum(mse, 1e-12), 0.0)
        # blend only the models within BLEND_RATIO of the best rolling error: a fixed top-k
        # flickers between near-equal members, a bad model only adds noise
        best_inv = inv.max(axis=1, keepdims=True)
        inv = np.where(inv * BLEND_RATIO >= best_inv, inv, 0.0)
        total = inv.sum(axis=1, keepdims=True)
        self._weights = np.where(total > 0, inv / np.where(total > 0, total, 1.0), 1.0 / inv.shape[1]).T.copy()
        scores = np.where(np.isfinite(self._mse[:k]), self._mse[:k], np.inf)
        default = self.names.index("lag_regression") if "lag_regression" in self.names else len(self.names) - 1
        best_single = np.argmin(scores[:, :-1], axis=1)
        single = scores[np.arange(k), best_single]
        blend = scores[:, -1]
        # the blend unless one model is clearly better: with close rolling errors, picking the
        # argmin follows noise, while the average of the two best is rarely worse than either
        prefer_single = single < (1 - SINGLE_MARGIN) * blend
        choice = np.where(prefer_single, best_single, len(self.names) - 1)
        self._choice = np.where(np.isfinite(scores).any(axis=1), choice, default)
        self._uniform_choice = int(self._choice[0]) if bool((self._choice == self._choice[0]).all()) else -1
        self._choice_cols = np.arange(k)
        self.chosen_by_horizon = [self.names[i] for i in self._choice]
        if self._choice[0] == len(self.names) - 1:  # name the blend's members, e.g. blend:lag_regression+sarimax
            members = [self.names[i] for i in np.flatnonzero(self._weights[:, 0] > 0)]
            self._chosen = "blend:" + "+".join(members)
        else:
            self._chosen = self.chosen_by_horizon[0]
        self._since_select = 0
        self._selected_k = k
        changed |= dormancy.after_selection(self._mse[:k], self._weights, self._choice, self._sums, self._bias_acc)
        if changed:
            self._awake = [(i, self.candidates[i]) for i in dormancy.awake()]

    def _predict(self, steps: int) -> np.ndarray:
        if steps > self._h and self._h < MAX_TRACKED_HORIZON:
            self._grow(max(steps, 2 * self._h))  # doubling: gappy series ask for one more step at a time
        n_c = len(self.candidates)
        n_all = 2 * n_c  # raw candidates, then their bias-corrected twins
        if self._buf.shape[1] < steps:
            self._buf = np.zeros((n_all + 1, steps))
        full = self._buf[:, :steps]
        k = min(steps, self._h)
        # the choice is made for every tracked horizon at once (each horizon's choice depends on its own
        # errors only) and sliced: on a gappy series the steps asked for change from call to call, and
        # re-selecting at every change of ``k`` cost more than the rest of the update. (Before the
        # candidates forecast: a candidate woken here forecasts this step.)
        if self._selected_k != self._h or self._since_select >= RESELECT:
            self._select(self._h)
        for i, cand in self._awake:
            full[i] = cand._predict(steps)
        w = self._bias_w[:k]
        # refreshed every step (unlike the weights): with a half-cycle memory a RESELECT-step lag would matter
        if np.count_nonzero(w) == w.size:  # (weights are >= 0) the usual case, without the masked divide
            # (count_nonzero, not ``w.all()``: the same test without the ~2 us of Python of ndarray.all)
            np.divide(self._bias_sum[:k], w, out=self._bias[:k])
        else:
            self._bias[:k] = np.divide(self._bias_sum[:k], w, out=np.zeros_like(w), where=w > 0)
        np.add(full[:n_c, :k], self._bias[:k].T, out=full[n_c:n_all, :k])
        if steps > k:
            full[n_c:n_all, k:] = full[:n_c, k:]
        if self.nonnegative:
            np.maximum(full, 0.0, out=full)
        full[n_all, :k] = np.einsum("ck,ck->k", self._weights[:, :k], full[:n_all, :k])
        if steps > k:  # beyond the tracked horizons: the mean of the awake candidates
            full[n_all, k:] = full[[i for i, _ in self._awake], k:].mean(axis=0)
        first = self.hist.next_index
        row = first % self._rows
        file_diagonal(self._pred, row, full[:, :k].T)  # (filed by target slot: see ``file_diagonal``)
        uniform = getattr(self, "_uniform_choice", -1)  # (absent on a model pickled before it existed)
        if uniform >= 0:  # one column for every horizon (often the blend): a row, not a gather
            mean = full[uniform, :k].copy()
        else:
            mean = full[self._choice[:k], self._choice_cols[:k]]
        if steps > k:
            mean = np.concatenate((mean, full[n_all, k:]))
        return mean

    @property
    def chosen(self) -> str:
        """What auto forecasts with at one step: a candidate's name or ``blend:<members>``."""
        return self._chosen

    @property
    def model_error(self) -> float | None:
        """Rolling MASE of the chosen model at horizon 1 (None until scored)."""
        if not self.chosen_by_horizon or not math.isfinite(self._scale) or self._scale <= 0:
            return None
        value = self._mae[0, self._choice[0]]
        return float(value / self._scale) if math.isfinite(value) else None
