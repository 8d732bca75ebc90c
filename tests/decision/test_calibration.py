"""The forecast window calibrator's local spread: headroom follows clustered bursts, coverage holds,
and the Poisson scale stays where the local one does not score better."""

from __future__ import annotations

import numpy as np

from careplane.decision.calibration import LOCAL_FLOOR, WindowCalibrator

STEP, WIDTH, Q = 60.0, 3, 0.9
SPELL = 180  # steps per calm or bursty spell


def replay(cal: WindowCalibrator, values: np.ndarray, mean: float) -> tuple[list[float | None], float]:
    """Issue a constant forecast mean every step; the bounds issued and their coverage of the window max."""
    uppers: list[float | None] = []
    hits = total = 0
    for k in range(len(values)):
        cal.observe(k - 1, float(values[k - 1]) if k else None)
        upper = cal.upper(mean, Q)
        cal.issue(k, k + WIDTH - 1, mean)
        uppers.append(upper)
        if upper is not None and k + WIDTH <= len(values) and k > 1500:
            total += 1
            hits += values[k:k + WIDTH].max() <= upper
    return uppers, hits / max(1, total)


def bursty_hours(seed: int) -> np.ndarray:
    """Alternating calm and bursty three-hour spells at the same mean level (30 req/s)."""
    rng = np.random.default_rng(seed)
    n = 6000
    calm = rng.poisson(30 * 60, size=n) / 60.0
    burst = 30.0 * rng.lognormal(0.0, 0.5, size=n) / np.exp(0.125)
    hour = (np.arange(n) // SPELL) % 2 == 1
    return np.where(hour, burst, calm)


def test_the_local_spread_moves_headroom_to_bursty_hours_and_keeps_coverage() -> None:
    values = bursty_hours(3)
    chooser = WindowCalibrator(step_seconds=STEP, window=1500, quantile=Q)
    local, covered = replay(chooser, values, 30.0)
    assert chooser._local_wins()  # clustered bursts: the local scale had the lower pinball loss
    poisson, _ = replay(WindowCalibrator(step_seconds=STEP, window=1500, local_seconds=None), values, 30.0)
    assert abs(covered - Q) < 0.04  # conformal: the normalised excesses still cover at the quantile
    idx = np.arange(len(values))
    late = idx > 2000
    in_burst = late & ((idx // SPELL) % 2 == 1) & (idx % SPELL >= 90)  # well inside a bursty spell
    in_calm = late & ((idx // SPELL) % 2 == 0) & (idx % SPELL >= 90)

    def mean_at(bounds: list[float | None], mask: np.ndarray) -> float:
        return float(np.mean([b for b, m in zip(bounds, mask, strict=True) if m and b is not None]))

    # the local bound asks for more in bursts than in calm hours; the level-only bound cannot tell them apart
    local_gap = mean_at(local, in_burst) - mean_at(local, in_calm)
    poisson_gap = abs(mean_at(poisson, in_burst) - mean_at(poisson, in_calm))
    assert local_gap > 5.0 and local_gap > 3 * poisson_gap


def test_without_a_local_spread_the_scale_is_poissons_and_never_below_its_floor() -> None:
    plain = WindowCalibrator(step_seconds=STEP, local_seconds=None, quantile=Q)
    assert plain.local_scale(60.0) is None
    assert abs(plain.scale(60.0) - np.sqrt(60.0 / STEP)) < 1e-6
    cal = WindowCalibrator(step_seconds=STEP, quantile=Q)
    for k in range(200):  # a perfectly flat series: the spread goes to zero, the floor holds
        cal.observe(k - 1, 30.0 if k else None)
        cal.issue(k, k + WIDTH - 1, 30.0)
    local = cal.local_scale(30.0)
    assert local is not None and local >= LOCAL_FLOOR * np.sqrt(30.0 / STEP) - 1e-9


def test_without_the_policy_quantile_the_poisson_scale_is_kept() -> None:
    # nothing to score the two scales with: the level-only (Poisson) bound, as before
    values = bursty_hours(5)
    uppers, _ = replay(WindowCalibrator(step_seconds=STEP, window=1500), values, 30.0)
    poisson, _ = replay(WindowCalibrator(step_seconds=STEP, window=1500, local_seconds=None), values, 30.0)
    assert uppers == poisson
