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

from careplane.forecasting.online import OnlineForecaster

FIT_ROWS = 20000
RECENT = 3
MEAN_WINDOW = 16
PHASE_TABLE_MAX = 10080
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
        self._range = np.arange(0)

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
        x = {name: get(pos - j) for j, name in LAG_NAMES}  # type: ignore[operator]
        if history is not None:  # one slice instead of 16 calls, summed in the same (newest first) order
            x["mean"] = sum(reversed(history[pos - MEAN_WINDOW : pos].tolist())) / MEAN_WINDOW
        else:
            x["mean"] = sum(get(pos - j) for j in range(1, MEAN_WINDOW + 1)) / MEAN_WINDOW  # type: ignore[operator]
        for m in seasons:
            x[_season_name(m)] = get(pos - m)  # type: ignore[operator]
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
                self._model.learn_one(self._features(pos, filled.item, seasons, filled), float(raw[pos]))

    def _update(self, y: float) -> None:
        pos = self.hist.end - 1
        if math.isnan(y) or pos < MEAN_WINDOW:
            return
        seasons = [m for m in self._seasons() if pos >= m]
        self._model.learn_one(self._features(pos, self.hist.filled.item, seasons, self.hist.filled), y)

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

    def _phase_tables(self, first: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """sin and cos of the daily phase of slots first..first+steps-1 (as in ``_features``); from
        a table of one day where a day is a whole number of slots (at most PHASE_TABLE_MAX)."""
        day = self._day
        if self._sin_table is None and day.is_integer() and day <= PHASE_TABLE_MAX:
            phase = 2 * math.pi * np.arange(int(day)) / day
            self._sin_table, self._cos_table = np.sin(phase), np.cos(phase)
        if self._sin_table is not None and self._cos_table is not None:
            slots = (first + self._steps_range(steps)) % self._sin_table.shape[0]
            return self._sin_table[slots], self._cos_table[slots]
        phase = 2 * math.pi * ((first + self._steps_range(steps)) % day) / day
        return np.sin(phase), np.cos(phase)

    def _steps_range(self, steps: int) -> np.ndarray:
        if self._range.shape[0] != steps:
            self._range = np.arange(steps)
        return self._range

    def _predict(self, steps: int) -> np.ndarray:
        end = self.hist.end
        filled = self.hist.filled
        if end <= MEAN_WINDOW:
            return np.full(steps, filled[end - 1])
        seasons = [m for m in self._seasons() if end - m >= 0]
        coef, const = self._affine()
        c1, c2, c3 = (coef.get(name, 0.0) for _, name in LAG_NAMES)  # RECENT == 3
        c_mean = coef.get("mean", 0.0) / MEAN_WINDOW
        c_season = [(m, coef.get(_season_name(m), 0.0)) for m in seasons]
        c_sin, c_cos = coef.get("day_sin", 0.0), coef.get("day_cos", 0.0)
        day = self._day
        first = self.hist.offset + end
        # seasons longer than the forecast only ever read history: one slice each (a weekly season on
        # minute data would otherwise convert 10,080 values per call); shorter ones read the forecast too
        from_history = [(filled[end - m : end - m + steps], c) for m, c in c_season if m >= steps]
        fed_back = [(m, c) for m, c in c_season if m < steps]
        back = max([RECENT, MEAN_WINDOW, *(m for m, _ in fed_back)])
        # plain floats, not numpy: forecasts are short, and per-call numpy overhead would dominate
        ext: list[float] = filled[end - back : end].tolist()  # history, then the forecasts fed back
        # SGD can still wander on a regime change: keep forecasts within the range seen, widened by its span
        recent = filled[max(0, end - 5000) : end]
        low, high = float(recent.min()), float(recent.max())
        span = max(high - low, 1e-9)
        low, high = low - span, high + span
        last = float(filled[end - 1])
        window_sum = sum(ext[back - MEAN_WINDOW : back])
        # the terms that do not depend on the recursion (long seasonal lags, daily phase), summed per
        # step ahead before the loop: the loop is where a forecast spends its time. (The sum is
        # associated differently from predict_one's: equal to ~1e-15, not bit for bit.)
        tail = np.zeros(steps)
        for past, c in from_history:
            tail += c * past
        if day >= 4:
            sin, cos = self._phase_tables(first, steps)
            tail += c_sin * sin + c_cos * cos
        tails: list[float] = tail.tolist()
        for h in range(steps):
            p = back + h
            if h:
                window_sum += ext[p - 1] - ext[p - 1 - MEAN_WINDOW]
            value = const + c_mean * window_sum + c1 * ext[p - 1] + c2 * ext[p - 2] + c3 * ext[p - 3] + tails[h]
            if fed_back:
                for m, c in fed_back:
                    value += c * ext[p - m]
            # clip to [low, high], a non-finite value to the last one (compared inline: min/max calls cost more)
            if not low <= value <= high:
                value = last if not math.isfinite(value) else (low if value < low else high)
            ext.append(value)
        return np.array(ext[back:])

    def _predict_reference(self, steps: int) -> np.ndarray:
        """The same forecast through river's ``predict_one`` (slow; kept to test ``_predict`` against)."""
        end = self.hist.end
        filled = self.hist.filled
        if end <= MEAN_WINDOW:
            return np.full(steps, filled[end - 1])
        seasons = [m for m in self._seasons() if end - m >= 0]
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
