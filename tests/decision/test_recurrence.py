"""The recurring-peak bound: a daily event is anticipated one provisioning window ahead, a one-off is not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from careplane.decision.core import decide
from careplane.decision.models import WorkloadModels
from careplane.decision.recurrence import RecurrenceBound, season_for
from careplane.decision.state import DecisionState
from careplane.decision.types import Observations
from careplane.policy import ScalingPolicySpec

DAY = 86_400.0
STEP = 15.0
WINDOW = 990.0  # podStartupSeconds 90 + horizon 900, as the FHIR example
ONSET = 9 * 3600.0  # the spike starts at 09:00 every day
SPIKE_SECONDS = 1200.0
BASE, LEVEL = 60.0, 540.0


def demand(days: int, spike_days: set[int] | None = None, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Poisson request rates at 15 s steps: BASE req/s, LEVEL during 20 minutes from ONSET on ``spike_days``."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, days * DAY, STEP)
    day = (t // DAY).astype(int)
    into = t % DAY
    spiking = (into >= ONSET) & (into < ONSET + SPIKE_SECONDS)
    if spike_days is not None:
        spiking &= np.isin(day, sorted(spike_days))
    rate = np.where(spiking, LEVEL, BASE)
    return t, rng.poisson(rate * STEP) / STEP


def bound_at(now: float, t: np.ndarray, y: np.ndarray) -> RecurrenceBound:
    """A bound that has observed every sample measured before ``now``, one by one."""
    rb = RecurrenceBound(step_seconds=STEP, window_seconds=WINDOW, season_seconds=DAY)
    for ti, yi in zip(t[t < now], y[t < now], strict=True):
        rb.observe(float(ti), float(yi))
    return rb


def last_sample(now: float) -> float:
    return math.floor(now / STEP - 1e-9) * STEP


def test_a_daily_spike_is_covered_one_provisioning_window_ahead_from_the_fourth_day() -> None:
    t, y = demand(6)
    rb = RecurrenceBound(step_seconds=STEP, window_seconds=WINDOW, season_seconds=DAY)
    seen: dict[int, float | None] = {}
    fed = 0
    for day in range(6):
        now = day * DAY + ONSET - WINDOW  # the window's end just reaches today's onset
        while fed < len(t) and t[fed] < now:
            rb.observe(float(t[fed]), float(y[fed]))
            fed += 1
        out = rb.bound(now, now + WINDOW, last_sample(now))
        seen[day] = out.peak if out is not None else None
        if out is not None:
            assert out.seasons == day and out.agreeing >= math.ceil(day / 2)
    assert seen[0] is None and seen[1] is None and seen[2] is None  # fewer than 3 past days: nothing said
    for day in (3, 4, 5):
        assert seen[day] is not None and seen[day] >= LEVEL, seen
    # and it is a bound on the event, not a blanket: an hour earlier the window holds no spike on any day
    rb_early = bound_at(4 * DAY + ONSET - 3600.0, t, y)
    quiet = rb_early.bound(4 * DAY + ONSET - 3600.0, 4 * DAY + ONSET - 3600.0 + WINDOW, last_sample(4 * DAY + ONSET - 3600.0))
    assert quiet is None  # noise-level rises are not a recurring event


def test_a_one_off_spike_on_one_past_day_does_not_raise_the_bound() -> None:
    t, y = demand(6, spike_days={2})
    now = 5 * DAY + ONSET - WINDOW
    rb = bound_at(now, t, y)
    # the one-off is one of five votes: no recurring rise, nothing said
    assert rb.bound(now, now + WINDOW, last_sample(now)) is None
    # (the same bound does speak where the past days agree: two minutes into the spike's window they
    # agree it is over; they would not speak at all with the spike day's data alone)
    # while the same spike on three of five past days does
    t3, y3 = demand(6, spike_days={1, 2, 4})
    out3 = bound_at(now, t3, y3).bound(now, now + WINDOW, last_sample(now))
    # (the median is the lowest of the three spike days' rises: the level within 3 Poisson sd of a 15 s rate)
    assert out3 is not None and out3.peak >= LEVEL - 3 * math.sqrt(LEVEL / STEP) and out3.agreeing >= 3


def test_gaps_are_left_out_never_read_as_zero() -> None:
    t, y = demand(7)
    y = y.copy()
    y[(t >= 2 * DAY) & (t < 3 * DAY)] = np.nan  # a whole past day missing
    inside = (t % DAY >= ONSET) & (t % DAY < ONSET + 300.0)
    y[inside & (t < 4 * DAY)] = np.nan  # the first 5 minutes of the spike missing on the early days
    now = 6 * DAY + ONSET - WINDOW + 600.0  # the window holds the spike's first 10 minutes
    rb = RecurrenceBound(step_seconds=STEP, window_seconds=WINDOW, season_seconds=DAY)
    for ti, yi in zip(t[t < now], y[t < now], strict=True):
        rb.observe(float(ti), None if math.isnan(yi) else float(yi))
    out = rb.bound(now, now + WINDOW, last_sample(now))
    assert out is not None and out.seasons == 5  # the missing day is left out, not a zero-demand vote
    assert out.peak >= LEVEL
    # today's base unknown (the last minutes are a gap): nothing is said
    rb_gap = RecurrenceBound(step_seconds=STEP, window_seconds=WINDOW, season_seconds=DAY)
    keep = (t < now - 300.0)
    rb_gap.extend(t[keep], y[keep])
    assert rb_gap.bound(now, now + WINDOW, last_sample(now)) is None


def test_a_bulk_rebuild_holds_the_same_ring_as_samples_one_by_one() -> None:
    t, y = demand(10)  # longer than the ring: old seasons must fall out the same way
    y = y.copy()
    y[::97] = np.nan
    one = RecurrenceBound(step_seconds=STEP, window_seconds=WINDOW, season_seconds=DAY)
    for ti, yi in zip(t, y, strict=True):
        one.observe(float(ti), float(yi))
    bulk = RecurrenceBound(step_seconds=STEP, window_seconds=WINDOW, season_seconds=DAY)
    split = len(t) // 3
    bulk.extend(t[:split], y[:split])
    bulk.extend(t[split:], y[split:])
    np.testing.assert_array_equal(one._ring, bulk._ring)
    now = t[-1] + STEP
    assert one.bound(now, now + WINDOW, t[-1]) == bulk.bound(now, now + WINDOW, t[-1])


def test_memory_per_policy_and_the_season_chosen() -> None:
    rb = RecurrenceBound(step_seconds=STEP, window_seconds=WINDOW, season_seconds=DAY)
    assert rb.bucket == pytest.approx(60.0)  # window / 16 rounded to a whole number per day
    assert rb.bytes_per_policy < 48_000  # 1,000 such policies in under 48 MB
    tiny = RecurrenceBound(step_seconds=1.0, window_seconds=5.0, season_seconds=DAY)
    assert tiny.bytes_per_policy <= (7 * 2880 + 10) * 4  # short windows are capped at 30 s buckets
    assert season_for(WINDOW, [604_800, 86_400]) == 86_400
    assert season_for(WINDOW, [600, 86_400]) == 86_400  # a season shorter than the window cannot say "ago"
    assert season_for(WINDOW, [600]) is None
    with pytest.raises(ValueError):
        RecurrenceBound(step_seconds=STEP, window_seconds=DAY, season_seconds=DAY)


def fhir_like(model: str = "seasonal_naive") -> ScalingPolicySpec:
    return ScalingPolicySpec.model_validate({
        "targetRef": {"name": "fhir"},
        "criticality": "critical",
        "intervalSeconds": 60,
        "replicas": {"min": 2, "max": 50, "maxScaleUpStep": 10},
        "demand": {"query": "q", "perReplicaCapacity": 50, "targetUtilization": 0.7, "podStartupSeconds": 90},
        "forecast": {"model": model, "horizonSeconds": 900, "seasonalitySeconds": [86400, 604800], "quantile": 0.9},
        "anomaly": {"enabled": False},
    })


def minute_demand(days: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, days * DAY, 60.0)
    into = t % DAY
    rate = np.where((into >= ONSET) & (into < ONSET + SPIKE_SECONDS), LEVEL, BASE)
    return t, rng.poisson(rate * 60.0) / 60.0


def test_workload_models_raise_the_forecast_bound_and_decide_buys_the_spike_ahead() -> None:
    t, y = minute_demand(5)
    # a Fourier model of the daily shape smooths a 20-minute spike away: the gap the recurring peak closes
    models = WorkloadModels(fhir_like("fourier"), 60.0)
    now = 4 * DAY + ONSET - 990.0  # one provisioning window (90 + 900 s) ahead of the onset
    past = t < now
    models.rebuild(t[past][:-1], y[past][:-1])
    obs = models.observe(now, Observations(demand=float(y[past][-1]), current_replicas=2, ready_replicas=2),
                         sample_time=float(t[past][-1]))
    f = obs.forecast
    assert f is not None and f.recurring is not None and f.model_upper is not None
    # the window's last minute is the onset's: the level within 3 Poisson sd of a minute's rate
    level = LEVEL - 3 * math.sqrt(LEVEL / 60.0)
    assert f.recurring.peak >= level and f.upper >= f.recurring.peak
    assert f.model_upper < LEVEL / 2  # the forecaster alone would not have bought it
    actions, _, explanation = decide(fhir_like("fourier"), obs, DecisionState.initial(), now)
    assert actions.replicas is not None and actions.replicas >= math.ceil(level / 50)
    assert "recurring peak" in explanation.message and "of 4 past days" in explanation.message


def test_a_restarted_operator_has_the_same_bound_as_one_that_never_stopped() -> None:
    t, y = minute_demand(5, seed=9)
    spec = fhir_like()
    stop = int(np.searchsorted(t, 4 * DAY + ONSET - 2 * 3600.0))
    running = WorkloadModels(spec, 60.0)
    for ti, yi in zip(t[:stop], y[:stop], strict=True):
        running.observe(float(ti) + 60.0, Observations(demand=float(yi), current_replicas=2, ready_replicas=2),
                        sample_time=float(ti))
    restarted = WorkloadModels(spec, 60.0)
    restarted.rebuild(t[:stop], y[:stop])
    for ti, yi in zip(t[stop:stop + 120], y[stop:stop + 120], strict=True):
        obs = Observations(demand=float(yi), current_replicas=2, ready_replicas=2)
        a = running.observe(float(ti) + 60.0, obs, sample_time=float(ti))
        b = restarted.observe(float(ti) + 60.0, obs, sample_time=float(ti))
        assert a.forecast is not None and b.forecast is not None
        assert a.forecast.recurring == b.forecast.recurring
    assert a.forecast.recurring is not None and a.forecast.recurring.peak >= LEVEL  # the last window holds the onset
