"""The calibrated reactive bound: covers at its quantile, grows with volatility, never reads a gap as zero,
picks the bound with the lower out-of-sample loss, and the explanation names the term it set."""

from __future__ import annotations

import math

import numpy as np

from careplane.decision import DecisionState, Observations, decide
from careplane.decision.calibration import pinball
from careplane.decision.models import WorkloadModels
from careplane.decision.reactive import ReactiveCalibrator
from careplane.decision.types import ForecastSummary, ReactiveSummary
from careplane.policy import ScalingPolicySpec

STEP = 60.0


def calibrator(q: float = 0.9, window: int = 2000) -> ReactiveCalibrator:
    # readings every step; the need of a reading is the one two steps later
    return ReactiveCalibrator(horizon_seconds=2 * STEP, quantile=q, step_seconds=STEP, floor=0.1, window=window)


def feed(cal: ReactiveCalibrator, values: np.ndarray, uppers: np.ndarray | None = None) -> list[ReactiveSummary | None]:
    out = []
    for k, v in enumerate(values):
        reading = None if math.isnan(v) else float(v)
        upper = None if uppers is None else float(uppers[k])
        out.append(cal.observe(k * STEP, reading, upper))
    return out


def test_the_reading_bound_covers_the_need_at_its_quantile() -> None:
    rng = np.random.default_rng(3)
    q = 0.9
    values = rng.poisson(20 * STEP, size=8000) / STEP  # 20 req/s of Poisson counts per step
    bounds = feed(calibrator(q), values)
    hits = total = 0
    for k in range(3000, len(values) - 2):
        b = bounds[k]
        assert b is not None and b.basis == "reading"
        total += 1
        hits += values[k + 2] <= b.upper
    assert abs(hits / total - q) < 0.03
    # a higher quantile asks for more
    high = feed(calibrator(0.99), values)
    assert np.mean([h.upper for h in high[3000:] if h]) > np.mean([b.upper for b in bounds[3000:] if b])


def test_the_bound_grows_with_the_workloads_volatility() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    calm = 50 + rng.normal(0, 1, n)
    spiky = 50 * rng.lognormal(0, 0.6, n) / math.exp(0.18)  # the same mean, far burstier
    calm_bound = feed(calibrator(), calm)[-1]
    spiky_bound = feed(calibrator(), spiky)[-1]
    assert calm_bound is not None and spiky_bound is not None
    assert spiky_bound.ratio > 1.5 * calm_bound.ratio
    assert calm_bound.ratio < 1.2  # a smooth series needs little headroom (the HPA's 0.7 would ask 1.43x)


def test_a_gap_is_never_read_as_zero() -> None:
    cal = calibrator(window=500)
    feed(cal, np.full(300, 30.0))
    learned = len(cal.excess)
    assert cal.observe(300 * STEP, None, None) is None  # a gap gives no bound
    assert cal.observe(301 * STEP, math.nan, None) is None
    # readings waiting for the gaps were dropped unscored: no excess of -30 req/s was learned
    assert len(cal.excess) == learned
    assert min(cal.excess._sorted) > -1.0
    after = cal.observe(302 * STEP, 30.0, None)
    assert after is not None and after.upper >= 30.0


def test_the_bound_with_the_lower_pinball_loss_is_used() -> None:
    rng = np.random.default_rng(11)
    n = 3000
    # a smooth daily-like cycle: a forecast that knows it beats the lagging reading
    t = np.arange(n)
    cycle = 100 + 80 * np.sin(2 * np.pi * t / 200)
    values = cycle + rng.normal(0, 1, n)
    exact = np.roll(cycle, -2) + 2.0  # the forecast's bound two steps ahead
    chosen = feed(calibrator(), values, exact)
    assert chosen[-1] is not None and chosen[-1].basis == "forecast"
    # white noise around a level: a forecast bound that is always far too high loses to the reading
    noise = 100 + rng.normal(0, 2, n)
    chosen = feed(calibrator(), noise, np.full(n, 400.0))
    assert chosen[-1] is not None and chosen[-1].basis == "reading"
    assert pinball(10.0, 12.0, 0.9) < pinball(10.0, 8.0, 0.9)  # missing costs more than spare at q = 0.9


def policy(**extra: object) -> ScalingPolicySpec:
    doc: dict[str, object] = {
        "targetRef": {"name": "w"},
        "replicas": {"min": 1, "max": 100, "maxScaleUpStep": 100},
        "demand": {"query": "q", "perReplicaCapacity": 10.0, "targetUtilization": 0.5},
        **extra,
    }
    return ScalingPolicySpec.model_validate(doc)


