"""The learned scale-down hold: a workload whose dips return keeps the declared window, one of isolated
spikes learns to let go; the hold never exceeds the declared window, and a gap is never read as zero."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from careplane.decision import DecisionState, Observations, decide
from careplane.decision.hold import HoldChooser, RollingMax
from careplane.decision.models import WorkloadModels
from careplane.decision.types import ReactiveSummary
from careplane.policy import ScaleDownHold, ScalingPolicySpec

SYNC = 15.0
STARTUP = 120.0


def chooser(declared: float = 300.0) -> HoldChooser:
    return HoldChooser(declared_seconds=declared, startup_seconds=STARTUP, interval_seconds=SYNC, window=2000)


def feed(hold: HoldChooser, readings: list[float | None]) -> list[float]:
    # the bound issued with each reading is the reading itself: what is held is what was seen
    return [hold.observe(k * SYNC, r, r).seconds for k, r in enumerate(readings)]


def isolated_spikes(n: int, seed: int = 1) -> list[float | None]:
    """10-13 req/s of noise with a one-minute spike to 100 every 30 minutes: after a spike, demand stays low."""
    noise = np.random.default_rng(seed).uniform(10, 13, n)
    return [100.0 if k % 120 < 4 else float(noise[k]) for k in range(n)]


def returning_dips(n: int) -> list[float | None]:
    """100 req/s with one-minute dips to 10 every two minutes: every dip is followed by a return."""
    return [10.0 if k % 8 < 4 else 100.0 for k in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([5.0, 15.0, 60.0, 400.0]), st.floats(0, 1000)), min_size=1, max_size=60),
       st.sampled_from([0.0, 45.0, 300.0]), st.sampled_from([1.0, -1.0]))
def test_rolling_max_is_the_extreme_of_the_window(steps: list[tuple[float, float]], seconds: float, sign: float) -> None:
    rm = RollingMax(seconds, sign=sign)
    pick = max if sign > 0 else min
    seen: list[tuple[float, float]] = []
    t = 0.0
    for dt, value in steps:
        t += dt
        seen.append((t, value))
        expected = pick(v for s, v in seen if s > t - seconds or s == t)
        assert rm.add(t, value) == expected


def test_the_declared_window_is_used_until_every_hold_was_scored() -> None:
    hold = chooser()
    assert hold.holds == (0.0, 75.0, 150.0, 300.0)
    out = feed(hold, isolated_spikes(100))  # 100 decisions: fewer than min_count scored losses per hold
    assert set(out) == {300.0}


def test_isolated_spikes_learn_to_let_go_and_returning_dips_keep_the_hold() -> None:
    hold = chooser()
    spiky = feed(hold, isolated_spikes(3000))
    # holding a spike's capacity pays for it twice; spent on headroom instead, the same cost covers the noise
    assert spiky[-1] < 300.0
    assert hold.misses[spiky[-1]].total < hold.misses[300.0].total / 2
    choice = hold.observe(3000 * SYNC, 11.0, 11.0)
    assert choice.scale > 1.2 and choice.scale == hold.scale(choice.seconds)
    declared, chosen = hold.misses[300.0].total, hold.misses[choice.seconds].total
    assert declared - chosen > 2 * math.sqrt(declared + chosen)  # significantly fewer, not by chance
    # every hold shorter than the declared one pays for its headroom with what the declared one holds
    assert all(hold.scale(h) > 1.0 for h in hold.holds if h < 300.0)
    returning = feed(chooser(), returning_dips(3000))
    # each dip returns before new replicas could be ready: a hold shorter than the dip spacing leaves
    # a dip inside every startup window, and the capacity ready is the dip's
    assert returning[-1] == 300.0


def test_a_shorter_hold_must_miss_significantly_fewer_steps() -> None:
    hold = chooser()
    for h, m in ((0.0, 30), (75.0, 28), (150.0, 25), (300.0, 33)):  # 33 vs 25: within chance
        for k in range(500):
            hold.misses[h].add(1.0 if k < m else 0.0)
    assert hold._best().seconds == 300.0
    for _ in range(20):
        hold.misses[300.0].add(1.0)  # 53 vs 25: beyond two standard deviations (sqrt(78) = 8.8)
    assert hold._best().seconds == 150.0


def test_a_gap_is_never_scored_as_zero_demand() -> None:
    hold = chooser()
    feed(hold, returning_dips(400))
    counts = {h: len(m) for h, m in hold.misses.items()}
    for k in range(400, 440):  # ten minutes of missing readings
        assert hold.observe(k * SYNC, None, None) == hold.observe(k * SYNC, None, None)
        hold.observe(k * SYNC + 1, math.nan, None)
    # the bounds waiting for those readings resolved unscored; zero demand would have scored them
    assert {h: len(m) for h, m in hold.misses.items()} == counts


def test_a_repeated_time_learns_nothing() -> None:
    hold = chooser()
    feed(hold, isolated_spikes(300))
    before = {h: (len(m), m.total, hold.cost[h].total) for h, m in hold.misses.items()}
    hold.observe(299 * SYNC, 500.0, 500.0)
    assert {h: (len(m), m.total, hold.cost[h].total) for h, m in hold.misses.items()} == before


def policy(stabilisation: int = 300) -> ScalingPolicySpec:
    return ScalingPolicySpec.model_validate({
        "targetRef": {"name": "w"},
        "intervalSeconds": 15,
        "replicas": {"min": 1, "max": 50, "maxScaleUpStep": 50, "maxScaleDownStep": 50,
                     "scaleDownStabilizationSeconds": stabilisation},
        "demand": {"query": "q", "perReplicaCapacity": 10.0, "targetUtilization": 0.9, "podStartupSeconds": 120},
    })


def bound(upper: float, hold: float | None) -> ReactiveSummary:
    return ReactiveSummary(upper=upper, basis="reading", ratio=1.0, samples=500, hold_seconds=hold)


def step_down(hold: float | None, stabilisation: int = 300) -> list[int | None]:
    """Replicas after a spike to 7 (short of panic) and a minute at 2 replicas' worth, every 15 s."""
    p = policy(stabilisation)
    current = 7
    _, state, _ = decide(p, Observations(70.0, current, current, reactive=bound(70.0, hold)), DecisionState(), 0.0)
    out = []
    for k in range(1, 5):
        actions, state, _ = decide(p, Observations(20.0, current, current, reactive=bound(20.0, hold)), state, k * SYNC)
        out.append(actions.replicas)
        current = actions.replicas or current
    return out


