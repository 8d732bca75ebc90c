"""The per-sample speed-ups give the forecasts of the straightforward code (to rounding), and dormancy changes no output."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import pytest

from careplane.forecasting import dormancy, intervals, lag_regression, river_model
from careplane.forecasting.auto import AutoForecaster
from careplane.forecasting.features import fourier_terms
from careplane.forecasting.fourier import FourierForecaster
from careplane.forecasting.holt_winters import HoltWinters
from careplane.forecasting.intervals import ResidualCalibrator
from careplane.forecasting.lag_regression import LagRegression
from careplane.forecasting.online import ESTIMATE_EVERY, OnlineForecaster
from careplane.forecasting.river_model import RiverForecaster, _linear_recursion
from careplane.forecasting.sarimax import HarmonicSarimax
from careplane.forecasting.seasonal import Naive

from .conftest import HOUR, seasonal_counts


def _plain_ridge_coefficients(model: LagRegression, h: int) -> tuple[np.ndarray, float]:
    """Horizon ``h``'s coefficients by the textbook recipe: build the design, standardise, centre, solve."""
    filled, raw = model.hist.filled_view(), model.hist.raw_view()
    n = filled.shape[0]
    offsets = [model._offsets(k) for k in range(1, model._trained + 1)]
    start = max([63, 2] + [int(o.max(initial=0)) - k for k, o in enumerate(offsets, 1)])
    origins = np.arange(max(start, n - 1 - 12000), max(start, n - 1))[: max(0, n - 1 - start) - (h - 1)]
    origins = origins[~np.isnan(raw[origins + h])]
    level = filled[origins]
    blocks = [model._recent_matrix(filled, origins) - level[:, None]]
    blocks.append(filled[(origins + h)[:, None] - offsets[h - 1][None, :]] - level[:, None])
    times = np.asarray(model.slot_time(model.hist.offset + origins + h))
    blocks.append(fourier_terms(times, model._cal_periods, model._cal_harmonics))
    design = np.hstack(blocks)
    y = raw[origins + h] - level
    mu, sd = design.mean(axis=0), design.std(axis=0)
    sd[sd < 1e-12] = 1.0
    scale_w = 1.0 / np.sqrt(model._weights())
    z = (design - mu) / sd * scale_w
    zc = z - z.mean(axis=0)
    assert model.alpha is not None
    beta = np.linalg.solve(zc.T @ zc + model.alpha * np.eye(z.shape[1]), zc.T @ (y - y.mean())) * scale_w / sd
    return beta, float(y.mean() - beta @ mu)


def _fitted_lag_regression(max_horizon: int) -> LagRegression:
    times, values = seasonal_counts(24 * 7 * 5, seed=5)
    values[100:130] = np.nan
    values[400] = np.nan
    model = LagRegression(step_seconds=HOUR, max_horizon=max_horizon, calibrate=False)
    model.fit(times, values)
    return model


def test_lag_regression_training_equals_the_plain_ridge() -> None:
    model = _fitted_lag_regression(4)
    assert model._cal_periods, "the history should be long enough for calendar terms"
    k_rec = model._coef_recent.shape[1]
    for h in range(1, 5):
        beta, b0 = _plain_ridge_coefficients(model, h)
        k_season = model._coef_season.shape[1]
        recent = beta[:k_rec].copy()
        recent[0] += 1.0 - beta[: k_rec + k_season].sum()
        assert np.allclose(model._coef_recent[h - 1], recent, rtol=1e-7, atol=1e-9)
        assert np.allclose(model._coef_season[h - 1], beta[k_rec : k_rec + k_season], rtol=1e-7, atol=1e-9)
        assert np.allclose(model._coef_cal[h - 1], beta[k_rec + k_season :], rtol=1e-7, atol=1e-9)
        assert math.isclose(model._intercept[h - 1], b0, rel_tol=1e-7, abs_tol=1e-9)


def test_a_longer_forecast_adds_horizons_and_keeps_the_trained_ones() -> None:
    model = _fitted_lag_regression(3)
    for i, y in enumerate([40.0, 42.0, 45.0, 41.0]):
        model.learn_one(float((model.hist.next_index + i) * HOUR), y)
    before = model._coef_recent.copy()
    model.forecast(8)
    assert model._trained >= 8
    assert np.array_equal(model._coef_recent[:3], before)  # not retrained before the next scheduled refit
    fresh = copy.deepcopy(model)
    fresh._trained = 0
    fresh._coef_recent = fresh._coef_season = fresh._coef_cal = np.zeros((0, 0))
    fresh._intercept = np.zeros(0)
    fresh._train_upto(model._trained)
    assert np.allclose(fresh._coef_recent[3:], model._coef_recent[3:])  # the added horizons: trained on the data of now


