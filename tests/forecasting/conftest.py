"""Synthetic demand series shared by the forecasting tests (small, so the suite stays fast)."""

from __future__ import annotations

import numpy as np
import pytest

HOUR = 3600.0


def seasonal_counts(hours: int, seed: int = 0, base: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """Hourly Poisson arrivals with a daily and a weekly cycle (count data: variance = level)."""
    rng = np.random.default_rng(seed)
    times = np.arange(hours) * HOUR
    day = np.sin(2 * np.pi * times / 86400.0)
    week = np.where((times // 86400) % 7 >= 5, 0.6, 1.0)
    rate = base * week * (1.0 + 0.7 * day)
    return times, rng.poisson(rate).astype(float)


@pytest.fixture
def hourly() -> tuple[np.ndarray, np.ndarray]:
    return seasonal_counts(24 * 7 * 5)
