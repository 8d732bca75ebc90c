"""Seasonal-residual detector: is this sample unlike the same phase of the previous cycle?

A z-score or a local trend cannot tell that a daily peak failed to appear; a
comparison with one period ago can. The period is not configured (the detector
sees samples, not timestamps): every ``reestimate`` samples the autocorrelation
of the recent history is computed (one numpy FFT, amortised to well under a
microsecond per sample) and the strongest lag in [``min_period``,
``max_period``] is used when its autocorrelation is at least ``min_acf``;
otherwise the stream is treated as non-seasonal and the detector scores 0.
The residual is scored against its EW mean absolute deviation, Huberised as
in :mod:`careplane.anomaly.zscore`.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from careplane.anomaly.stats import surprise, surprise_probability

_MAD_TO_STD = math.sqrt(math.pi / 2.0)


class SeasonalResidualDetector:
    """Residual against the same phase of recent cycles; 0 while no period is detected."""

    name = "seasonal_residual"

    def __init__(
        self,
        min_period: int = 4,
        max_period: int = 1500,
        history: int = 3000,
        reestimate: int = 250,
        min_acf: float = 0.3,
        half_life: float = 100.0,
        free: float = 2.0,
        span: float = 3.0,
        cycles: int = 5,
        floor_fraction: float = 0.001,
    ) -> None:
        self._floor_fraction = floor_fraction
        self._cycles = cycles
        self._min_p, self._max_p = min_period, max_period
        self._history = history
        self._reestimate = reestimate
        self._min_acf = min_acf
        self._alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self._free, self._span = free, span
        self._buf = array("d", [0.0]) * history  # ring buffer of the last `history` samples
        self._n = 0
        self._period = 0
        self._scale = 0.0
        self._scale_n = 0
        self._lo = math.inf  # range seen so far: floors the spread (offset-invariant)
        self._hi = -math.inf

    @property
    def period(self) -> int:
        """The period in samples in use (0: none detected)."""
        return self._period

    def _ago(self, lag: int) -> float:
        return self._buf[(self._n - lag) % self._history]

    def _predict(self) -> float:
        """Median of the same phase in the last (up to) ``cycles`` periods: one anomalous
        cycle then does not echo as an anomaly one period later."""
        p = self._period
        k = min(self._cycles, min(self._n, self._history) // p)
        if k <= 1:
            return self._ago(p)
        past = sorted(self._ago(i * p) for i in range(1, k + 1))
        return past[k // 2] if k % 2 else 0.5 * (past[k // 2 - 1] + past[k // 2])

    def zscore(self, x: float) -> float:
        p = self._period
        if p == 0 or self._scale_n < 10:
            return 0.0
        r = x - self._predict()
        span = self._hi - self._lo
        floor = self._floor_fraction * span if span > 0.0 else 1e-9 * (1.0 + abs(x))
        sigma = self._scale * _MAD_TO_STD
        return r / (sigma if sigma > floor else floor)

    def score_one(self, x: float) -> float:
        return surprise(self.zscore(x), self._free, self._span)

    def probability(self, score: float) -> float:
        """P(|Z| < z) of the z-score behind ``score`` (used by the workload monitor)."""
        return surprise_probability(score, self._free, self._span)

    def _estimate_period(self) -> int:
        n = min(self._n, self._history)
        ring = np.frombuffer(self._buf, dtype=float)
        # oldest first: the ring's write position is self._n % history
        values = np.roll(ring, -(self._n % self._history))[-n:] if self._n >= self._history else ring[:n].copy()
        values = values - values.mean()
        denom = float(values @ values)
        max_lag = min(self._max_p, n // 2)
        if denom <= 0.0 or max_lag <= self._min_p:
            return 0
        spectrum = np.fft.rfft(values, 2 * n)
        acf = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1] / denom
        # skip the short-lag hump of any smooth series: start after the ACF first dips below 0
        below = np.nonzero(acf[self._min_p :] < 0.0)[0]
        if len(below) == 0:
            return 0
        lo = self._min_p + int(below[0])
        if lo >= max_lag:
            return 0
        lag = lo + int(np.argmax(acf[lo : max_lag + 1]))
        return lag if acf[lag] >= self._min_acf else 0

    def learn_one(self, x: float) -> None:
        p = self._period
        if p:
            r = x - self._predict()
            sigma = self._scale * _MAD_TO_STD
            limit = 4.0 * sigma if self._scale_n >= 10 else math.inf
            r = abs(r) if abs(r) <= limit else limit
            self._scale_n += 1
            a = self._alpha if self._scale_n > 20 else 1.0 / self._scale_n
            self._scale += a * (r - self._scale)
        if x < self._lo:
            self._lo = x
        if x > self._hi:
            self._hi = x
        self._buf[self._n % self._history] = x
        self._n += 1
        if self._n >= 2 * self._min_p and self._n % self._reestimate == 0:
            period = self._estimate_period()
            if period != self._period:
                self._period = period
                self._scale, self._scale_n = 0.0, 0
