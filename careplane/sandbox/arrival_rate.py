"""The arrival rate a sandbox workload's queueing model runs on, estimated from the requests it really gets.

Why not a fixed window: a sampled service gets one real HTTP request per
``SAMPLING_WEIGHT`` (20) modeled ones, so telehealth at 30 req/s sees ~1.5
real arrivals/s. A 5-second window then holds ~7.5 Poisson arrivals and
reads anywhere between 0 and twice the true rate (relative error
1/sqrt(7.5) = 37 %). The M/M/c wait is convex in the rate and the fluid
backlog grows whenever the estimate exceeds capacity, so at a true 60 %
load telehealth's p95 read 0.57 s where Erlang C gives 0.14 s: an
artefact of the estimator, not of the load (benchmarks/sandbox_latency.py
measures it).

What this does instead (ADWIN's idea, Bifet & Gavalda 2007, for a point
process; river's ADWIN takes a stream of bounded values with Hoeffding
bounds, detects slowly at a few arrivals per second, and has no notion of
the silence between arrivals, which is how a drop in load shows up):

* The window spans the last ``ARRIVALS`` (N = 200) real arrivals, at least
  ``MIN_WINDOW`` (1 s) and at most ``MAX_WINDOW`` (60 s). Counting arrivals
  rather than seconds makes the relative error ~1/sqrt(N) (7 %) whatever the
  sampling weight, down to N / MAX_WINDOW = 3.3 real arrivals/s; below that
  the cap leaves 1/sqrt(60 x rate) (11 % for telehealth's 1.5/s). At high
  real rates the window shrinks, so a busy service stays responsive. The
  estimate is (units of the newest N-1 arrivals) / (time since the N-th
  newest), unbiased for a Poisson process.
* A change restarts the window: at every reading the window is split at
  recent ages (1 s .. 48 s back) and a likelihood-ratio test asks whether the
  recent part's arrival count fits the older part's rate (Poisson counts,
  conditional binomial). When a split's statistic exceeds ``CHANGE_LR`` the
  arrivals before the most significant split are forgotten. A 9x step from
  1.5 real arrivals/s is read within 20 % after 1.7 s (median; within 5 s in
  96 % of runs); a drop to silence shows as the recent part's missing
  arrivals. An arrival at the reading's own instant is left out of the test
  (the request being served is certain to be there: no evidence of a rate).
  The threshold is a per-test p of 6e-5; with a dozen splits tested at every
  reading, a steady load still restarts the window 0-3 times in 10 minutes
  (measured in the benchmark), each time costing some precision for a while.

What it does not do: it weighs every arrival alike inside the window, so a
ramp is read late (a 9x linear ramp over 60 s reads 16 % low, median; over
300 s, 6 % low); a step from a very low real rate (0.25 arrivals/s) takes
~9.5 s to read within 20 %, because a handful of arrivals is all there is
to go on; and the estimate's remaining noise still costs something at high
load, where the M/M/c wait is steep: see the benchmark's ``oracle`` rows
(the model given the true rate).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from typing import Protocol


class RateEstimator(Protocol):
    """What the capacity model needs of an arrival-rate estimate (a benchmark swaps in others)."""

    def admit(self, t: float, units: float) -> None: ...

    def rate(self, now: float) -> float: ...

    def relative_error(self, now: float) -> float:
        """The estimate's relative standard error at ``now`` (0 for an exact rate)."""
        ...


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * math.log(y)


def rate_change_statistic(older: int, older_seconds: float, recent: int, recent_seconds: float) -> float:
    """Likelihood-ratio statistic (chi-square, 1 df under no change) that two Poisson counts have different rates.

    Given n = older + recent arrivals, the recent count is Binomial(n, recent_seconds / total) when the
    rate did not change; the statistic compares that with each part's own rate.
    """
    n = older + recent
    total = older_seconds + recent_seconds
    if n == 0 or older_seconds <= 0 or recent_seconds <= 0:
        return 0.0
    return 2.0 * (_xlogy(older, older * total / (n * older_seconds)) + _xlogy(recent, recent * total / (n * recent_seconds)))


