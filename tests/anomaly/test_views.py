"""The views inside ``auto``: seasonal residual, context novelty, familiarity discount, new-extreme rule."""

from __future__ import annotations

import math
import random

import numpy as np

from careplane.anomaly.auto import AutoDetector
from careplane.anomaly.context import ContextNoveltyDetector
from careplane.anomaly.corpus import run_detector
from careplane.anomaly.seasonal import SeasonalResidualDetector


def _daily(n: int, period: int = 48, missing_peak_cycle: int | None = None, seed: int = 11) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        peak = 50.0 if (i % period) in range(20, 26) else 0.0
        if missing_peak_cycle is not None and i // period == missing_peak_cycle:
            peak = 0.0
        out.append(10.0 + peak + rng.gauss(0.0, 1.0))
    return out


def test_seasonal_view_finds_the_period_and_flags_a_missing_peak() -> None:
    values = _daily(48 * 30, missing_peak_cycle=25)
    detector = SeasonalResidualDetector(reestimate=100)
    scores = run_detector(detector, values)
    assert detector.period == 48
    missing = slice(25 * 48 + 20, 25 * 48 + 26)
    assert scores[missing].max() > 0.9
    # the cycle after it is compared with the median of several cycles: no echo
    echo = slice(26 * 48 + 20, 26 * 48 + 26)
    assert scores[echo].max() < 0.5
    assert scores[20 * 48 : 25 * 48].max() < scores[missing].max()


def test_seasonal_view_stays_silent_without_a_season() -> None:
    rng = random.Random(2)
    detector = SeasonalResidualDetector(reestimate=100)
    scores = run_detector(detector, [rng.gauss(0.0, 1.0) for _ in range(1500)])
    assert detector.period == 0
    assert scores.max() == 0.0


def test_context_novelty_scores_unseen_shapes_high_and_familiar_ones_low() -> None:
    detector = ContextNoveltyDetector(levels=6, order=3, warmup=10)
    pattern = [0.0, 5.0, 10.0, 5.0] * 100
    scores = run_detector(detector, [*pattern, 0.0, 10.0, 0.0])
    assert scores[300:400].max() < 0.05  # a habit
    assert scores[-2] == 1.0  # 5 -> 0 -> 10 never happened


def test_recurring_spikes_are_discounted_but_a_new_kind_of_spike_is_not() -> None:
    rng = random.Random(4)
    values = [100.0 + rng.gauss(0.0, 1.0) for _ in range(3000)]
    for i in range(500, 2600, 100):
        values[i] += 15.0  # a habit: the same spike every 100 samples
    values[2950] -= 15.0  # a dip: never seen before (well after the last spike's refractory period)
    with_discount = run_detector(AutoDetector(range_tolerance=None), values)
    without = run_detector(AutoDetector(range_tolerance=None, familiarity_discount=0.0), values)
    late_habit = list(range(1600, 2600, 100))
    assert with_discount[late_habit].mean() < 0.75 * without[late_habit].mean()
    assert with_discount[2950] > with_discount[late_habit].max()


def test_new_extreme_rule_scores_a_value_beyond_the_range_at_once() -> None:
    values = [50.0 + 10.0 * math.sin(i / 7.0) for i in range(400)]
    values.append(95.0)  # 0.75 of the range above the max
    rule = run_detector(AutoDetector(), values)
    no_rule = run_detector(AutoDetector(range_tolerance=None), values)
    assert rule[-1] == 1.0
    assert no_rule[-1] < rule[-1]
    assert np.all(rule[160:400] < 0.6)
