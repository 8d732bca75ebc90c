"""Anomaly likelihood: turn raw surprise into a calibrated probability.

The idea is Numenta's (NAB's HTM detector, ``anomaly_likelihood.py``): a raw
score is only meaningful relative to how surprising *this* stream usually is.
We keep the short-term mean of the raw scores (the last ``short_window``
samples) and the distribution (mean, variance) of that short-term mean over
a long history, and report how far in the upper tail the current short-term
mean lies. A noisy stream with raw scores of 0.5 everywhere then scores low,
and a quiet stream that suddenly produces 0.5 scores high, so one threshold
works across streams.

Differences from Numenta's: the long-term distribution is an exponentially
weighted mean/variance (cumulative during learning) instead of an 8,640-sample
window re-estimated every 100 samples, so the state is a dozen floats per
stream (a thousand workloads x a few signals must fit in one operator) and
every update is O(1). Written by hand because no maintained library offers it
as a streaming component (river has none; htm.core is unmaintained and heavy).
"""

from __future__ import annotations

import math
from collections import deque

from careplane.anomaly.stats import upper_tail

_LOG_FLOOR = math.log(1e-10)


class AnomalyLikelihood:
    """Streaming upper-tail probability of the short-term mean of raw scores.

    ``update(raw)`` returns the likelihood in [0, 1] that the stream is now
    anomalous (0.5 while still learning); ``peek(raw)`` the same without
    changing state. ``log_score(L)`` maps it to NAB's log scale.
    """

    __slots__ = (
        "_count",
        "_learning",
        "_long_alpha",
        "_mean",
        "_min_std",
        "_short",
        "_short_sum",
        "_short_window",
        "_var",
    )

    def __init__(
        self, short_window: int = 10, long_half_life: float = 1000.0, learning: int = 150, min_std: float = 0.02
    ) -> None:
        self._short_window = short_window
        self._long_alpha = 1.0 - 0.5 ** (1.0 / long_half_life)
        self._learning = learning
        self._min_std = min_std
        self._short: deque[float] = deque()
        self._short_sum = 0.0
        self._mean = 0.0
        self._var = 0.0
        self._count = 0

    def _short_mean(self, raw: float) -> float:
        short = self._short
        if len(short) >= self._short_window:
            return (self._short_sum - short[0] + raw) / self._short_window
        return (self._short_sum + raw) / (len(short) + 1)

    def _likelihood(self, avg: float) -> float:
        if self._count < self._learning:
            return 0.5
        std = math.sqrt(self._var) if self._var > 0.0 else 0.0
        if std < self._min_std:
            std = self._min_std
        return 1.0 - upper_tail((avg - self._mean) / std)

    def peek(self, raw: float) -> float:
        """The likelihood ``update(raw)`` would return, without changing any state."""
        return self._likelihood(self._short_mean(raw))

    def update(self, raw: float) -> float:
        """Add one raw score in [0, 1]; return the likelihood that it marks an anomaly."""
        avg = self._short_mean(raw)
        likelihood = self._likelihood(avg)
        short = self._short
        short.append(raw)
        self._short_sum += raw
        if len(short) > self._short_window:
            self._short_sum -= short.popleft()
        # the distribution is of *past* short-term means: the current one joins after scoring
        self._count += 1
        a = 1.0 / self._count if self._count * self._long_alpha < 1.0 else self._long_alpha
        d = avg - self._mean
        self._mean += a * d
        self._var += a * (d * d * (1.0 - a) - self._var)
        return likelihood

    @staticmethod
    def log_score(likelihood: float) -> float:
        """NAB's log scale: 0.5 -> 0.03, 0.99 -> 0.2, 0.99999 -> 0.5, 1 - 1e-10 -> 1."""
        return math.log(1.0000000001 - likelihood) / _LOG_FLOOR

    @staticmethod
    def probability(log_score: float) -> float:
        """Inverse of :meth:`log_score` (up to its 1e-10 offset)."""
        return 1.0 - math.exp(log_score * _LOG_FLOOR)