class ArrivalRateEstimator:
    """Work units per second arriving, from timestamped arrivals (see the module docstring)."""

    ARRIVALS = 200  # N: the window's arrivals; relative error ~ 1/sqrt(N)
    MIN_WINDOW = 1.0  # seconds; also the shortest split age, so a restarted window is never shorter
    MAX_WINDOW = 60.0  # seconds; at the lowest real rates the window stops growing here
    SPLIT_AGES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0)
    MIN_OLDER_SECONDS = 1.0  # the older part of a split must span this much to be compared
    CHANGE_LR = 16.0  # P(chi2_1 > 16) = 6e-5 per test

    def __init__(self, started: float) -> None:
        self.started = started
        self.cut = -math.inf  # arrivals at or before this were before a detected change
        self.restarts = 0  # detected changes (window restarts), for benchmarks and the state endpoint
        self._times: deque[float] = deque()
        self._units: deque[float] = deque()
        self._total = 0.0  # units in _units
        self._memo: tuple[float, float] | None = None  # (now, rate) until the next arrival
        self._counted = 0  # arrivals in the window of the last reading

    def admit(self, t: float, units: float) -> None:
        """One real arrival at ``t`` (non-decreasing) carrying ``units`` work units."""
        self._times.append(t)
        self._units.append(units)
        self._total += units
        self._memo = None

    def rate(self, now: float) -> float:
        """The arrival rate (units/s) at ``now``; may restart the window when the rate has changed."""
        if self._memo is not None and self._memo[0] == now:
            return self._memo[1]
        self._forget(now)
        start, first = self._window(now)
        split = self._change_point(now, start, first)
        if split is not None:
            self.cut = split
            self.restarts += 1
            self._forget(now)
            start, first = self._window(now)
        units = self._total - sum(self._units[i] for i in range(first))
        value = max(0.0, units) / max(self.MIN_WINDOW, now - start)
        self._memo = (now, value)
        self._counted = len(self._times) - first
        return value

    def relative_error(self, now: float) -> float:
        """1/sqrt(arrivals in the window): a Poisson count's relative standard error (1 with none)."""
        self.rate(now)
        return 1.0 / math.sqrt(max(1, self._counted))

    def _forget(self, now: float) -> None:
        """Drop arrivals before the window can reach: older than MAX_WINDOW, the start, a change, or the N-th newest."""
        lower = max(self.started, now - self.MAX_WINDOW)
        times, units = self._times, self._units
        while times and (times[0] < lower or times[0] <= self.cut):
            times.popleft()
            self._total -= units.popleft()
        # Keep one more than N (the N-th newest bounds the window) unless the MIN_WINDOW holds more.
        while len(times) > self.ARRIVALS and times[1] <= now - self.MIN_WINDOW:
            times.popleft()
            self._total -= units.popleft()
        if not times:
            self._total = 0.0  # no float drift across an idle spell

    def _window(self, now: float) -> tuple[float, int]:
        """(window start, index of the first arrival counted in it)."""
        lower = max(self.started, now - self.MAX_WINDOW, self.cut)
        times = self._times
        if len(times) >= self.ARRIVALS and times[0] <= now - self.MIN_WINDOW:
            return times[0], 1  # the N-th newest arrival bounds the window and is not counted in it
        if len(times) >= self.ARRIVALS:
            return max(lower, now - self.MIN_WINDOW), 0  # more than N in the last MIN_WINDOW seconds
        return lower, 0

    def _change_point(self, now: float, start: float, first: int) -> float | None:
        """The split time whose two parts' rates differ most, if significantly; None otherwise."""
        times = self._times
        best, best_lr = None, self.CHANGE_LR
        for age in self.SPLIT_AGES:
            older_seconds = now - age - start
            if older_seconds < self.MIN_OLDER_SECONDS:
                break
            split = now - age
            cut_index = bisect_right(times, split)  # deque supports the sequence protocol bisect needs
            older = cut_index - first
            # An arrival at ``now`` is the reader itself (the request being served): it is certain to be
            # there, so it is no evidence about the rate (Palm); counting it inflated short splits.
            recent = bisect_left(times, now) - cut_index
            lr = rate_change_statistic(older, older_seconds, recent, age)
            if lr > best_lr:
                best, best_lr = split, lr
        return best
