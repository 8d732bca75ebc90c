"""The recurring-peak bound: what demand did in this provisioning window on past days.

Why a second bound beside the forecaster's: capacity asked now is bought for the
highest demand over [now, now + podStartupSeconds + horizon]. A short event that
recurs at the same time every season (a vaccination clinic opening its booking
at 09:00, a nightly batch import) is exactly what that window must anticipate,
and exactly what a forecaster tuned on the whole season smooths away: a
20-minute spike is 1.4 % of a day, so the ``auto`` model's rolling error over
the day barely notices it and the window calibrator's q0.9 of excesses ignores
an event that happens 1.4 % of the time (measured in the sandbox showcase: a
forecast upper bound of ~320 req/s against a recurring 540 req/s spike).

The method: for the shortest declared seasonality ``P`` longer than the window
(so "the same window one season ago" is in the past), look at that same window
on each of the last ``K`` seasons and at the demand just before it (the *base*:
the peak of the window-long stretch of complete buckets before now, shifted by
whole seasons: a maximum against a maximum over as many buckets, so noise alone
rises by nothing on average). Each past season ``d`` gives a rise
``peak_d - base_d``; the bound is

    today's base + median_d(rise_d)

"at least half of the past seasons rose at least this much in this window". The
rise, not the absolute peak: a season whose level differs (a weekend, a growing
service) carries its *event* over, not its level. The median, not the maximum:
a one-off spike on one past day moves the median of ``K >= 3`` rises not at all,
so a recurring event is anticipated and a one-off is not. And only a rise the
seasons agree on counts (``recurring``: the median significantly above zero
against the rises' spread), so ordinary windows of a noisy series add nothing to
the forecast's bound. With fewer than ``MIN_SEASONS`` seasons that have data in
the window, or no agreed rise, nothing is said (None).

Storage: the demand is max-pooled into buckets of about ``window / 16`` (at least
one step and about ``P / 2880``, a whole number of steps), a ring of float32
holding ``K`` seasons plus two windows: ``bytes_per_policy``. For the FHIR example
(15 s steps, 990 s window, daily season, K = 7: 60 s buckets) that is 40 KB, so
1,000 policies fit in 40 MB. Max pooling over-estimates a window's peak by at
most one bucket at each edge (the window is widened, never narrowed), and it
is what the bound needs: only maxima over windows are ever read.

Gaps are never read as zero: an empty bucket is NaN, a season with no data in
the window (or no base) is left out of the median, and a gap in today's base
says nothing. Causal: only samples already observed are stored.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np

from careplane.decision.types import Observations, RecurringPeak
from careplane.policy import ScalingPolicySpec

# the past seasons looked at (a week of days: weekday and weekend both vote)
DEFAULT_SEASONS = 7
# fewer seasons with data in the window than this: nothing is said (two can be one coincidence and one event)
MIN_SEASONS = 3
# standard errors of the median rise above zero that make a rise recurring (see ``recurring``)
SIGNIFICANCE = 3.0
# a window is resolved into at least this many buckets (the edge error is at most 1/16 of it per side)
WINDOW_BUCKETS = 16
# a season is stored in at most this many buckets (bounds the memory of short windows: 30 s on a day)
MAX_SEASON_BUCKETS = 2880


def season_for(window_seconds: float, seasonalities: Sequence[float]) -> float | None:
    """The shortest declared seasonality longer than the window (None: no such season)."""
    longer = [float(s) for s in seasonalities if float(s) > window_seconds]
    return min(longer) if longer else None


def _bucket_seconds(wanted: float, step: float, season: float) -> float:
    """About ``wanted``: a whole number of steps that divides the season when there is one (every bucket then
    pools the same number of samples), else the season's whole-number division nearest above ``wanted``."""
    first = max(1, round(wanted / step))
    for m in range(first, 2 * first + 1):
        if abs(season / (step * m) - round(season / (step * m))) < 1e-9:
            return step * m
    return season / max(1, math.floor(season / wanted + 1e-9))


def recurring(rises: list[float], median: float) -> bool:
    """Whether the past seasons agree on a rise: the median rise is significantly above zero.

    A one-sided test of the median against the day-to-day spread of the rises: the
    median's standard error is about ``1.2533 sigma / sqrt(n)`` (normal samples) and
    ``sigma`` is estimated robustly by ``1.4826 x MAD``; the median must exceed
    ``SIGNIFICANCE`` standard errors. Why: without it every window of a noisy series
    has a small median "rise" (a window's maximum over several buckets exceeds one
    base stretch by chance half the time), and that noise-level bound, max-ed with the
    forecast's, buys capacity no event asked for (measured on the NASA benchmark at
    1-minute steps with a one-bucket base and no test: at HPA-0.7's cost 0.979 % of
    minutes violated instead of 0.959 %). A
    recurring event agrees across seasons (a MAD near zero against a large median);
    a one-off or noise does not. Majorities count: the MAD of five equal rises and
    two zeros is zero.
    """
    deviations = sorted(abs(r - median) for r in rises)
    mad = statistics.median(deviations)
    standard_error = 1.2533 * 1.4826 * mad / math.sqrt(len(rises))
    return median > SIGNIFICANCE * standard_error and median > 0.0


