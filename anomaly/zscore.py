"""Robust streaming z-score: how far a sample is from an EWMA level, in EW mean-absolute-deviations.

Robust because the update is Huberised: a residual larger than ``clip`` scales
moves the level and the scale only as much as a ``clip``-scale residual would,
so one spike does not inflate the scale and hide the next one, while a lasting
level shift is still absorbed within a few half-lives.
"""

from __future__ import annotations

import math

from careplane.anomaly.stats import surprise, surprise_probability

_MAD_TO_STD = math.sqrt(math.pi / 2.0)  # E|X - mu| = sigma * sqrt(2 / pi) for a normal X


class RobustZScoreDetector:
    """EWMA level + EW mean absolute deviation; ``score_one`` = :func:`surprise` of the sample's z-score."""

    name = "robust_zscore"
    __slots__ = (
        "_alpha",
        "_clip",
        "_floor_fraction",
        "_free",
        "_hi",
        "_level",
        "_lo",
        "_n",
        "_scale",
        "_span",
        "_warmup",
    )

    def __init__(
        self,
        half_life: float = 50.0,
        clip: float = 4.0,
        warmup: int = 10,
        free: float = 2.0,
        span: float = 3.0,
        floor_fraction: float = 0.01,
    ) -> None:
        self._free, self._span = free, span
        self._floor_fraction = floor_fraction
        self._alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self._clip = clip
        self._warmup = warmup
        self._level = 0.0
        self._scale = 0.0
        self._lo = math.inf
        self._hi = -math.inf
        self._n = 0

    def _floor(self) -> float:
        # a perfectly flat stream has zero deviation; a fraction of the range seen so far
        # keeps a tiny wiggle from scoring as infinitely surprising. The range, not the
        # level: the detector must not care whether a series is offset by a constant.
        span = self._hi - self._lo if self._n else 0.0
        return self._floor_fraction * span if span > 0.0 else 1e-9 * (1.0 + abs(self._level))

    def zscore(self, x: float) -> float:
        """Signed z-score of ``x`` against what was learned so far (0 while warming up)."""
        if self._n < self._warmup:
            return 0.0
        sigma = max(self._scale * _MAD_TO_STD, self._floor())
        return (x - self._level) / sigma

    def score_one(self, x: float) -> float:
        return surprise(self.zscore(x), self._free, self._span)

    def probability(self, score: float) -> float:
        """P(|Z| < z) of the z-score behind ``score`` (used by the workload monitor)."""
        return surprise_probability(score, self._free, self._span)

    def learn_one(self, x: float) -> None:
        n = self._n
        self._n = n + 1
        if x < self._lo:
            self._lo = x
        if x > self._hi:
            self._hi = x
        if n == 0:
            self._level = x
            return
        a = self._alpha if n >= self._warmup else 1.0 / (n + 1)
        r = x - self._level
        limit = self._clip * max(self._scale * _MAD_TO_STD, self._floor())
        if n >= self._warmup and abs(r) > limit:
            r = limit if r > 0 else -limit
        self._level += a * r
        self._scale += a * (abs(r) - self._scale)
