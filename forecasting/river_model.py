"""An online linear model from river: learns every sample by SGD, no refits.

Why it is here: it is the cheapest model that keeps adapting without any
batch refit (concept drift handled by construction), the way river models are
meant to run. Features for the next slot: the last three values, the mean of
the last 16, the value one cycle back for each season the history covers,
and the daily phase; inputs and target are standardised online.
Multi-step forecasts are recursive (predictions feed the short lags).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from river import compose, linear_model, optim, preprocessing
from scipy.signal import lfilter

from careplane.forecasting.online import OnlineForecaster

FIT_ROWS = 20000
RECENT = 3
MEAN_WINDOW = 16
PHASE_TABLE_MAX = 10080
RANGE_WINDOW = 5000  # forecasts stay within the range of the last RANGE_WINDOW values, widened by its span
SHORT_FORECAST = 8  # up to this many steps the non-recursive terms are summed in plain Python (numpy per-call overhead dominates)
LFILTER_STEPS = 48  # from this many steps the recursion runs in scipy's lfilter (C) instead of a Python loop
LAG_NAMES = tuple((j, f"lag{j}") for j in range(1, RECENT + 1))  # feature names, formatted once


@functools.lru_cache(maxsize=64)
def _season_name(m: int) -> str:
    return f"season{m}"


class RiverForecaster(OnlineForecaster):
    """river LinearRegression on lag features; see the module docstring."""

    name = "river"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._model = self._new_model()
        self._day = 86400.0 / self.step
        self._sin_table: np.ndarray | None = None
        self._cos_table: np.ndarray | None = None
        self._sin_list: list[float] = []
        self._cos_list: list[float] = []
        self._range = np.arange(0)
        self._skew: tuple[np.ndarray, np.ndarray] | None = None  # see ``_skewed_phase``
        self._window_range: tuple[object, int, float, float] | None = None  # (history, next_index, min, max)
        self._affine_cache: tuple[dict[str, float], float] | None = None  # see ``_predict``

    def _new_model(self) -> preprocessing.TargetStandardScaler:
        return preprocessing.TargetStandardScaler(
            regressor=compose.Pipeline(  # type: ignore[arg-type]
                preprocessing.StandardScaler(),
                # clipped gradients: one outlier (a spike in a CPU series) must not blow SGD up
                linear_model.LinearRegression(optimizer=optim.SGD(0.005), l2=1e-3, clip_gradient=1.0),
            )
        )

    def _features(self, pos: int, value_at: object, seasons: list[int], history: np.ndarray | None = None) -> dict[str, float]:
        """Features for the slot at buffer position ``pos`` from values strictly before it
        (``history``: the array ``value_at`` reads, when every lag lies in it)."""
        get = value_at  # callable: position -> value
        if history is not None:  # one slice instead of 19 calls: the lags are its last values, the mean
            # its sum in the same (newest first) order
            window = history[pos - MEAN_WINDOW : pos].tolist()
            x = {name: window[-j] for j, name in LAG_NAMES}
            x["mean"] = sum(reversed(window)) / MEAN_WINDOW
        else:
            x = {name: get(pos - j) for j, name in LAG_NAMES}  # type: ignore[operator]
            x["mean"] = sum(get(pos - j) for j in range(1, MEAN_WINDOW + 1)) / MEAN_WINDOW  # type: ignore[operator]
        for m in seasons:
            x[_season_name(m)] = get(pos - m)  # type: ignore[operator]
        if self._day >= 4:
            phase = 2 * math.pi * ((self.hist.offset + pos) % self._day) / self._day
            x["day_sin"], x["day_cos"] = math.sin(phase), math.cos(phase)
        return x

    def _seasons(self) -> list[int]:
        return [m for m in self.usable_seasons(min_cycles=1.0) if m > MEAN_WINDOW]

    def _seasons_before(self, pos: int) -> list[int]:
        """``_seasons()`` whose lag ``pos - m`` lies in the history. Once the history is longer than the longest
        season that is every season (the usual case: a fixed list, not two list comprehensions per call)."""
        longest = self.all_seasons[-1] if self.all_seasons else 0
        if pos >= longest and self.hist.end > longest:
            every = self.__dict__.get("_every_season")
            if every is None:
                every = self._every_season = [m for m in self.all_seasons if m > MEAN_WINDOW]
            return list(every)
        return [m for m in self._seasons() if pos >= m]

    def _fit_model(self) -> None:
        if self._fitted:
            return  # an online model: it keeps learning; nothing to refit
        self._model = self._new_model()
        filled, raw = self.hist.filled, self.hist.raw
        seasons = self._seasons()
        start = max(MEAN_WINDOW, max(seasons, default=0), self.hist.end - FIT_ROWS)
        for pos in range(start, self.hist.end):
            if not math.isnan(raw[pos]):
                _learn_one(self._model, self._features(pos, filled.item, seasons, filled), float(raw[pos]))
        self._affine_cache = None

    def _update(self, y: float) -> None:
        pos = self.hist.end - 1
        if math.isnan(y) or pos < MEAN_WINDOW:
            return
        seasons = self._seasons_before(pos)
        # (the prediction map comes out of the learning step: see ``_predict``)
        self._affine_cache = _learn_one(self._model, self._features(pos, self.hist.filled.item, seasons, self.hist.filled), y)

    def _affine(self) -> tuple[dict[str, float], float]:
        """The pipeline's current prediction as one affine map of the raw features: (coefficients, constant).

        Why: a recursive multi-step forecast calls the model once per step ahead, and river's
        ``predict_one`` (three dict-to-dict transforms) costs ~40 us with the feature dict; the
        pipeline is linear at prediction time (standardise, dot product, unstandardise), so it
        folds into one set of coefficients per forecast, exactly what ``predict_one`` computes
        (checked against it in the tests).
        """
        scaler = self._model.regressor.steps["StandardScaler"]  # type: ignore[attr-defined]
        linear = self._model.regressor.steps["LinearRegression"]  # type: ignore[attr-defined]
        weights = linear._weights.to_dict()
        sd_y = self._model.var.get() ** 0.5
        mean_y = self._model.var.mean.get()
        coef: dict[str, float] = {}
        const = float(linear.intercept)
        for name, w in weights.items():
            var = scaler.vars.get(name, 0.0)
            if var:  # river maps a constant feature to 0
                sd = var**0.5
                coef[name] = sd_y * w / sd
                const -= w * scaler.means.get(name, 0.0) / sd
        return coef, mean_y + sd_y * const

    def _tables_ready(self) -> bool:
        """Build the one-day sin/cos tables where a day is a whole number of slots (at most PHASE_TABLE_MAX); True if they exist."""
        day = self._day
        if self._sin_table is None and day.is_integer() and day <= PHASE_TABLE_MAX:
            phase = 2 * math.pi * np.arange(int(day)) / day
            self._sin_table, self._cos_table = np.sin(phase), np.cos(phase)
            self._sin_list, self._cos_list = self._sin_table.tolist(), self._cos_table.tolist()
        return self._sin_table is not None

    def _phase_tables(self, first: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """sin and cos of the daily phase of slots first..first+steps-1 (as in ``_features``); from
        a table of one day where a day is a whole number of slots (at most PHASE_TABLE_MAX)."""
        day = self._day
        self._tables_ready()
        if self._sin_table is not None and self._cos_table is not None:
            slots = (first + self._steps_range(steps)) % self._sin_table.shape[0]
            return self._sin_table[slots], self._cos_table[slots]
        phase = 2 * math.pi * ((first + self._steps_range(steps)) % day) / day
        return np.sin(phase), np.cos(phase)

    def _skewed_phase(self, steps: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(sin, cos) tables of shape (day, width >= steps) whose row c holds the daily phase terms of
        slots c, c + 1, ... (mod one day): the ``_phase_tables`` of a forecast starting at phase c are
        row c's first ``steps`` entries, the same numbers read without an index computation and two
        gathers per forecast. Widened (doubling) when a longer forecast is asked for; None where no
        one-day table exists."""
        if not self._tables_ready() or self._sin_table is None or self._cos_table is None:
            return None
        cached = getattr(self, "_skew", None)  # (a model pickled before this cache existed has none)
        if cached is None or cached[0].shape[1] < steps:
            size = self._sin_table.shape[0]
            width = max(steps, 2 * cached[0].shape[1] if cached is not None else steps)
            index = (np.arange(size)[:, None] + np.arange(width)[None, :]) % size
            cached = self._skew = (self._sin_table[index], self._cos_table[index])
        return cached

    def _steps_range(self, steps: int) -> np.ndarray:
        if self._range.shape[0] != steps:
            self._range = np.arange(steps)
        return self._range

    def _recent_range(self) -> tuple[float, float]:
        """(min, max) of the last RANGE_WINDOW filled values, updated incrementally.

        Why: two reductions over 5,000 values per forecast cost more than the rest of a short
        forecast. The extremes only change when a new value falls outside them (a cheap
        update) or when one leaves the window (then recomputed); any other change to the
        history (a bulk load, a new History) starts over. Exact: the same numbers as
        ``min``/``max`` of the window.
        """
        hist = self.hist
        end = hist.end
        nxt = hist.next_index
        filled = hist.filled
        cached = self._window_range
        if cached is not None and cached[0] is hist and 0 <= nxt - cached[1] <= min(end, 16):
            _, seen, low, high = cached
            # (a few scalars per call: numpy slices and reductions here would cost more than a short forecast)
            item = filled.item
            for index in range(seen, nxt):
                gone = index - RANGE_WINDOW - hist.offset  # the value that left the window with slot ``index``
                if gone >= 0:
                    value = item(gone)
                    if value <= low or value >= high:
                        break  # an extreme left the window: recompute
                value = item(index - hist.offset)
                if value < low:
                    low = value
                elif value > high:
                    high = value
            else:
                self._window_range = (hist, nxt, low, high)
                return low, high
        recent = filled[max(0, end - RANGE_WINDOW) : end]
        low, high = float(recent.min()), float(recent.max())
        # (NaN only before the first observation: not cached, comparisons with NaN would never refresh it)
        self._window_range = (hist, nxt, low, high) if math.isfinite(low + high) else None
        return low, high

    def _predict(self, steps: int) -> np.ndarray:
        end = self.hist.end
        filled = self.hist.filled
        if end <= MEAN_WINDOW:
            return np.full(steps, filled[end - 1])
        seasons = self._seasons_before(end)
        # the map the last learning step left (computed there, from the numbers it had at hand), else read back;
        # every change to the model goes through ``_update`` or ``_fit_model``, which set or clear it
        cached = self.__dict__.get("_affine_cache")  # (absent on a model pickled before it existed)
        coef, const = cached if cached is not None else self._affine()
        c1, c2, c3 = (coef.get(name, 0.0) for _, name in LAG_NAMES)  # RECENT == 3
        c_mean = coef.get("mean", 0.0) / MEAN_WINDOW
        c_season = [(m, coef.get(_season_name(m), 0.0)) for m in seasons]
        c_sin, c_cos = coef.get("day_sin", 0.0), coef.get("day_cos", 0.0)
        first = self.hist.offset + end
        # seasons longer than the forecast only ever read history: one slice each (a weekly season on
        # minute data would otherwise convert 10,080 values per call); shorter ones read the forecast too
        from_history = [(filled[end - m : end - m + steps], c) for m, c in c_season if m >= steps]
        fed_back = [(m, c) for m, c in c_season if m < steps]
        back = max([RECENT, MEAN_WINDOW, *(m for m, _ in fed_back)])
        # plain floats, not numpy: forecasts are short, and per-call numpy overhead would dominate
        ext: list[float] = filled[end - back : end].tolist()  # history, then the forecasts fed back
        # SGD can still wander on a regime change: keep forecasts within the range seen, widened by its span
        low, high = self._recent_range()
        span = max(high - low, 1e-9)
        low, high = low - span, high + span
        last = float(filled[end - 1])
        window_sum = sum(ext[back - MEAN_WINDOW : back])
        # the terms that do not depend on the recursion (long seasonal lags, daily phase), summed per
        # step ahead before the loop: the loop is where a forecast spends its time. (The sum is
        # associated differently from predict_one's: equal to ~1e-15, not bit for bit.)
        tails = self._tails(steps, from_history, first, c_sin, c_cos)
        if steps >= LFILTER_STEPS:
            taps = np.zeros(back)  # y[t] = const + tail[t] + sum_j taps[j - 1] * y[t - j]
            taps[:MEAN_WINDOW] = c_mean
            taps[:3] += (c1, c2, c3)
            for m, c in fed_back:
                taps[m - 1] += c
            fast = _linear_recursion(taps, np.asarray(ext), const + np.asarray(tails))
            if fast is not None and bool(np.all((fast >= low) & (fast <= high))):
                return fast  # (no value needed clipping: the loop below would give the same numbers)
        y1, y2, y3 = ext[back - 1], ext[back - 2], ext[back - 3]  # the last three values, kept in locals
        for h in range(steps):
            p = back + h
            if h:
                window_sum += y1 - ext[p - 1 - MEAN_WINDOW]
            value = const + c_mean * window_sum + c1 * y1 + c2 * y2 + c3 * y3 + tails[h]
            if fed_back:
                for m, c in fed_back:
                    value += c * ext[p - m]
            # clip to [low, high], a non-finite value to the last one (compared inline: min/max calls cost more)
            if not low <= value <= high:
                value = last if not math.isfinite(value) else (low if value < low else high)
            ext.append(value)
            y3, y2, y1 = y2, y1, value
        return np.array(ext[back:])

    def _tails(self, steps: int, from_history: list[tuple[np.ndarray, float]], first: int, c_sin: float, c_cos: float) -> list[float]:
        """Per step ahead, the sum of the terms that do not feed back: long seasonal lags and the daily phase."""
        day = self._day
        if steps <= SHORT_FORECAST and (day < 4 or self._tables_ready()):
            # plain Python: for a few steps, a dozen numpy calls on tiny arrays cost more than the arithmetic
            tails = [0.0] * steps
            for past, c in from_history:
                for h, x in enumerate(past.tolist()):
                    tails[h] += c * x
            if day >= 4:
                sin, cos, size = self._sin_list, self._cos_list, len(self._sin_list)
                for h in range(steps):
                    k = (first + h) % size
                    tails[h] += c_sin * sin[k] + c_cos * cos[k]
            return tails
        tail = np.zeros(steps)
        for past, c in from_history:
            tail += c * past
        if day >= 4:
            skewed = self._skewed_phase(steps)
            if skewed is not None:  # one row of a precomputed table (see ``_skewed_phase``)
                row = first % skewed[0].shape[0]
                tail += c_sin * skewed[0][row, :steps] + c_cos * skewed[1][row, :steps]
            else:
                sin_a, cos_a = self._phase_tables(first, steps)
                tail += c_sin * sin_a + c_cos * cos_a
        result: list[float] = tail.tolist()
        return result

    def _predict_reference(self, steps: int) -> np.ndarray:
        """The same forecast through river's ``predict_one`` (slow; kept to test ``_predict`` against)."""
        end = self.hist.end
        filled = self.hist.filled
        if end <= MEAN_WINDOW:
            return np.full(steps, filled[end - 1])
        seasons = self._seasons_before(end)
        out = np.empty(steps)

        def value_at(pos: int) -> float:
            return float(out[pos - end]) if pos >= end else float(filled[pos])

        recent = filled[max(0, end - 5000) : end]
        low, high = float(recent.min()), float(recent.max())
        span = max(high - low, 1e-9)
        for h in range(steps):
            value = self._model.predict_one(self._features(end + h, value_at, seasons))
            out[h] = min(max(value, low - span), high + span) if math.isfinite(value) else filled[end - 1]
        return out


