"""Calibrated reactive scaling: how much more than the current reading must capacity asked now serve?

The HPA answers with one constant: ask for ``reading / targetUtilization``. Whether
0.7 is too little or too much depends on the workload: on a smooth series it
pays for headroom that is never used, on a spiky one it still misses the jumps.
This module learns the answer from the controller's own readings, online and
causally, at the policy's quantile.

Capacity asked at time t is ready at t + podStartupSeconds and is the newest
capacity until the next decision's, asked at t + intervalSeconds, is ready. The
demand it must serve is therefore what the reading shows at
``t + podStartupSeconds + intervalSeconds`` (the reading is the rate over the
last step, which ends there). For every reading the calibrator keeps, once that
later reading arrives, the excess ``(need - reading) / scale(reading)``; the
calibrated bound is ``reading + quantile_q(excess) x scale(reading)`` over a
rolling window: split/online conformal prediction (Vovk), so it covers the need
at the policy's quantile by construction, and it grows with the workload's own
volatility. ``scale`` is the Poisson standard deviation of a rate measured over
one step, ``sqrt(reading / step)`` (as in calibration.py): request counts are
noisier, relative to their level, when the level is low, so a fixed ratio
(the HPA's) over-pays at busy hours to cover quiet ones. Measured on the
benchmark's two traces, the Poisson excess beat the ratio need/reading at every
quantile.

A rising reading is extrapolated first. The reading is a rate over a window
(the ``[1m]`` of the demand query's ``rate``; in the backtest, the last trace
step), so after demand steps up it climbs for a whole window before it shows
the new level: a decision in the middle of that climb sees half the jump. The
base is therefore ``reading + max(0, slope) x min(horizon, window)``, the slope
taken against the previous decision's reading, and the excess is calibrated
against that base (the conformal quantile still covers the need at q whatever
the base; a better base only makes the excesses smaller). Only rises are
extrapolated: a falling reading is the scale-down hold's business. At most one
window, because a rate over a window has shown a change fully after it. A
reading with no window (a gauge, read as it is) shows a jump at once and is not
extrapolated (``reading_window_seconds=0``).
Measured (``benchmarks/autoscaling.py --hold Learned`` before and after, NAB ELB,
5-minute steps with 20 decisions each): at HPA-0.7's cost 0.53% -> 0.004% of
steps violated, at HPA-0.5's cost 0.109% -> 0%; NASA at HPA-0.7's cost 0.960% ->
0.949% (extrapolating over the whole horizon instead of one step: 0.968%).

Reading or forecast? On a series with structure (a daily cycle, ramps) the
forecast's window-calibrated upper bound buys capacity before the readings show
the need; on a series that is mostly noise, the readings carry what is known and
the forecast's bound pays for its uncertainty at every step. Taking the higher
of the two q-quantiles covers more than q and pays for it. So both bounds are
scored, out of sample (each was issued before its need was known), with the
pinball loss at q, which charges over-provisioning (1 - q) and under-provisioning
q per unit (the loss the q-quantile minimises), and the one with the lower
rolling loss is used: the same philosophy as the ``auto`` forecaster's choice.

Warm-up: until ``min_count`` excesses were learned nothing is known about this
workload's volatility, so the reading bound is the HPA's rule on the extrapolated
base, ``base / targetUtilization`` (the policy's own prior headroom; without it careplane asked
for the bare reading and, on the benchmark's ELB series, missed the spikes of
its first half hour). And until both bounds have ``min_count`` scored losses,
the higher of the two is used: with no evidence which one is right, pay for
both (measured: this removed a warm-up miss on ELB and changed nothing else).

Gaps are never read as zero: a missing reading adds no sample, and the readings
waiting for it are dropped unscored. Cost per reading: O(log window) search plus
an O(window) memmove in ``bisect.insort``, cheap enough for every sync of a
58-day minute trace.
"""

from __future__ import annotations

import math
from collections import deque

from careplane.decision.calibration import RollingQuantile, pinball
from careplane.decision.types import ReactiveSummary

READING, FORECAST = "reading", "forecast"
PRIOR = "prior"  # the reading bound at the policy's headroom, before calibration (never scored)