def _sparse_hourly(seed: int, keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Hourly counts observed at a random ``keep`` fraction of the hours (rows with gaps in time between them)."""
    times, values = seasonal_counts(24 * 7 * 5, seed=seed)
    rows = np.random.default_rng(seed).random(times.size) < keep
    return times[rows], values[rows]


def test_lag_regression_trains_at_fit_the_horizons_a_gappy_series_asks_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a series with gaps, a forecast ``max_horizon`` rows ahead spans more slots: the fit trains the SPAN_QUANTILE
    quantile of those spans at once, the same models the on-demand growth trains on that history, and the
    forecasts asked for afterwards (within it) train nothing more."""
    times, values = _sparse_hourly(21, 0.3)
    model = LagRegression(step_seconds=HOUR, max_horizon=3, calibrate=False)
    model.fit(times, values)
    slots = np.rint((times - times[0]) / HOUR).astype(np.int64)
    expected = math.ceil(float(np.quantile(slots[3:] - slots[:-3], lag_regression.SPAN_QUANTILE)))
    assert 3 < expected < lag_regression.MAX_HORIZON_MODELS  # (the test series is gappy enough to matter)
    assert model._trained == expected
    # the same coefficients as a fit of max_horizon grown on demand on the same history
    monkeypatch.setattr(LagRegression, "_horizons_asked", lambda self: self.max_horizon)
    grown = LagRegression(step_seconds=HOUR, max_horizon=3, calibrate=False)
    grown.fit(times, values)
    assert grown._trained == 3
    grown._train_upto(expected)
    for name in ("_coef_recent", "_coef_season", "_coef_cal", "_intercept"):
        np.testing.assert_allclose(getattr(model, name), getattr(grown, name), rtol=1e-7, atol=1e-9)
    monkeypatch.undo()
    trainings = []
    original = LagRegression._train_upto
    monkeypatch.setattr(LagRegression, "_train_upto", lambda self, h, **kw: (trainings.append(h), original(self, h, **kw))[1])
    for i, y in enumerate([40.0, 42.0, 45.0]):
        model.learn_one(float(times[-1] + (i + 1) * HOUR), y)
        model.forecast(expected)
    assert trainings == []
    model.forecast(expected + 1)  # (a rarer, longer gap: grown on demand as before)
    assert trainings == [2 * expected]


def test_lag_regression_on_a_gapless_series_trains_max_horizon() -> None:
    times, values = seasonal_counts(24 * 7 * 5, seed=22)
    model = LagRegression(step_seconds=HOUR, max_horizon=3, calibrate=False)
    model.fit(times, values)
    assert model._trained == 3


def test_recent_range_follows_the_window_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The incrementally kept (min, max) equals numpy's on the window, also when an extreme leaves it."""
    monkeypatch.setattr(river_model, "RANGE_WINDOW", 50)
    rng = np.random.default_rng(2)
    model = RiverForecaster(step_seconds=60, max_horizon=3, calibrate=False)
    model.fit(np.arange(40) * 60.0, rng.normal(10, 1, 40))
    for i in range(40, 400):
        y = 30.0 if i in (60, 200) else (-5.0 if i == 130 else (math.nan if i % 37 == 0 else rng.normal(10, 1)))
        model.learn_one(i * 60.0, y)
        if i % 3:  # sometimes several slots between two reads
            end = model.hist.end
            window = model.hist.filled[max(0, end - 50) : end]
            assert model._recent_range() == (float(window.min()), float(window.max()))


def test_recursion_in_lfilter_equals_the_loop() -> None:
    rng = np.random.default_rng(0)
    for n in (3, 16, 40):
        taps, history, inputs = rng.normal(0, 0.05, n), rng.normal(size=n + 5), rng.normal(size=30)
        values = list(history)
        for x in inputs:
            values.append(x + sum(taps[j - 1] * values[-j] for j in range(1, n + 1)))
        fast = _linear_recursion(taps, history, inputs)
        assert fast is not None and np.allclose(fast, values[len(history) :], rtol=1e-12, atol=1e-12)


def test_candidates_read_autos_history_and_forecast_like_standalone_models() -> None:
    times, values = seasonal_counts(24 * 7 * 3, seed=6)
    head = 24 * 14
    auto = AutoForecaster(candidates=[LagRegression, HoltWinters], step_seconds=HOUR, max_horizon=4)
    alone = [LagRegression(step_seconds=HOUR, max_horizon=4, calibrate=False), HoltWinters(step_seconds=HOUR, max_horizon=4, calibrate=False)]
    auto.fit(times[:head], values[:head])
    for model in alone:
        model.fit(times[:head], values[:head])
    for i in range(head, len(values)):
        if 400 <= i < 410:
            continue  # a gap, online
        auto.learn_one(float(times[i]), float(values[i]))
        for model in alone:
            model.learn_one(float(times[i]), float(values[i]))
        auto.forecast(4)
    for cand, model in zip(auto.candidates, alone, strict=True):
        assert cand.hist is auto.hist
        assert np.allclose(cand._predict(4), model._predict(4), rtol=1e-12)


class _Wild(OnlineForecaster):
    """A model far off in both directions (no bias correction rescues it)."""

    name = "wild"
    calls = 0

    def _predict(self, steps: int) -> np.ndarray:
        _Wild.calls += 1
        sign = 1.0 if self.hist.next_index % 2 else -1.0
        return self.hist.filled[self.hist.end - 1] + sign * 50.0 + np.zeros(steps)


def _run_auto(values: np.ndarray, asleep_log: list[bool]) -> np.ndarray:
    model = AutoForecaster(candidates=[Naive, _Wild], step_seconds=HOUR, max_horizon=2)
    model.fit(np.arange(50) * HOUR, values[:50])
    out = []
    for i in range(50, len(values)):
        model.learn_one(i * HOUR, float(values[i]))
        calls = _Wild.calls
        out.append(model.forecast(2).mean)
        asleep_log.append(bool(model._dormancy.asleep[1]))
        if asleep_log[-1] and model._since_select:  # (a selection may have just woken it)
            assert _Wild.calls == calls  # a sleeping candidate is not asked to forecast
    return np.array(out)


def test_a_clearly_worse_candidate_sleeps_wakes_and_changes_no_forecast(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    values = 100.0 + np.cumsum(rng.normal(0, 1.0, 2500))
    log: list[bool] = []
    with_dormancy = _run_auto(values, log)
    assert any(log) and not all(log[log.index(True) :])  # fell asleep, and woke up later to be scored again
    monkeypatch.setattr(dormancy.Dormancy, "after_selection", lambda self, *args: False)
    always_awake = _run_auto(values, [])
    assert np.array_equal(with_dormancy, always_awake)  # it had no weight: sleeping only saves its forecasts


def test_calibrator_fast_path_stores_what_the_masked_path_does() -> None:
    """Forecasts of 3 steps in a calibrator sized for 8: the horizons never forecast do not force the masked copy."""
    cal = ResidualCalibrator(window=50, refresh_every=10, min_count=5)
    cal.set_level(100.0, 1.0)
    expected = np.full(8, np.nan)
    for i in range(20):
        mean = np.array([100.0, 101.0, 102.0]) + i
        cal.record(i, mean)
        expected = cal.pending.predictions_for(i + 1)
        cal.observe(i + 1, 100.0 + i + 0.5)
    column = cal.res[:, (cal.ptr - 1) % cal.window]
    assert cal.pending.width == 3
    assert np.allclose(column[:3], (119.5 - expected[:3]) / cal.scale(expected[:3]))
    assert np.all(np.isnan(column[3:]))


def test_calibrator_scores_exactly_the_forecasts_made_for_each_slot() -> None:
    """The pending table (rows cleared as their slot is learned, no table of target slots) scores what a plain
    record of every forecast by (target slot, horizon) says was forecast for each slot: forecasts of varying
    length, several per origin, origins that forecast nothing, gaps, and re-allocations to longer horizons."""
    rng = np.random.default_rng(11)
    cal = ResidualCalibrator(window=300, refresh_every=40, min_count=5)
    cal.set_level(100.0, 1.0)
    filed: dict[tuple[int, int], float] = {}  # (target slot, horizon) -> the last forecast filed for it
    tracked = cal.pending.max_horizon  # a longer forecast re-allocates the table: what was filed is forgotten
    checked = gaps = 0
    for index in range(1, 400):
        origin = index - 1
        for _ in range(int(rng.choice([0, 1, 1, 2]))):
            k = int(rng.integers(1, 13)) if rng.random() < 0.97 else int(rng.integers(13, 30))
            mean = 100.0 + rng.normal(0.0, 5.0, k)
            if k > tracked:
                tracked = k
                filed.clear()
            cal.record(origin, mean)
            filed.update({(origin + 1 + j, j + 1): float(mean[j]) for j in range(k)})
        y = math.nan if rng.random() < 0.2 else float(100.0 + rng.normal())
        cal.observe(index, y)
        if math.isnan(y):
            gaps += 1
            continue
        forecast = np.array([filed.get((index, h), math.nan) for h in range(1, cal.res.shape[0] + 1)])
        forecast[cal.pending.width :] = math.nan  # (horizons never forecast since the allocation are not scored)
        expected = (y - forecast) / cal.scale(forecast)
        assert np.array_equal(cal.res[:, (cal.ptr - 1) % cal.window], expected, equal_nan=True), index
        checked += 1
    assert checked > 250 and gaps > 50 and tracked > 12


def test_auto_scores_exactly_the_forecasts_made_for_each_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto's table of the candidates' forecasts (rows cleared as their slot is learned) gives every slot the
    errors of the forecasts made for it and NaN elsewhere: checked against a plain record by (target, horizon)
    on a gappy series asked for forecasts of varying length (which also grows the table)."""
    times, values = seasonal_counts(24 * 7 * 5, seed=5)
    model = AutoForecaster(step_seconds=HOUR, max_horizon=3)
    model.fit(times[:500], values[:500])
    filed: dict[tuple[int, int], np.ndarray] = {}
    errors: list[tuple[int, float, np.ndarray]] = []
    original_score = AutoForecaster._score

    def spying_score(self: AutoForecaster, index: int, y: float) -> None:
        if self._batch_n == self._batch.shape[0]:
            self._flush()
        slot = self._batch_n
        original_score(self, index, y)
        errors.append((index, y, self._batch[slot].copy()))

    monkeypatch.setattr(AutoForecaster, "_score", spying_score)
    rng = np.random.default_rng(2)
    size = model._h
    for i in range(500, 800):
        if rng.random() < 0.15:
            continue  # a gap: the slot is learned as missing with the next sample
        model.learn_one(float(times[i]), float(values[i]))
        steps = int(rng.integers(1, 12))
        model.forecast(steps)
        if model._h != size:  # the table grew: what was filed before is forgotten
            size = model._h
            filed.clear()
        first = model.hist.next_index
        full = model._buf[:, : min(steps, model._h)]
        filed.update({(first + j, j + 1): full[:, j].copy() for j in range(full.shape[1])})
    checked = 0
    for index, y, diff in errors:
        if index <= 500 + 3:
            continue  # (forecast in ``fit``, before the record above starts)
        for h in range(1, diff.shape[0] + 1):
            made = filed.get((index, h))
            expected = y - made if made is not None else np.full(diff.shape[1], np.nan)
            if made is not None:
                checked += 1
            assert np.array_equal(diff[h - 1], expected, equal_nan=True), (index, h)
    assert checked > 500 and model._h > 3


def test_shorter_forecasts_do_not_force_a_new_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    times, values = seasonal_counts(24 * 7 * 3, seed=7)
    model = AutoForecaster(step_seconds=HOUR, max_horizon=6)
    model.fit(times[:400], values[:400])
    selections = 0
    original = AutoForecaster._select

    def counting(self: AutoForecaster, k: int) -> None:
        nonlocal selections
        selections += 1
        original(self, k)

    monkeypatch.setattr(AutoForecaster, "_select", counting)
    for i in range(400, 432):
        model.learn_one(float(times[i]), float(values[i]))
        model.forecast(1 + i % 6)  # steps change every call (as on a gappy series)
    assert selections <= 3  # every RESELECT = 16 steps, not at every change of steps
    assert len(model.chosen_by_horizon) == 6


@pytest.mark.parametrize("cls", [HoltWinters, HarmonicSarimax])
def test_online_refits_reestimate_statsmodels_parameters_only_every_few_refits(cls: type[OnlineForecaster]) -> None:
    times, values = seasonal_counts(24 * 7 * 10, seed=9)
    model = cls(step_seconds=HOUR, max_horizon=2, calibrate=False)
    head = 24 * 7 * 5  # (long enough that the history does not double again: that re-estimates too, for cold starts)
    model.fit(times[:head], values[:head])
    fitted_at = model._estimated_at
    assert fitted_at is not None and model.refit_every == 168
    estimates = []
    for i in range(head, len(values)):
        model.learn_one(float(times[i]), float(values[i]))
        estimates.append(model._estimated_at)
    # refits every 168 samples, estimates every ESTIMATE_EVERY of them (fit's own estimate counts)
    assert sorted(set(estimates)) == [fitted_at, fitted_at + ESTIMATE_EVERY * 168]


def _replay_auto(cls: type[AutoForecaster], times: np.ndarray, values: np.ndarray, *, start: int, max_horizon: int,
                 steps: Callable[[int], int], width: int) -> tuple[np.ndarray, AutoForecaster]:
    """Fit ``cls`` on rows before ``start``, then learn each later row and forecast ``steps(row)`` steps;
    the first ``width`` means of every forecast, and the model with its pending errors folded in."""
    model = cls(step_seconds=HOUR, max_horizon=max_horizon)
    model.fit(times[:start], values[:start])
    means = []
    for i in range(start, len(values)):
        model.learn_one(float(times[i]), float(values[i]))
        means.append(model.forecast(steps(i)).mean[:width])
    model._flush()  # (a batched model may still hold errors not yet folded in)
    return np.array(means), model


class _EveryStep(AutoForecaster):
    """auto folding each error into its memories as it arrives (the straightforward order)."""

    def _score(self, index: int, y: float) -> None:
        super()._score(index, y)
        self._flush()


def test_batched_error_memories_equal_the_step_by_step_update() -> None:
    times, values = seasonal_counts(24 * 7 * 4, seed=11)
    values[500:505] = np.nan  # gaps: some horizons unscored for a while (the masked update)
    runs = []
    for cls in (AutoForecaster, _EveryStep):
        means, model = _replay_auto(cls, times, values, start=300, max_horizon=3,
                                    steps=lambda i: 3 if i % 7 else 5, width=3)
        runs.append((means, model._sums.copy(), model.chosen))
    assert np.allclose(runs[0][0], runs[1][0], rtol=1e-10, atol=1e-10)
    assert np.allclose(runs[0][1], runs[1][1], rtol=1e-10) and runs[0][2] == runs[1][2]


def test_river_learn_one_shortcut_leaves_rivers_own_state() -> None:
    """``river_model._learn_one`` updates the pipeline exactly as river's ``learn_one`` (clipped steps and a
    feature that appears late included)."""
    maker = RiverForecaster(step_seconds=HOUR, calibrate=False)
    ours, theirs = maker._new_model(), maker._new_model()
    rng = np.random.default_rng(3)
    for k in range(2000):
        x = {"lag1": float(rng.normal(50, 9)), "lag2": float(rng.normal(50, 9)), "mean": float(rng.normal(48, 3))}
        if k >= 300:
            x["season24"] = float(rng.normal(45, 8))
        x["const"] = 1.0  # zero variance: standardised to 0
        y = x["lag1"] + float(rng.normal(0, 5)) + (500.0 if k == 1000 else 0.0)  # one spike: a clipped gradient
        theirs.learn_one(x, y)
        river_model._learn_one(ours, x, y)
    a, b = ours.regressor.steps["LinearRegression"], theirs.regressor.steps["LinearRegression"]  # type: ignore[attr-defined]
    assert a._weights.to_dict() == b._weights.to_dict()
    assert a.intercept == b.intercept and a.optimizer.n_iterations == b.optimizer.n_iterations
    assert ours.predict_one(x) == theirs.predict_one(x)


def test_river_phase_terms_from_the_skewed_table_equal_the_gathered_ones() -> None:
    model = RiverForecaster(step_seconds=HOUR, calibrate=False)
    times, values = seasonal_counts(24 * 7 * 3, seed=2)
    model.fit(times, values)
    for first in (0, 5, 23, 24 * 9 + 7):
        for steps in (12, 40, 20):  # (beyond SHORT_FORECAST) grows the table, then reads a shorter prefix
            fast = model._tails(steps, [(np.arange(40.0)[:steps], 0.3)], first, 0.7, -1.3)
            sin_a, cos_a = model._phase_tables(first, steps)
            plain = (np.zeros(steps) + 0.3 * np.arange(40.0)[:steps] + (0.7 * sin_a + -1.3 * cos_a)).tolist()
            assert fast == plain


def _reference_bounds(cal: ResidualCalibrator, q: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The calibrator's bounds by the straightforward recipe: stable-sort every horizon's residuals, loop over h."""
    used = cal.window if cal.seen >= cal.window else cal.ptr
    res = cal.res[:, :used]
    finite = np.isfinite(res)
    values = np.where(finite, res, np.inf)
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    age = (cal.ptr - 1 - np.arange(used)) % cal.window
    assert cal.halflife is not None
    cum = np.cumsum(np.take_along_axis(np.where(finite, 0.5 ** (age / cal.halflife), 0.0), order, axis=1), axis=1)
    cum = np.divide(cum, cum[:, -1:], out=np.zeros_like(cum), where=cum[:, -1:] > 0)
    n = finite.sum(axis=1)
    usable = np.flatnonzero(n >= cal.min_count)
    low, high = np.full(steps, np.nan), np.full(steps, np.nan)
    for h in range(1, steps + 1):
        pos = max(int(np.searchsorted(usable, h - 1, side="right")) - 1, 0)
        hh = usable[pos] + 1
        level = min(max(q + cal.level_shift[hh - 1], 0.5), 1.0)
        factor = math.sqrt(h / hh) if h > hh else 1.0
        high[h - 1] = ordered[hh - 1, min(n[hh - 1] - 1, int((cum[hh - 1] <= level).sum()))] * factor
        low[h - 1] = ordered[hh - 1, min(n[hh - 1] - 1, int((cum[hh - 1] < 1 - level).sum()))] * factor
    return low, high


@pytest.mark.parametrize("window", [300, intervals.FAST_SORT_MIN + 100])
def test_calibrator_bounds_equal_the_straightforward_recipe(window: int) -> None:
    """Sorting only the horizons with enough residuals, the tie-checked fast sort (long windows), and one cached
    bound per quantile sliced for shorter requests give the bounds of the plain recipe; residuals with ties included."""
    cal = ResidualCalibrator(window=window, refresh_every=40, min_count=20)
    rng = np.random.default_rng(4)
    mixed = False  # compared while some horizons had too few residuals to be sorted
    for index in range(1, window + 400):
        steps = int(rng.choice([3, 5, 24])) if index % 79 else 40  # the long horizons get few residuals
        mean = np.round(rng.uniform(5, 50, steps))  # integer forecasts of integer data: many equal residuals
        cal.record(index - 1, mean)
        cal.observe(index, float(rng.poisson(25)))
        if index % 13 == 0 and (cal.counts >= cal.min_count).any():
            cal._refresh()  # (an extra refresh: the bounds then read the residuals the reference reads)
            mixed = mixed or bool((cal.counts < cal.min_count).any())
            for steps_asked in (40, 5, 24, 1):
                low, high = cal._quantiles(0.9, steps_asked)
                ref_low, ref_high = _reference_bounds(cal, 0.9, steps_asked)
                np.testing.assert_array_equal(low, ref_low)
                np.testing.assert_array_equal(high, ref_high)
            cal.interval(mean, 0.9)  # (sets the quantile whose bounds ACI adapts)
    assert mixed


def test_stable_argsort_shortcut_orders_ties_like_the_stable_sort() -> None:
    rng = np.random.default_rng(5)
    values = np.round(rng.normal(size=(20, 2 * intervals.FAST_SORT_MIN)), 1)  # many ties
    values[3] = rng.normal(size=values.shape[1])  # a row without ties
    values[:, 1500:] = np.inf
    order, ordered = intervals._stable_argsort(values)
    np.testing.assert_array_equal(ordered, np.sort(values, axis=1))
    expect = np.argsort(values, axis=1, kind="stable")
    finite = np.isfinite(ordered)
    np.testing.assert_array_equal(order[finite], expect[finite])  # (the order of the +inf slots is free)


@pytest.mark.parametrize("headroom", [0, lag_regression.CALENDAR_HEADROOM])
def test_lag_regression_calendar_cache_trains_the_same_coefficients(monkeypatch: pytest.MonkeyPatch, headroom: int) -> None:
    """Growing the horizons a few samples apart reuses the calendar terms of the previous call (only new slots
    are computed, or none where the headroom computed ahead covers them) and trains exactly what a model
    computing them afresh trains."""
    monkeypatch.setattr(lag_regression, "CALENDAR_HEADROOM", headroom)
    cached = _fitted_lag_regression(3)
    reused = 0
    fresh = copy.deepcopy(cached)
    times, values = seasonal_counts(24 * 7 * 4 + 30, seed=5)
    for steps, row in ((6, 24 * 7 * 4 + 2), (14, 24 * 7 * 4 + 9), (30, 24 * 7 * 4 + 20)):
        for model in (cached, fresh):
            while model.hist.next_index <= row:
                index = model.hist.next_index
                model.learn_one(float(times[index]), float(values[index]))
        before = cached._cal_cache
        assert before is not None
        fresh._cal_cache = None
        a, b = cached._predict(steps), fresh._predict(steps)
        after = cached._cal_cache
        assert after is not None
        if headroom == 0:
            assert after[0] + after[1].shape[0] > before[0] + before[1].shape[0]  # extended
        reused += after[1] is before[1]  # (served from the terms computed ahead)
        np.testing.assert_array_equal(a, b)
        for name in ("_coef_recent", "_coef_season", "_coef_cal", "_intercept"):
            np.testing.assert_array_equal(getattr(cached, name), getattr(fresh, name))
    assert cached._trained == fresh._trained >= 30
    assert reused == (0 if headroom == 0 else 3)


def test_error_memory_flush_skips_only_horizons_without_errors() -> None:
    """A batch whose errors stop at some horizon (short forecasts, many tracked horizons) folds in exactly
    what the update over every horizon does."""
    model = AutoForecaster(step_seconds=HOUR, max_horizon=12)
    rng = np.random.default_rng(8)
    model._sums[...] = rng.uniform(0.5, 2.0, model._sums.shape)
    m, h, c = 6, model._h, model._batch.shape[2]
    batch = rng.normal(size=(m, h, c))
    batch[:, 4:] = np.nan  # nothing past horizon 4 was forecast
    batch[2, 1] = np.nan  # and one slot missed a horizon
    batch[:, :, 3] = np.where(rng.random((m, h)) < 0.3, np.nan, batch[:, :, 3])
    model._bound[:] = 1.5
    plain = copy.deepcopy(model)
    initial = model._sums.copy()
    for target in (model, plain):
        target._batch[:m] = batch
        target._batch_n = m
    model._flush()
    # the straightforward update: every horizon, one known error at a time
    a = plain._decay
    sums = plain._sums
    for j in range(m):
        x = batch[j]
        known = np.isfinite(x)
        ab = np.abs(np.where(known, x, 0.0))
        for k, term in enumerate((np.ones_like(ab), np.minimum(ab, 1.5) ** 2, ab)):
            sums[k] = np.where(known, (1 - a) * sums[k] + a * term, sums[k])
    np.testing.assert_allclose(model._sums, sums, rtol=1e-13)
    assert np.array_equal(model._sums[:, 4:], initial[:, 4:])  # (left alone, not multiplied by 1 and added 0)
    assert not np.array_equal(model._sums[:, :4], initial[:, :4])


def test_lag_regression_batched_training_equals_the_per_horizon_designs() -> None:
    """Every horizon's ridge from the shared per-origin / per-target sums equals the one from its own design, also
    past a multiple of the daily season (another group of seasonal offsets) and with gaps in the targets."""
    times, values = seasonal_counts(24 * 7 * 6, seed=12)
    values[300:340] = np.nan
    values[np.random.default_rng(0).random(values.size) < 0.2] = np.nan  # scattered unknown targets
    batched = LagRegression(step_seconds=HOUR, max_horizon=2, calibrate=False)
    batched.fit(times, values)
    plain = copy.deepcopy(batched)
    batched._train_upto(40)
    plain._train_upto(40, batched=False)
    assert batched._trained == plain._trained == 40
    assert len({tuple(batched._offsets(h)[:3]) for h in range(1, 41)}) > 1  # horizons 24+ read another cycle back
    for name in ("_coef_recent", "_coef_season", "_coef_cal", "_intercept"):
        np.testing.assert_allclose(getattr(batched, name), getattr(plain, name), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(batched._cal_skew, plain._cal_skew, rtol=1e-7, atol=1e-9)  # (extended, not rebuilt)
    np.testing.assert_allclose(batched._predict(40), plain._predict(40), rtol=1e-9)


def test_sarimax_restart_filters_runs_like_the_step_by_step_recursion() -> None:
    """The innovation recursion over the residuals at a refit, run through lfilter for runs of known residuals
    (gaps and short runs step by step), leaves the state the per-residual recursion leaves."""
    times, values = seasonal_counts(24 * 7 * 5, seed=13)
    model = HarmonicSarimax(step_seconds=HOUR, max_horizon=3, calibrate=False)
    model.fit(times, values)
    model.ar, model.ma = np.array([0.55, 0.2]), np.array([-0.35])  # (whatever statsmodels estimated: fixed here)
    rng = np.random.default_rng(14)
    resid = rng.normal(0, 5, 700)
    resid[[250, 251, 400, 420, 431, 690]] = np.nan  # gaps: runs long and short
    model._restart_recursion(resid)
    fast = (list(model._r), list(model._e))
    model._r, model._e = [0.0, 0.0], [0.0]
    for value in resid[-500:]:
        model._step(float(value))
    np.testing.assert_allclose(fast[0], model._r, rtol=1e-10)
    np.testing.assert_allclose(fast[1], model._e, rtol=1e-10)


@pytest.mark.parametrize("cls", [FourierForecaster, HarmonicSarimax])
def test_curve_from_the_wrapped_table_equals_the_table_lookup(cls: type[FourierForecaster]) -> None:
    """The periodic curve of the next steps read as one slice of the wrapped table equals ``curve`` of those
    slots, across the end of the period and for forecasts longer than a period (the wrapped copy grows)."""
    times, values = seasonal_counts(24 * 7 * 3, seed=15)
    model = cls(step_seconds=HOUR, max_horizon=3, calibrate=False)
    model.fit(times, values)
    assert model._table is not None and model._table.shape[0] == 168
    for i, steps in enumerate((3, 30, 200, 5, 400)):
        model.learn_one(float((model.hist.next_index + 40 * i) * HOUR), 40.0)  # (gaps: phases all over the period)
        expected = model.curve(model._steps_index(steps))
        np.testing.assert_array_equal(model._curve_from_last(steps), expected)
        if cls is FourierForecaster:  # and the level correction's phi^h, sliced from the longest so far
            r = model.hist.filled[model.hist.end - 1] - expected[0]
            np.testing.assert_array_equal(model._predict(steps), expected[1:] + r * model._phi ** np.arange(1, steps + 1))


def test_holt_winters_sliced_season_and_damping_equal_the_gathered_ones() -> None:
    """Forecasts from the season slice (or the wrapped gather) and the damped sums sliced from the longest
    forecast so far equal the textbook formula, whatever the steps asked for."""
    times, values = seasonal_counts(24 * 7 * 3, seed=16)
    model = HoltWinters(step_seconds=HOUR, max_horizon=3, calibrate=False)
    model.fit(times, values)
    assert model.m == 24 and model.phi != 1.0
    kinds = set()
    for i, steps in enumerate((3, 30, 5, 24, 1, 60, 7, 20, 23, 12, 24, 18)):
        model.learn_one(float(model.hist.next_index * HOUR), 35.0 + i)
        hs = np.arange(1, steps + 1)
        last = model.hist.next_index - 1
        damp = model.phi * (1 - model.phi**hs) / (1 - model.phi)
        expected = model.level + damp * model.trend + model.season[(last + hs) % model.m]
        np.testing.assert_array_equal(model._predict(steps), expected)
        start = model.hist.next_index % model.m
        kinds.add("slice" if start + steps <= model.m else "wrap once" if steps <= model.m else "gather")
    assert kinds == {"slice", "wrap once", "gather"}  # every branch was compared


def test_stacked_interval_equals_the_bound_by_bound_one() -> None:
    """Both bounds from the one stacked array equal mean + quantile x scale bound by bound (then clipped at 0
    for a nonnegative series), including a forecast longer than any cached so far and a non-finite mean."""
    cal = ResidualCalibrator(window=200, refresh_every=50, min_count=10)
    cal.set_level(20.0, 1.0)
    rng = np.random.default_rng(17)
    for index in range(1, 400):
        mean = rng.uniform(0.0, 40.0, 6)
        cal.record(index - 1, mean)
        cal.observe(index, float(rng.poisson(20)))
        if index % 37 == 0:
            for steps in (3, 6, 12):
                m = rng.uniform(0.0, 40.0, steps)
                m[steps // 2] = np.inf if index % 74 == 0 else m[steps // 2]
                for nonnegative in (False, True):
                    low, high = cal._quantiles(0.9, steps)
                    s = cal.scale(m, nonnegative)
                    with np.errstate(invalid="ignore"):
                        exp_lower, exp_upper = m + low * s, m + high * s
                        lower, upper = cal.interval(m, 0.9, nonnegative=nonnegative)
                    bad = ~np.isfinite(exp_lower) | ~np.isfinite(exp_upper)
                    exp_lower, exp_upper = np.where(bad, m, exp_lower), np.where(bad, m, exp_upper)
                    if nonnegative:
                        exp_lower, exp_upper = np.maximum(exp_lower, 0.0), np.maximum(exp_upper, 0.0)
                    np.testing.assert_array_equal(lower, exp_lower)
                    np.testing.assert_array_equal(upper, exp_upper)


def test_sarimax_response_grown_ahead_gives_the_exact_length_forecast() -> None:
    """The ARMA impulse response built for more steps than asked (doubling) forecasts what one built for
    exactly the steps asked does."""
    times, values = seasonal_counts(24 * 7 * 3, seed=18)
    model = HarmonicSarimax(step_seconds=HOUR, max_horizon=3, calibrate=False)
    model.fit(times, values)
    model.ar, model.ma = np.array([0.5, 0.2]), np.array([-0.3])
    for steps in (3, 7, 13, 5, 40):
        fast = model._predict(steps)
        assert model._resp.shape[0] >= steps
        state = np.array(model._r + model._e)
        np.testing.assert_array_equal(fast, model._curve_from_last(steps)[1:] + model._response(steps) @ state)


def test_calibrator_masked_observe_stores_the_residuals_of_predictions_for() -> None:
    """Forecasts of varying length (some horizons not forecast for a slot): the stored residual column is
    (y - predictions_for(slot)) / scale, NaN where nothing was forecast, whichever path ``observe`` takes."""
    cal = ResidualCalibrator(window=80, refresh_every=25, min_count=5)
    cal.set_level(30.0, 1.0)
    rng = np.random.default_rng(19)
    paths = set()
    for index in range(1, 300):
        cal.record(index - 1, rng.uniform(5.0, 50.0, int(rng.choice([1, 2, 6, 9]))))
        y = float(rng.poisson(30))
        pred = cal.pending.predictions_for(index)
        paths.add(bool(np.isnan(pred[: cal.pending.width]).any()))
        with np.errstate(invalid="ignore"):
            expected = (y - pred) / cal.scale(pred)
        cal.observe(index, y)
        column = cal.res[:, (cal.ptr - 1) % cal.window]
        np.testing.assert_array_equal(column[: expected.shape[0]], expected)
        assert np.isnan(column[expected.shape[0] :]).all()
    assert paths == {True, False}  # both the fast and the masked path ran


def test_river_seasons_shortcut_equals_the_usable_seasons_filter() -> None:
    """The fixed list of every season (once the history is longer than the longest) is what the usable-seasons
    filter gives, at every history length on the way there."""
    times, values = seasonal_counts(24 * 7 * 2 + 40, seed=20)
    model = RiverForecaster(step_seconds=HOUR, calibrate=False)
    model.fit(times[:30], values[:30])
    for i in range(30, len(values)):
        model.learn_one(float(times[i]), float(values[i]))
        end = model.hist.end
        for pos in (end - 1, end):
            assert model._seasons_before(pos) == [m for m in model._seasons() if pos >= m]
    assert model._seasons_before(model.hist.end) == [24, 168]


@pytest.mark.parametrize("shape", [(9, 8), (9, 8, 3)])
def test_file_diagonal_writes_the_cells_fancy_indexing_writes(shape: tuple[int, ...]) -> None:
    """One origin's forecasts filed by target slot with strided slices equal the fancy-indexed assignment,
    with and without wrapping past the last row, for every length up to the table's width."""
    rng = np.random.default_rng(21)
    rows, width = shape[0], shape[1]
    for first_row in range(rows):
        for k in range(1, width + 1):
            values = rng.normal(size=(k, *shape[2:]))
            fast, plain = np.zeros(shape), np.zeros(shape)
            intervals.file_diagonal(fast, first_row, values)
            cols = np.arange(k)
            plain[(first_row + cols) % rows, cols] = values
            np.testing.assert_array_equal(fast, plain)


def test_auto_uniform_choice_row_equals_the_per_horizon_gather() -> None:
    """Where every horizon chose the same column, the forecast read as that row equals the per-horizon gather."""
    times, values = seasonal_counts(24 * 7 * 3, seed=22)
    model = AutoForecaster(step_seconds=HOUR, max_horizon=6)
    model.fit(times[:300], values[:300])
    uniform_seen = 0
    model._select(model._h)
    if model._uniform_choice < 0:  # (make the choice uniform: the blend at every horizon)
        model._choice[:] = len(model.names) - 1
        model._uniform_choice = len(model.names) - 1
        model._since_select = -10**6  # (no reselection during the test)
    for i in range(300, 420):
        model.learn_one(float(times[i]), float(values[i]))
        plain = copy.deepcopy(model)
        fast_mean = model.forecast(6).mean
        plain._uniform_choice = -1
        np.testing.assert_array_equal(fast_mean, plain.forecast(6).mean)
        uniform_seen += model._uniform_choice >= 0
    assert uniform_seen > 0


def test_one_step_interval_on_floats_equals_the_array_path() -> None:
    """The one-step interval computed on Python floats gives the array path's bounds bit for bit, for
    ordinary, zero, negative, huge and non-finite forecasts and bounds, with and without the clip at 0."""
    cal = ResidualCalibrator(window=200, refresh_every=50)
    cal.set_level(40.0, 0.3)
    rng = np.random.default_rng(4)
    for i in range(120):
        cal.record(i, np.array([40.0 + rng.normal()]))
        cal.observe(i + 1, 40.0 + 3 * rng.normal())
    means = [0.0, -0.0, 3.5, 41.2, -2.0, 1e300, math.inf, -math.inf, math.nan]
    for nonnegative in (False, True):
        for m in means:
            if nonnegative and (m < 0 or math.isnan(m)):
                continue  # (the caller guarantees mean >= 0 there)
            mean = np.array([m])
            stacked = cal._stacked_bounds(0.9, 1)
            fast = cal._one_step_interval(m, stacked, nonnegative)
            # the array path, forced: the same method on a two-step forecast, first step read
            with np.errstate(invalid="ignore"):
                low2, high2 = cal.interval(np.array([m, m]), 0.9, nonnegative=nonnegative)
                s = cal.scale(mean, nonnegative)
                bounds = stacked * s + mean
            bad = ~np.isfinite(bounds[0]) | ~np.isfinite(bounds[1])
            bounds[:, bad] = mean[bad]
            if nonnegative:
                bounds = np.maximum(bounds, 0.0)
            if fast is None:  # declined: the array path (scale's argument not a finite number >= 0)
                assert not (0.0 <= (m if nonnegative else max(m, 0.0)) + cal.c0 < math.inf) or math.isnan(m)
                continue
            np.testing.assert_array_equal(fast[0], bounds[0])
            np.testing.assert_array_equal(fast[1], bounds[1])
            assert np.signbit(fast[0][0]) == np.signbit(bounds[0][0]) and np.signbit(fast[1][0]) == np.signbit(bounds[1][0])
            np.testing.assert_array_equal(fast[0], low2[:1])
            np.testing.assert_array_equal(fast[1], high2[:1])
    # the public method takes the float path for one step and gives the same bounds
    low, high = cal.interval(np.array([41.2]), 0.9, nonnegative=True)
    low2, high2 = cal.interval(np.array([41.2, 41.2]), 0.9, nonnegative=True)
    assert low[0] == low2[0] and high[0] == high2[0]


def test_river_prediction_map_from_the_learning_step_equals_the_read_back_one() -> None:
    """The affine map ``_learn_one`` returns is ``_affine``'s, bit for bit (a feature appearing late and a
    constant feature included), and a forecast from it equals one from the map read back from river."""
    maker = RiverForecaster(step_seconds=HOUR, calibrate=False)
    model = maker._new_model()
    rng = np.random.default_rng(8)
    returned = []
    for k in range(600):
        x = {"lag1": float(rng.normal(50, 9)), "lag2": float(rng.normal(50, 9)), "mean": float(rng.normal(48, 3))}
        if k >= 200:
            x["season24"] = float(rng.normal(45, 8))
        x["const"] = 1.0
        mapped = river_model._learn_one(model, x, x["lag1"] + float(rng.normal(0, 5)))
        maker._model = model
        if mapped is not None:
            assert mapped == maker._affine()  # (dicts and constants compared exactly)
        returned.append(mapped is not None)
    # declined only where the stored features differ (the step where season24 first appears); after it the
    # stored order (season24 last) differs from the features' and the constant is summed in the stored order
    assert all(returned[1:200]) and all(returned[201:]) and not returned[200]
    times, values = seasonal_counts(24 * 7 * 3, seed=9)
    cached, plain = RiverForecaster(step_seconds=HOUR), RiverForecaster(step_seconds=HOUR)
    for m in (cached, plain):
        m.fit(times[:300], values[:300])
    for i in range(300, len(values)):
        for m in (cached, plain):
            m.learn_one(float(times[i]), float(values[i]))
        plain._affine_cache = None  # always read back
        assert cached._affine_cache is not None
        np.testing.assert_array_equal(cached.forecast(6).mean, plain.forecast(6).mean)


class _PlainScore(AutoForecaster):
    """auto's bias memories updated by the straightforward masked recipe (np.where per step)."""

    def _score(self, index: int, y: float) -> None:
        row = index % self._rows
        if self._batch_n == self._batch.shape[0]:
            self._flush()
        diff = self._batch[self._batch_n]
        np.subtract(y, self._pred[row], out=diff)  # (NaN where not forecast: see test_auto_scores_exactly_...)
        self._pred[row] = np.nan
        self._batch_n += 1
        self._since_select += 1
        n_c = len(self.candidates)
        signed = np.minimum(np.maximum(diff[:, :n_c], self._neg_bound), self._bound)
        b = self._bias_decay
        known = np.isfinite(signed)
        self._bias_acc *= np.where(known, 1 - b, 1.0)
        self._bias_acc[1] += np.where(known, b, 0.0)
        self._bias_acc[0] += np.where(known, b * signed, 0.0)


def test_score_masked_bias_update_equals_the_straightforward_one() -> None:
    """On a gappy series with forecasts of varying length (most slots forecast at a few of the tracked
    horizons: the masked path), auto's bias memories, error memories and forecasts equal those of the
    np.where recipe exactly."""
    times, values = seasonal_counts(24 * 7 * 4, seed=12)
    values[520:531] = np.nan
    values[600] = np.nan
    runs = []
    for cls in (AutoForecaster, _PlainScore):
        # forecasts of 1..9 steps: the tracked horizons grow and most slots take the masked path
        means, model = _replay_auto(cls, times, values, start=400, max_horizon=4,
                                    steps=lambda i: 1 + (i * 7) % 9, width=1)
        runs.append((means, model._bias_acc.copy(), model._sums.copy()))
    assert runs[0][1].shape[1] > 4  # the tracked horizons grew (longer forecasts were asked for)
    for fast, plain in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(fast, plain)