def _linear_recursion(taps: np.ndarray, history: np.ndarray, inputs: np.ndarray) -> np.ndarray | None:
    """y[t] = inputs[t] + sum_j taps[j - 1] y[t - j] for t = 0..len(inputs)-1, with y[-j] = history[-j].

    Why lfilter: the recursive multi-step forecast is this all-pole filter as long as no value
    is clipped; scipy runs it in C (a Python loop costs about a microsecond per step ahead).
    The initial state of the transposed direct form is zi[k] = sum_i taps[k + i] y[-1 - i],
    one convolution. None if the result is not finite.
    """
    n = taps.shape[0]
    recent_first = history[::-1][:n]
    zi = np.convolve(taps[::-1], recent_first)[n - 1 :: -1][:n]
    out, _ = lfilter(np.ones(1), np.concatenate(([1.0], -taps)), inputs, zi=zi)
    result: np.ndarray = out
    return result if np.isfinite(result).all() else None


def _learn_one(model: preprocessing.TargetStandardScaler, x: dict[str, float], y: float) -> tuple[dict[str, float], float] | None:
    """``model.learn_one(x, y)`` for the pipeline of ``RiverForecaster._new_model``, on river's own state.

    Why: river's ``learn_one`` through TargetStandardScaler -> Pipeline -> StandardScaler ->
    LinearRegression dispatches a dozen generic calls per sample (plan lookups, routing, a masked
    VectorDict, scheduler objects) and cost about a third more than the arithmetic. This is that
    arithmetic, in river's order of operations, updating the same objects: river's Var and Mean
    of the target, the scaler's counts/means/vars, the SGD step (squared loss, clipped gradient,
    L2 on the weights of the features present, constant learning rates), the intercept and the
    optimizer's iteration count. The weights it leaves are river's bit for bit (tested against
    ``model.learn_one``); ``_affine`` and ``predict_one`` read them as before. Only for this
    pipeline: any other river model must go through its own ``learn_one``.

    Returns the updated pipeline's prediction map (``RiverForecaster._affine``'s result, the same numbers),
    or None where its feature set or order differs from the stored weights' (then ``_affine`` is the way).
    """
    # TargetStandardScaler: update the target's running variance (river's Var / Mean with weight 1) ...
    var = model.var
    mean = var.mean
    mean_old = mean._mean
    mean.n += 1.0
    mean._mean += (1.0 / mean.n) * (y - mean_old)
    mean_new = mean._mean
    var._S += (y - mean_old) * (y - mean_new)
    n = mean.n
    sd = (var._S / (n - var.ddof) if n > var.ddof else 0.0) ** 0.5
    target = (y - mean_new) / sd if sd else 0.0  # ... and learn the standardised target (safe_div)
    steps = model.regressor.steps  # type: ignore[attr-defined]
    scaler = steps["StandardScaler"]
    linear = steps["LinearRegression"]
    # StandardScaler (unsupervised, learns before it transforms): Welford per feature, then standardise;
    # in the same pass the current weight of each feature (absent ones start at 0) and the dot product
    # of the squared-loss gradient, summed in the features' order as LinearRegression does
    counts, means, variances = scaler.counts, scaler.means, scaler.vars
    stored = linear._weights
    names: list[str] = []
    xs: list[float] = []
    ws: list[float] = []
    ms: list[float] = []
    vs: list[float] = []
    dot = 0.0
    for i, xi in x.items():
        c = counts[i] + 1
        counts[i] = c
        old = means[i]
        m = old + (xi - old) / c
        means[i] = m
        v = variances[i] + ((xi - old) * (xi - m) - variances[i]) / c
        variances[i] = v
        z = (xi - m) / v**0.5 if v else 0.0
        w = stored.get(i, 0.0)
        dot += w * z
        names.append(i)
        xs.append(z)
        ws.append(w)
        ms.append(m)
        vs.append(v)
    # the stored weights are these features (checked before the update adds any): then the prediction map of
    # the updated pipeline is computed below, its constant summed in ``_affine``'s order (the stored one: a
    # feature that first appeared late, e.g. a weekly lag, sits last there)
    order = list(stored.to_dict())
    same_order = order == names
    reorder = not same_order and len(order) == len(names) and set(order) == set(names)
    terms: dict[str, float] = {}
    gradient = 2 * (dot + linear.intercept - target)
    clip = linear.clip_gradient
    gradient = float(-clip if gradient < -clip else clip if gradient > clip else gradient)
    optimizer = linear.optimizer
    linear.intercept -= linear.intercept_lr.get(optimizer.n_iterations) * gradient
    rate = optimizer.lr.get(optimizer.n_iterations)
    l2 = linear.l2
    weights: dict[str, float] = {}
    # the SGD step (L2 on the weights of the features present) and, in the same pass, the prediction map of
    # the updated pipeline as ``RiverForecaster._affine`` computes it (same numbers in the same order: its
    # loop runs over the stored weights, which are these): the means, variances and target spread are at
    # hand here, which saves reading them back from river's objects at every forecast
    coef: dict[str, float] = {}
    const = float(linear.intercept)
    for i, z, w, m, v in zip(names, xs, ws, ms, vs, strict=True):
        w -= rate * (gradient * z + l2 * w if l2 else gradient * z)
        weights[i] = w
        if v:  # river maps a constant feature to 0
            sd_i = v**0.5
            coef[i] = sd * w / sd_i
            if reorder:
                terms[i] = w * m / sd_i
            else:
                const -= w * m / sd_i
    stored.update(weights)
    optimizer.n_iterations += 1
    if reorder:
        const = float(linear.intercept)
        for i in order:
            if i in terms:
                const -= terms[i]
    elif not same_order:  # (a feature learned before is absent now, or a new one: ``_affine`` reads it back)
        return None
    return coef, mean_new + sd * const