class RollingSum:
    """The sum (and mean) of the last ``window`` values."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._fifo: deque[float] = deque()
        self.total = 0.0

    def __len__(self) -> int:
        return len(self._fifo)

    def add(self, value: float) -> None:
        self._fifo.append(value)
        self.total += value
        if len(self._fifo) > self.window:
            self.total -= self._fifo.popleft()

    @property
    def mean(self) -> float:
        return self.total / max(1, len(self._fifo))


class ReactiveCalibrator:
    """The calibrated reading bound, and whether it or the forecast's bound has the lower rolling loss."""

    def __init__(
        self,
        *,
        horizon_seconds: float,
        quantile: float,
        step_seconds: float,
        floor: float,
        window: int = 5760,
        min_count: int = 100,
        prior_ratio: float | None = None,
        reading_window_seconds: float | None = None,
    ) -> None:
        if not (horizon_seconds > 0 and step_seconds > 0):
            raise ValueError(f"horizon and step must be positive, got {horizon_seconds}, {step_seconds}")
        self.horizon = float(horizon_seconds)
        self.quantile = float(quantile)
        self.step = float(step_seconds)
        self.floor = max(float(floor), 1e-12)
        # how long the reading averages over (None: one step, the backtest's reading); 0: a gauge
        self.reading_window = self.step if reading_window_seconds is None else max(0.0, float(reading_window_seconds))
        self.min_count = min_count
        # the headroom ratio used until the excesses are calibrated (None: the bare reading)
        self.prior_ratio = None if prior_ratio is None or not prior_ratio > 0 else float(prior_ratio)
        self.excess = RollingQuantile(window)
        self.loss = {READING: RollingSum(window), FORECAST: RollingSum(window)}
        # (time, reading, base, bounds issued then) waiting for the reading that shows their need
        self._pending: deque[tuple[float, float, float, dict[str, float]]] = deque()
        self.last_time: float | None = None
        self._previous: tuple[float, float] | None = None  # the last known reading and its time
        self._last: ReactiveSummary | None = None

    def scale(self, reading: float) -> float:
        """Poisson standard deviation of a one-step rate at this level (at least ``floor``'s)."""
        return math.sqrt(max(reading, self.floor) / self.step)

    def rise(self, now: float, reading: float) -> float:
        """How far a rising reading is extrapolated: its slope since the previous reading, over at most its window.

        Only against a reading at most two steps old (a longer gap says nothing about the slope now).
        """
        previous, self._previous = self._previous, (now, reading)
        if previous is None or not 0 < now - previous[0] <= 2 * self.step:
            return 0.0
        slope = (reading - previous[1]) / (now - previous[0])
        return max(0.0, slope) * min(self.horizon, self.reading_window)

    def observe(self, now: float, reading: float | None, forecast_upper: float | None = None) -> ReactiveSummary | None:
        """Learn the reading at ``now``; the bound for capacity asked now (None until calibrated).

        ``forecast_upper`` is the forecast's own calibrated bound over the provisioning window,
        if there is one. A second reading at the same (or an earlier) time learns nothing.
        """
        if self.last_time is not None and now <= self.last_time:
            return self._last
        self.last_time = now
        known = reading is not None and math.isfinite(reading) and reading >= 0
        while self._pending and self._pending[0][0] + self.horizon <= now + 1e-6:
            _, value, base, waiting = self._pending.popleft()
            if reading is not None and known:  # a gap resolves the waiting readings unscored, never as zero
                self._learn(reading, value, base, waiting)
        if reading is None or not known:
            self._last = None
            return None
        value = float(reading)
        rise = self.rise(now, value)
        base = value + rise
        issued: dict[str, float] = {}
        if len(self.excess) >= self.min_count:
            # never below the reading: what is served now is needed now
            issued[READING] = max(value, base + self.excess.quantile(self.quantile) * self.scale(value))
        elif self.prior_ratio is not None:
            # warm-up: the policy's own headroom until the workload's volatility is known
            issued[PRIOR] = max(value, base * self.prior_ratio)
        if forecast_upper is not None and math.isfinite(forecast_upper):
            # what the predictive design asks: the forecast's own bound, never below the reading
            issued[FORECAST] = max(value, forecast_upper)
        self._pending.append((now, value, base, issued))
        self._last = self._choose(value, rise, issued)
        return self._last

    def _learn(self, need: float, value: float, base: float, issued: dict[str, float]) -> None:
        self.excess.add((need - base) / self.scale(value))
        for name, upper in issued.items():
            if name in self.loss:  # the warm-up prior is not a calibrated bound: never scored
                self.loss[name].add(pinball(need, upper, self.quantile))

    def _choose(self, reading: float, rise: float, issued: dict[str, float]) -> ReactiveSummary | None:
        if not issued:
            return None
        scored = [name for name in issued if name in self.loss and len(self.loss[name]) >= self.min_count]
        if len(scored) > 1:
            basis = min(scored, key=lambda name: self.loss[name].mean)
        else:
            # until the losses speak, the higher bound (ties: the predictive design's): with no
            # evidence which of two q-quantiles is right, paying for both is the safe side
            basis = max(issued, key=lambda name: (issued[name], name == FORECAST))
        upper = issued[basis]
        basis = READING if basis == PRIOR else basis
        return ReactiveSummary(upper, basis, upper / max(reading, self.floor), len(self.excess), rise=rise)