class RecurrenceBound:
    """Max-pooled demand of the last ``seasons`` seasons and the recurring-peak bound over a window."""

    def __init__(
        self,
        *,
        step_seconds: float,
        window_seconds: float,
        season_seconds: float,
        seasons: int = DEFAULT_SEASONS,
        min_seasons: int = MIN_SEASONS,
    ) -> None:
        if not (step_seconds > 0 and window_seconds > 0 and season_seconds > window_seconds):
            raise ValueError(
                f"need step > 0 and season > window > 0, got {step_seconds}, {window_seconds}, {season_seconds}"
            )
        wanted = max(step_seconds, window_seconds / WINDOW_BUCKETS, season_seconds / MAX_SEASON_BUCKETS)
        self.bucket = _bucket_seconds(wanted, step_seconds, season_seconds)
        self.season_buckets = max(1, round(season_seconds / self.bucket))
        self.bucket = season_seconds / self.season_buckets  # a season is a whole number of buckets
        self.season = float(season_seconds)
        self.seasons = int(seasons)
        self.min_seasons = int(min_seasons)
        self.window = float(window_seconds)
        # K seasons back from the window's end, plus the window and the window-long base before it
        self.size = self.seasons * self.season_buckets + 2 * (math.ceil(self.window / self.bucket) + 2)
        self._ring = np.full(self.size, np.nan, dtype=np.float32)
        self._last: int | None = None  # newest bucket index written (absolute: floor(t / bucket))
        self._shifts = self.season_buckets * np.arange(1, self.seasons + 1, dtype=np.int64)
        self._cache_key: tuple[int, int, int, int] | None = None
        self._cached: RecurringPeak | None = None

    @property
    def bytes_per_policy(self) -> int:
        return int(self._ring.nbytes)

    def _bucket(self, t: float) -> int:
        return math.floor(t / self.bucket + 1e-9)

    def _advance(self, index: int) -> None:
        """Clear the slots between the newest bucket and ``index`` (they held data a ring ago)."""
        if self._last is None or index - self._last >= self.size:
            if self._last is not None:
                self._ring[:] = np.nan
        elif index > self._last:
            slots = np.arange(self._last + 1, index + 1) % self.size
            self._ring[slots] = np.nan
        if self._last is None or index > self._last:
            self._last = index

    def observe(self, t: float, value: float | None) -> None:
        """Learn the demand sample measured at ``t`` (None or NaN: a gap, stored as nothing)."""
        index = self._bucket(t)
        if self._last is not None and index <= self._last - self.size:
            return  # older than the ring holds
        self._advance(index)
        if value is None or not math.isfinite(value) or value < 0:
            return
        if index < self._last:  # type: ignore[operator]  # a late sample changes a bucket the cache may hold
            self._cache_key = None
        slot = index % self.size
        old = self._ring[slot]
        if not old >= value:  # NaN or lower
            self._ring[slot] = value

    def extend(self, times: np.ndarray, values: np.ndarray) -> None:
        """Learn many samples at once (a rebuild from history): the same ring as observing them one by one."""
        times = np.asarray(times, dtype=float)
        values = np.asarray(values, dtype=float)
        if len(times) == 0:
            return
        index = np.floor(times / self.bucket + 1e-9).astype(np.int64)
        newest = int(index.max())
        self._advance(newest)
        self._cache_key = None
        keep = (index > newest - self.size) & np.isfinite(values) & (values >= 0)
        slots = index[keep] % self.size
        np.fmax.at(self._ring, slots, values[keep].astype(np.float32))

    def bound(self, start: float, end: float, base_time: float) -> RecurringPeak | None:
        """The recurring-peak bound over [start, end]; the base is the window-long stretch of complete
        buckets before ``base_time``'s (the newest sample's), today and on each past season."""
        if self._last is None:
            return None
        first, last = self._bucket(start), self._bucket(end)
        width = last - first + 1
        base_last = self._bucket(base_time) - 1
        base_first = base_last - width + 1
        if base_last > self._last or base_first <= self._last - self.size:
            return None
        key = (first, last, base_last, self._last)
        if key == self._cache_key and base_last < self._last and last - self.season_buckets < self._last:
            return self._cached  # nothing it reads has changed (the newest, still filling bucket is not read)
        self._cache_key = key
        self._cached = None
        base_cols = np.arange(base_first, base_last + 1)
        today_base = self._ring[base_cols % self.size]
        if not np.isfinite(today_base).any():
            return None
        today = float(np.fmax.reduce(today_base))
        shifts = self._shifts[(base_first - self._shifts > self._last - self.size) & (last - self._shifts <= self._last)]
        # rows: past seasons; columns: the base stretch, then the window (one gather, no Python loop)
        columns = np.concatenate((base_cols, np.arange(first, last + 1)))
        grid = self._ring[(columns[None, :] - shifts[:, None]) % self.size]
        past_base, peak = np.fmax.reduce(grid[:, :width], axis=1), np.fmax.reduce(grid[:, width:], axis=1)
        ok = np.isfinite(past_base) & np.isfinite(peak)
        rises = (peak[ok].astype(float) - past_base[ok]).tolist()
        self._cached = self._result(today, rises)
        return self._cached

    def _result(self, today: float, rises: list[float]) -> RecurringPeak | None:
        if len(rises) < self.min_seasons:
            return None
        rise = statistics.median(rises)  # a handful of values: the stdlib's is 10x faster than numpy's here
        if not recurring(rises, rise):
            return None
        return RecurringPeak(
            peak=max(0.0, today + rise),
            rise=rise,
            agreeing=sum(r >= rise - 1e-9 for r in rises),
            seasons=len(rises),
            season_seconds=self.season,
        )


def recurring_note(policy: ScalingPolicySpec, obs: Observations) -> str | None:
    """The explanation's remark when the recurring peak, not the forecaster, set the forecast's upper bound."""
    forecast = obs.forecast if policy.forecast.enabled else None
    if forecast is None or forecast.recurring is None or forecast.model_upper is None:
        return None
    if not forecast.recurring.peak > forecast.model_upper:
        return None
    return f"{forecast.recurring.describe()} (the model's bound: {forecast.model_upper:.3g} req/s)"
