"""A bounded, fixed-step sample history shared by every forecaster.

Why one class: every model needs the same two views of the past — ``raw``
(NaN where the sample was missing, so gaps are never scored or trained on as
zeros) and ``filled`` (gaps imputed, so lag features always exist). Keeping
them here makes the gap rule identical for all models.

Positions are buffer positions; ``offset + position`` is the absolute slot
index since the first sample. The buffer keeps at most ``2 * capacity`` slots
and drops the oldest half when full (amortised O(1) appends).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class History:
    """Raw and gap-filled values on a fixed step, newest last."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(16, int(capacity))
        self.raw = np.empty(2 * self.capacity)
        self.filled = np.empty(2 * self.capacity)
        self.end = 0  # valid positions are [0, end)
        self.offset = 0  # absolute slot index of position 0

    @property
    def next_index(self) -> int:
        """Absolute slot index the next appended sample gets."""
        return self.offset + self.end

    def append(self, raw: float, filled: float) -> None:
        if self.end == self.raw.shape[0]:
            self._compact()
        self.raw[self.end] = raw
        self.filled[self.end] = filled
        self.end += 1

    def load(self, raw: np.ndarray, filled: np.ndarray) -> None:
        """Replace the content by a bulk history (oldest first)."""
        keep = min(len(raw), self.capacity)
        size = max(2 * self.capacity, keep + 1)
        self.raw = np.empty(size)
        self.filled = np.empty(size)
        self.raw[:keep] = raw[len(raw) - keep :]
        self.filled[:keep] = filled[len(filled) - keep :]
        self.offset = len(raw) - keep
        self.end = keep

    def _compact(self) -> None:
        keep = self.capacity
        drop = self.end - keep
        self.raw[:keep] = self.raw[drop : self.end]
        self.filled[:keep] = self.filled[drop : self.end]
        self.offset += drop
        self.end = keep

    def raw_view(self) -> np.ndarray:
        return self.raw[: self.end]

    def filled_view(self) -> np.ndarray:
        return self.filled[: self.end]


def fill_gaps(values: np.ndarray, season: int | None, short_gap: int = 2) -> np.ndarray:
    """Impute NaN gaps of a bulk history: short runs (<= ``short_gap``) linearly, long ones from the
    same phase one season back, anything left linearly.

    Why seasonal first: long outages (the NASA trace loses days) interpolated
    linearly would flatten a whole cycle and poison the seasonal lags a week later.
    An all-NaN history stays NaN (nothing is known; callers forecast NaN).
    """
    out = np.asarray(values, dtype=float).copy()
    missing = np.isnan(out)
    if not missing.any() or missing.all():
        return out
    series = pd.Series(out)
    runs = series.isna().groupby(series.notna().cumsum()).transform("sum").to_numpy()
    short = missing & (runs <= short_gap)
    if short.any():
        interpolated = series.interpolate(limit_direction="both").to_numpy(dtype=float)
        out[short] = interpolated[short]
    if season is not None and season >= 2 and len(out) > season:
        for i in np.flatnonzero(np.isnan(out)):
            if i >= season and not np.isnan(out[i - season]):
                out[i] = out[i - season]
    if np.isnan(out).any():
        out = pd.Series(out).interpolate(limit_direction="both").to_numpy(dtype=float)
    return out
