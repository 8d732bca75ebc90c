"""Calendar (Fourier) features shared by the lag regression, Fourier and SARIMAX models."""

from __future__ import annotations

import numpy as np


def fourier_terms(times: np.ndarray, periods_seconds: list[float], harmonics: list[int]) -> np.ndarray:
    """sin/cos of ``2 pi k t / P`` for k = 1..K of each period P: shape (len(times), 2 * sum(K))."""
    times = np.asarray(times, dtype=float)
    columns = []
    for period, count in zip(periods_seconds, harmonics, strict=True):
        if count <= 0:
            continue
        phase = (2 * np.pi / period) * np.mod(times, period)
        ks = np.arange(1, count + 1)
        angles = np.outer(phase, ks)
        columns.append(np.sin(angles))
        columns.append(np.cos(angles))
    if not columns:
        return np.empty((len(times), 0))
    return np.hstack(columns)


def period_slots(periods_seconds: list[float], step_seconds: float) -> int | None:
    """Slots after which all ``periods_seconds`` repeat exactly (their common cycle), or None if not on the grid.

    Why: calendar terms are then a lookup table indexed by ``slot % P`` instead
    of sin/cos per forecast (the per-sample budget is a few microseconds).
    """
    if not periods_seconds:
        return None
    cycle = 1
    for period in periods_seconds:
        slots = period / step_seconds
        if abs(slots - round(slots)) > 1e-9 or round(slots) < 1:
            return None
        cycle = int(np.lcm(cycle, round(slots)))
    return cycle if cycle <= 200_000 else None
