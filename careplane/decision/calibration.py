"""Calibrate the forecast's provisioning-window peak against what then happened (split conformal).

Capacity is bought for the *highest* demand over the provisioning window, but a
forecaster's ``upper`` is a per-step quantile: the maximum of per-step quantiles
over several steps covers the window's maximum less often than the quantile
says, and by how much depends on the series' burstiness. So the model layer
keeps the forecast mean it issued for each window and, once the window's
demand is known, the normalised excess ``(max actual - mean) / scale``. The
upper bound it hands the decision core is ``mean + quantile_q(excess) x scale``
over the last ``window`` windows (Vovk's split/online conformal prediction),
which covers the window maximum at the policy's quantile by construction.

``scale`` is the Poisson standard deviation of a rate measured over one step,
``sqrt(mean / step)``: request arrivals are counts, so their noise grows with
the square root of the level (heteroscedastic), in requests/s.

Causal: an excess enters the sample only after the window's last step was observed.
"""

from __future__ import annotations

import bisect
import math
from collections import deque


class RollingQuantile:
    """A rolling window of values with conformal-rank quantiles (insort keeps it sorted)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._fifo: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, value: float) -> None:
        self._fifo.append(value)
        bisect.insort(self._sorted, value)
        if len(self._fifo) > self.window:
            old = self._fifo.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def quantile(self, q: float) -> float:
        n = len(self._sorted)
        rank = min(n, max(1, math.ceil((n + 1) * q))) - 1  # the conformal rank
        return self._sorted[rank]


class WindowCalibrator:
    """Online conformal quantiles of a window maximum's excess over the forecast mean."""

    def __init__(self, *, step_seconds: float, window: int = 1500, min_count: int = 50) -> None:
        self.step = step_seconds
        self.window = window
        self.min_count = min_count
        self._pending: deque[tuple[int, int, float, float]] = deque()  # (first step, last step, mean, scale)
        self._actual: dict[int, float] = {}
        self._excess = RollingQuantile(window)

    def scale(self, mean: float) -> float:
        return math.sqrt(max(mean, 0.0) / self.step) + 1e-9

    def issue(self, first: int, last: int, mean: float) -> None:
        """A forecast mean was issued for steps ``first..last`` (inclusive)."""
        if math.isfinite(mean):
            self._pending.append((first, last, mean, self.scale(mean)))

    def observe(self, index: int, value: float | None) -> None:
        """The demand of step ``index`` became known (None: a gap)."""
        if value is not None and math.isfinite(value):
            self._actual[index] = value
        while self._pending and self._pending[0][1] <= index:
            first, last, mean, scale = self._pending.popleft()
            seen = [self._actual[i] for i in range(first, last + 1) if i in self._actual]
            if seen:
                self._excess.add((max(seen) - mean) / scale)
        oldest = self._pending[0][0] if self._pending else index + 1
        for stale in [i for i in self._actual if i < oldest]:
            del self._actual[stale]

    @property
    def ready(self) -> bool:
        return len(self._excess) >= self.min_count

    def upper(self, mean: float, quantile: float) -> float | None:
        """Calibrated upper bound of the window maximum, or None until enough windows were scored."""
        if not self.ready or not math.isfinite(mean):
            return None
        return max(0.0, mean + self._excess.quantile(quantile) * self.scale(mean))