def test_the_explanation_names_the_calibrated_term() -> None:
    forecast = ForecastSummary(mean=100.0, upper=300.0, lower=50.0, horizon_seconds=0, model="m")
    base = Observations(demand=100.0, current_replicas=10, ready_replicas=10, forecast=forecast)
    state = DecisionState.initial()
    # the reading bound won: it sets the count as "reactive" and the forecast's bound is not added
    obs = Observations(**{**base.__dict__, "reactive": ReactiveSummary(150.0, "reading", 1.5, 500)})
    actions, _, why = decide(policy(), obs, state, 0.0)
    assert actions.replicas == 15 and why.reason == "reactive" and "forecast" not in why.terms
    assert "reactive bound" in why.message and "rising" not in why.message
    # a rising reading says how much of the bound its extrapolation added
    obs = Observations(**{**base.__dict__, "reactive": ReactiveSummary(150.0, "reading", 1.5, 500, rise=20.0)})
    assert "the reading rising by 20 req/s extrapolated" in decide(policy(), obs, state, 0.0)[2].message
    # the forecast's own bound won: the predictive design, unchanged
    obs = Observations(**{**base.__dict__, "reactive": ReactiveSummary(300.0, "forecast", 3.0, 500)})
    actions, _, why = decide(policy(), obs, state, 0.0)
    assert actions.replicas == 30 and why.reason == "forecast"
    # critical workloads keep the forecast's bound beside the reading's (a predicted rise is not dropped) ...
    obs = Observations(**{**base.__dict__, "reactive": ReactiveSummary(150.0, "reading", 1.5, 500)})
    actions, _, why = decide(policy(criticality="critical"), obs, state, 0.0)
    assert actions.replicas == 30 and why.reason == "forecast" and "forecast" in why.terms
    assert "kept too (critical)" in why.message
    # ... and the targetUtilization headroom under any bound
    low = ForecastSummary(mean=100.0, upper=110.0, lower=50.0, horizon_seconds=0, model="m")
    obs = Observations(**{**base.__dict__, "forecast": low, "reactive": ReactiveSummary(150.0, "reading", 1.5, 500)})
    actions, _, why = decide(policy(criticality="critical"), obs, state, 0.0)
    assert actions.replicas == 20 and why.reason == "reactive"


def test_workload_models_learn_every_reading_once() -> None:
    spec = policy(intervalSeconds=15, forecast={"enabled": False}, anomaly={"enabled": False})
    models = WorkloadModels(spec, 60.0)
    assert models.reactive.horizon == spec.demand.podStartupSeconds + 15
    rng = np.random.default_rng(2)
    out = None
    for k in range(400):
        reading = float(rng.poisson(600) / 60)
        out = models.observe(k * 15.0, Observations(demand=reading, current_replicas=1, ready_replicas=1))
        again = models.track(k * 15.0, reading * 10)  # the same time again: learns nothing, same answer
        assert again == out.reactive
    assert out is not None and out.reactive is not None and out.reactive.basis == "reading"
    waiting = round(models.reactive.horizon / 15)  # readings whose need is still ahead
    assert len(models.reactive.excess) == 400 - waiting  # every other one resolved once


def test_an_operator_restart_rebuilds_the_calibrated_bound_from_history() -> None:
    spec = policy(intervalSeconds=15, forecast={"enabled": False}, anomaly={"enabled": False})
    rng = np.random.default_rng(4)
    times = np.arange(600) * 15.0
    values = rng.poisson(600, size=600) / 60.0
    values[300:310] = np.nan  # a gap in the history is skipped, not learned as zero
    rebuilt = WorkloadModels(spec, 15.0)
    rebuilt.rebuild(times, values)
    out = rebuilt.observe(600 * 15.0, Observations(demand=10.0, current_replicas=1, ready_replicas=1))
    assert out.reactive is not None and out.reactive.basis == "reading"
    assert out.reactive.upper > 10.0  # Poisson noise needs headroom above the reading
    assert min(rebuilt.reactive.excess._sorted) > -10.0  # no need read as 0 req/s


