"""The common machinery of careplane's forecasters: slots, gaps, refits, intervals.

Every model is an :class:`OnlineForecaster`: it maps sample times to slots on
a fixed step, keeps a :class:`~careplane.forecasting.history.History`, and
implements three hooks:

* ``_fit_model()`` — (re)estimate parameters from the history (rare, amortised);
* ``_update(y)`` — O(1) state update after a slot was appended (``y`` NaN on a gap);
* ``_predict(steps)`` — mean forecast for the next ``steps`` slots.

Gaps are never zeros: a missing slot is appended as NaN in ``raw`` and imputed
in ``filled`` (last value for short gaps, same phase one season back for long
ones) so lag features exist; gaps are never trained on or scored. Refits happen every ``refit_every`` learned slots,
counted from ``fit``, so a run and a run on a truncated copy refit at the same
slots (deterministic, causal). ``fit`` replays the last part of the history
online, so the interval calibrator starts with out-of-sample residuals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

from careplane.forecasting.base import Forecast
from careplane.forecasting.evaluation import mase_scale
from careplane.forecasting.history import History, fill_gaps
from careplane.forecasting.intervals import ResidualCalibrator

# Fits run on one BLAS thread: on a shared machine OpenBLAS threads make the
# small solves of a refit (and statsmodels' Kalman initialisation) ten times slower.
# The controller is created at the first refit, once the models' libraries (scipy, statsmodels) are loaded.
_THREADS: ThreadpoolController | None = None


def _one_blas_thread() -> object:
    global _THREADS
    if _THREADS is None:
        _THREADS = ThreadpoolController()
    return _THREADS.limit(limits=1, user_api="blas")


SHORT_GAP_SECONDS = 1800.0  # gaps up to this long are bridged with the last value
# statsmodels' maximum-likelihood estimates (ETS smoothing, ARMA) are redone at every fit but online only
# every ESTIMATE_EVERY refits: they cost ~100 ms (more than the rest of a refit together), the states they
# drive are updated every sample anyway, and parameters a few weeks old are as good. Refitting hourly
# data weekly re-estimated them every 168 samples: ~0.5 ms per sample on average.
ESTIMATE_EVERY = 4


class OnlineForecaster:
    """Base class: see the module docstring. Subclasses set ``name`` and the three hooks."""

    name = "base"
    # True where ``_predict`` already returns max(mean, 0) when ``nonnegative`` (skips a repeat of it)
    _predict_clips = False

    def __init__(
        self,
        *,
        step_seconds: float,
        seasonalities_seconds: Sequence[float] = (86400, 604800),
        seed: int = 0,
        max_horizon: int = 24,
        refit_every: int | None = None,
        replay: int = 1500,
        calibrate: bool = True,
    ) -> None:
        if not step_seconds > 0:
            raise ValueError(f"step_seconds must be positive, got {step_seconds}")
        self.step = float(step_seconds)
        self.seed = seed
        self.max_horizon = max(1, int(max_horizon))
        self.seasonalities_seconds = tuple(float(s) for s in seasonalities_seconds)
        # seasons in slots, shortest first; a season under two slots cannot be seasonal
        self.all_seasons = sorted({round(s / self.step) for s in self.seasonalities_seconds if round(s / self.step) >= 2})
        longest = max(self.all_seasons, default=1)
        # refit about once per longest season (weekly), at most every 10,080 samples
        self.refit_every = refit_every if refit_every is not None else int(np.clip(max(self.all_seasons, default=500), 168, 10080))
        self.replay = replay
        self.calibrate = calibrate
        self.hist = History(max(3 * longest + 2000, 20000))
        self.calib = ResidualCalibrator()
        self.t0: float | None = None
        self.nonnegative = True
        self.n_observed = 0
        self._since_fit = 0
        self._fitted = False
        self._gap_run = 0  # consecutive missing slots so far
        self._mase_scale = math.nan  # in-sample MAE of the seasonal naive (MASE denominator)
        self._short_gap = max(2, round(SHORT_GAP_SECONDS / self.step))
        self._in_fit = False  # inside ``fit``: expensive estimates are always redone
        self._estimated_at: int | None = None  # slot of the last expensive estimate (see ``_estimation_due``)
        self._estimated_held = 0  # history length then

    # ----------------------------------------------------------------- public API
    def fit(self, times: np.ndarray, values: np.ndarray) -> None:
        """Bulk start: fit on the history, replaying its last part online to seed the intervals."""
        self._in_fit = True
        try:
            self._fit(np.asarray(times, dtype=float), np.asarray(values, dtype=float))
        finally:
            self._in_fit = False

    def _fit(self, times: np.ndarray, values: np.ndarray) -> None:
        self._reset()
        if len(times) == 0:
            return
        self.t0 = float(times[0])
        slots = np.rint((times - self.t0) / self.step).astype(np.int64)
        # later rows win a shared slot (irregular traces); slots between rows are gaps
        n_slots = int(slots[-1]) + 1
        raw = np.full(n_slots, np.nan)
        raw[slots] = values
        replay = min(self.replay, n_slots // 3) if n_slots >= 30 else 0
        head = raw[: n_slots - replay]
        observed = head[~np.isnan(head)]
        self.nonnegative = bool(observed.size == 0 or observed.min() >= 0)
        self.n_observed = int(observed.size)
        self.hist.load(head, fill_gaps(head, self.all_seasons[0] if self.all_seasons else None, self._short_gap))
        self._set_level()
        self._refit()
        for i in range(n_slots - replay, n_slots):
            self._learn_slot(raw[i])
            if self.calibrate:
                self.forecast(self.max_horizon)
        if replay > 0.1 * n_slots:
            # a long replay (short histories replay a third) left the parameters stale: refit on
            # everything; the residuals already collected stay out-of-sample
            self._final_refit()

    def learn_one(self, t: float, y: float) -> None:
        """One new sample at time ``t``; ``y`` NaN is a gap. A sample for an already-learned slot only corrects history."""
        y = float(y)
        if self.t0 is None:
            self.t0 = float(t)
        slot = round((float(t) - self.t0) / self.step)
        nxt = self.hist.next_index
        if slot < nxt:
            pos = slot - self.hist.offset
            if 0 <= pos < self.hist.end and not math.isnan(y):
                self.hist.raw[pos] = y
            return
        for _ in range(slot - nxt):
            self._learn_slot(math.nan)
        self._learn_slot(y)

    def forecast(self, steps: int, quantile: float = 0.9) -> Forecast:
        """Mean and the (1 - quantile, quantile) interval for the next ``steps`` slots."""
        steps = max(1, int(steps))
        if self.hist.end == 0 or self.n_observed == 0:
            nan = np.full(steps, np.nan)
            return Forecast(nan, nan.copy(), nan.copy(), quantile)
        mean = self._predict(steps)
        if self.nonnegative and not self._predict_clips:
            mean = np.maximum(mean, 0.0)
        if self.calibrate:
            self.calib.record(self.hist.next_index - 1, mean)
        lower, upper = self.calib.interval(mean, quantile, nonnegative=self.nonnegative)  # (clipped at 0 if nonnegative)
        return Forecast(mean, lower, upper, quantile)

    @property
    def chosen(self) -> str:
        """The model in use (auto overrides: the model it picked)."""
        return self.name

    @property
    def model_error(self) -> float | None:
        """Rolling out-of-sample MASE at one step (EW MAE over the in-sample seasonal-naive MAE); None until known."""
        mae = self.calib.rolling_mae
        if not self.calibrate or not math.isfinite(mae) or not math.isfinite(self._mase_scale) or self._mase_scale <= 0:
            return None
        return mae / self._mase_scale

    def steps_ahead(self, t: float) -> int:
        """How many slots after the last learned one the time ``t`` falls."""
        if self.t0 is None:
            return 1
        return round((float(t) - self.t0) / self.step) - (self.hist.next_index - 1)

    def slot_time(self, index: int | np.ndarray) -> float | np.ndarray:
        """Time of an absolute slot index (for calendar features)."""
        return (self.t0 or 0.0) + np.asarray(index, dtype=float) * self.step

    # ----------------------------------------------------------------- machinery
    def _reset(self) -> None:
        self.hist = History(self.hist.capacity)
        self.calib = ResidualCalibrator()
        self.t0 = None
        self.nonnegative = True
        self.n_observed = 0
        self._since_fit = 0
        self._fitted = False
        self._gap_run = 0
        self._mase_scale = math.nan
        self._estimated_at = None
        self._estimated_held = 0

    def _set_level(self) -> None:
        recent = self.hist.raw_view()[-5000:]
        recent = recent[~np.isnan(recent)]
        if recent.size == 0:
            return
        level = float(np.median(np.abs(recent)))
        diffs = np.diff(recent)
        sigma = float(np.std(diffs)) if diffs.size else 0.0
        self.calib.set_level(level, sigma / math.sqrt(level + max(1e-9, 0.1 * level)) if sigma > 0 else 0.0)
        seasons = [m for m in self.all_seasons if recent.size > m]
        self._mase_scale = mase_scale(recent, max(seasons, default=1))

    def _learn_slot(self, y: float) -> None:
        hist = self.hist
        if math.isnan(y):
            if self.calibrate:  # (nothing scored; the forecasts made for the slot are spent)
                self.calib.observe(hist.next_index, y)
            hist.append(math.nan, self._impute(self._gap_run + 1))
        else:
            if self.calibrate:
                self.calib.observe(hist.next_index, y)
            if self.n_observed == 0 and hist.end:
                # the first observation: earlier imputed slots (all unknown) take its value
                hist.filled[: hist.end] = y
            hist.append(y, y)
        self._follow(y)

    def _follow(self, y: float) -> None:
        """Everything a new slot does once it is in the history: counters, the model's update, refits.

        Separate from ``_learn_slot`` so that models reading a history kept by someone else
        (auto's candidates share auto's) follow it without appending it again.
        """
        if math.isnan(y):
            self._gap_run += 1
        else:
            self._gap_run = 0
            if y < 0:
                self.nonnegative = False
            self.n_observed += 1
            if self.n_observed in (2, 50, 500):
                self._set_level()
        self._update(y)
        self._since_fit += 1
        if self._since_fit >= self.refit_every or (not self._fitted and self.n_observed in (2, 10, 50, 200)):
            self._refit()

    def _impute(self, gap_run: int) -> float:
        """The filled value of the ``gap_run``-th consecutive missing slot: the last value for short gaps, the same phase one
        season back for long ones (a copy, never an extrapolation: imputing with the model's own
        forecasts feeds its errors back into its lags and diverges on sparse series)."""
        end = self.hist.end
        if end == 0 or self.n_observed == 0:
            return math.nan
        last = float(self.hist.filled[end - 1])
        if gap_run <= self._short_gap or not self.all_seasons:
            return last
        m = self.all_seasons[0]
        if end >= m:
            seasonal = float(self.hist.filled[end - m])
            if math.isfinite(seasonal):
                return seasonal
        return last

    def _final_refit(self) -> None:
        self._refit()

    def _estimation_due(self) -> bool:
        """Whether this refit redoes the expensive estimates: always inside ``fit`` and while the history is
        still growing fast (it doubled since the last estimate: a cold start), else every ESTIMATE_EVERY
        refits. Records it if so. Counted in slots, so a run and a run on a truncated copy estimate at the
        same slots."""
        now, held = self.hist.next_index, self.hist.end
        at = self._estimated_at
        if self._in_fit or at is None or now - at >= ESTIMATE_EVERY * self.refit_every or held >= 2 * self._estimated_held:
            self._estimated_at, self._estimated_held = now, held
            return True
        return False

    def _refit(self) -> None:
        self._since_fit = 0
        if self.n_observed == 0:
            return
        with _one_blas_thread():  # type: ignore[attr-defined]
            self._fit_model()
        self._fitted = True

    def usable_seasons(self, min_cycles: float = 2.0) -> list[int]:
        """Seasons (slots) with at least ``min_cycles`` cycles in the current history, shortest first."""
        n = self.hist.end
        return [m for m in self.all_seasons if n >= min_cycles * m]

    # ----------------------------------------------------------------- hooks
    def _fit_model(self) -> None:
        """Estimate parameters from ``self.hist`` (called at fit and every ``refit_every`` slots)."""

    def _update(self, y: float) -> None:
        """Cheap state update after one slot was appended (``y`` NaN for a gap)."""

    def _predict(self, steps: int) -> np.ndarray:
        raise NotImplementedError