def test_the_decision_holds_only_as_long_as_the_learned_hold() -> None:
    assert step_down(None) == [7, 7, 7, 7]  # no learned hold: the declared 300 s
    assert step_down(0.0) == [2, 2, 2, 2]  # dips of this workload do not return: let go at once
    assert step_down(30.0) == [7, 2, 2, 2]  # the spike's recommendation leaves the 30 s hold after 30 s
    assert step_down(900.0) == [7, 7, 7, 7]  # never longer than the declared window ...
    assert step_down(900.0, stabilisation=0) == [2, 2, 2, 2]  # ... whatever the hold says


def learn_holds(mode: ScaleDownHold) -> tuple[WorkloadModels, list[float | None]]:
    """Isolated spikes over a noisy base, every 15 s: the holds the models report."""
    p = policy()
    spec = p.model_copy(update={"forecast": p.forecast.model_copy(update={"enabled": False}),
                                "replicas": p.replicas.model_copy(update={"scaleDownHold": mode})})
    models = WorkloadModels(spec, step_seconds=SYNC)
    noise = 10 * np.random.default_rng(1).lognormal(0, 0.5, 4000)
    holds = []
    for k in range(4000):
        value = 100.0 if k % 40 < 4 else float(noise[k])
        obs = models.observe(k * SYNC, Observations(value, 5, 5), sample_time=k * SYNC)
        assert obs.reactive is not None
        holds.append(obs.reactive.hold_seconds)
    return models, holds


def test_a_fixed_hold_policy_keeps_the_declared_window() -> None:
    """replicas.scaleDownHold: Fixed is the HPA's rule: no hold is learned, the declared window always applies."""
    models, holds = learn_holds(ScaleDownHold.FIXED)
    assert models.hold is None and set(holds) == {None}
    assert step_down(holds[-1]) == [7, 7, 7, 7]


def test_the_models_learn_a_hold_from_the_workloads_own_readings() -> None:
    models, holds = learn_holds(ScaleDownHold.LEARNED)
    assert holds[50] == 300.0 and holds[-1] is not None and holds[-1] < 300.0
    assert models.hold is not None
    # the shorter hold's bound carries the headroom the declared hold's cost would have bought
    unscaled = models.reactive.observe(4000 * SYNC, 12.0)
    scaled = models.track(4000 * SYNC, 12.0)
    assert unscaled is not None and scaled is not None and scaled.hold_seconds == holds[-1]
    assert scaled.upper == unscaled.upper * models.hold.scale(holds[-1]) > 1.2 * unscaled.upper


def test_a_shortened_hold_keeps_the_headroom_it_was_scaled_for_on_the_forecast_basis() -> None:
    from careplane.decision.types import ForecastSummary

    forecast = ForecastSummary(mean=40.0, upper=50.0, lower=0.0, horizon_seconds=0, model="m")
    p = policy().model_copy(update={"forecast": policy().forecast.model_copy(update={"enabled": True})})

    def terms(hold: float | None) -> dict[str, float]:
        # the models scaled the forecast's bound (50 req/s) by 1.6 for a hold shorter than declared
        reactive = ReactiveSummary(upper=80.0, basis="forecast", ratio=2.0, samples=500, hold_seconds=hold)
        _, _, why = decide(p, Observations(40.0, 5, 5, forecast=forecast, reactive=reactive), DecisionState(), 0.0)
        return dict(why.terms)

    assert terms(75.0)["forecast"] == 8.0  # the scaled bound: 80 req/s at 10 per replica
    assert terms(None)["forecast"] == 5.0  # the declared hold: the forecast's own bound, as before
    assert terms(300.0)["forecast"] == 5.0