def test_until_calibrated_the_reading_bound_is_the_policys_headroom() -> None:
    prior = 1 / 0.7
    cal = ReactiveCalibrator(horizon_seconds=2 * STEP, quantile=0.9, step_seconds=STEP, floor=0.1, window=2000,
                             min_count=100, prior_ratio=prior)
    bare = calibrator()
    rng = np.random.default_rng(8)
    values = 50 + rng.normal(0, 0.5, 400)  # a smooth series: once calibrated, far less headroom than 1/0.7
    early = feed(cal, values[:50])
    # the HPA's rule on the reading, extrapolated by its rise since the last one (horizon >= one step)
    rises = np.maximum(0.0, np.diff(values[:50], prepend=values[0]))
    assert all(b is not None and b.basis == "reading" and math.isclose(b.upper, (v + r) * prior)
               for b, v, r in zip(early, values[:50], rises, strict=True))
    assert all(b is None for b in feed(bare, values[:50]))  # without a prior nothing is known yet
    assert all(len(loss) == 0 for loss in cal.loss.values())  # the prior is not a calibrated bound: never scored
    late = feed(cal, values[50:])[-1]
    assert late is not None and late.basis == "reading" and late.ratio < 1.1  # the data replaced the prior
    assert len(cal.loss["reading"]) > 0


def test_a_rising_reading_is_extrapolated_by_its_slope_over_at_most_one_step() -> None:
    cal = ReactiveCalibrator(horizon_seconds=2 * STEP, quantile=0.9, step_seconds=STEP, floor=0.1, window=2000,
                             min_count=100, prior_ratio=1.0)
    first = cal.observe(0.0, 100.0)
    assert first is not None and first.rise == 0.0 and first.upper == 100.0  # no slope yet
    half = cal.observe(STEP / 2, 115.0)  # +15 in half a step: heading for +30 over a step
    assert half is not None and math.isclose(half.rise, 30.0) and math.isclose(half.upper, 145.0)
    falling = cal.observe(STEP, 90.0)
    assert falling is not None and falling.rise == 0.0  # a fall is the hold's business, not extrapolated
    after_gap = cal.observe(4 * STEP, 150.0)  # the previous reading is three steps old: no slope from it
    assert after_gap is not None and after_gap.rise == 0.0
    short = ReactiveCalibrator(horizon_seconds=STEP / 4, quantile=0.9, step_seconds=STEP, floor=0.1, window=2000,
                               min_count=100, prior_ratio=1.0)
    short.observe(0.0, 100.0)
    capped = short.observe(STEP / 4, 110.0)  # extrapolated over the horizon when that is under a step
    assert capped is not None and math.isclose(capped.rise, 10.0)
    # the reading's own window bounds the extrapolation: a rate over [30s] has shown a jump after 30 s ...
    windowed = ReactiveCalibrator(horizon_seconds=2 * STEP, quantile=0.9, step_seconds=STEP, floor=0.1,
                                  window=2000, min_count=100, prior_ratio=1.0, reading_window_seconds=STEP / 2)
    windowed.observe(0.0, 100.0)
    half_window = windowed.observe(STEP / 2, 115.0)
    assert half_window is not None and math.isclose(half_window.rise, 15.0)
    # ... and a gauge (no window) shows it at once: nothing to extrapolate
    gauge = ReactiveCalibrator(horizon_seconds=2 * STEP, quantile=0.9, step_seconds=STEP, floor=0.1, window=2000,
                               min_count=100, prior_ratio=1.0, reading_window_seconds=0.0)
    gauge.observe(0.0, 100.0)
    jump = gauge.observe(STEP / 2, 250.0)
    assert jump is not None and jump.rise == 0.0 and jump.upper == 250.0


def test_until_the_losses_speak_the_higher_bound_is_used() -> None:
    cal = ReactiveCalibrator(horizon_seconds=2 * STEP, quantile=0.9, step_seconds=STEP, floor=0.1, window=2000,
                             min_count=100, prior_ratio=1 / 0.7)
    # a forecast bound above the prior: the forecast's, below it: the prior's
    high = cal.observe(0.0, 100.0, 200.0)
    assert high is not None and high.basis == "forecast" and high.upper == 200.0
    low = cal.observe(STEP, 100.0, 110.0)
    assert low is not None and low.basis == "reading" and math.isclose(low.upper, 100.0 / 0.7)
    # once both bounds were scored min_count times, the lower loss decides, not the higher bound
    rng = np.random.default_rng(13)
    noise = 100 + rng.normal(0, 2, 600)
    chosen = feed(cal, noise, np.full(600, 400.0))
    assert chosen[-1] is not None and chosen[-1].basis == "reading" and chosen[-1].upper < 150.0


def test_workload_models_give_the_calibrator_the_policys_headroom() -> None:
    spec = policy(forecast={"enabled": False}, anomaly={"enabled": False})
    models = WorkloadModels(spec, 60.0)
    assert models.reactive.prior_ratio is not None
    assert math.isclose(models.reactive.prior_ratio, 1 / spec.demand.targetUtilization)
    out = models.observe(0.0, Observations(demand=40.0, current_replicas=4, ready_replicas=4))
    assert out.reactive is not None and math.isclose(out.reactive.upper, 40.0 / spec.demand.targetUtilization)
