"""Which of auto's candidates may stop forecasting for a while: the ones that are clearly out.

Why: most of auto's per-sample cost is its candidates' forecasts, and on most
series some candidates are never used: their rolling error (and their
bias-corrected twin's) stays far above the best, so they get no blend weight
and are never picked. A candidate that has been clearly out (error above
RATIO x the best at every horizon, no weight, not chosen) for a while
goes dormant: auto stops asking it for forecasts and
freezes its error record. It keeps learning every sample (its state, if any,
stays current), so it can come back at once. After a sleep it wakes with its
record restored and is scored again (probation: it has to stay clearly out
for as long again before it sleeps again), so the choice still follows the
data; a model that became good again is back in the blend within one sleep.
Durations follow auto's error memory (see ``Dormancy``).

While a candidate sleeps, auto's arrays keep its columns (the per-step
arithmetic stays one vectorised operation over all of them) but their
contents are meaningless: selections mask them, and waking restores the
record saved when it fell asleep.
"""

from __future__ import annotations

import numpy as np

RATIO = 2.0  # clearly out: rolling MSE above RATIO x the best at every horizon (the blend takes models within 1.25)


class Dormancy:
    """Sleep/wake bookkeeping for ``n`` candidates whose columns are ``i`` (raw) and ``i + n`` (twin) among ``2 n + 1``."""

    def __init__(self, n: int, *, memory: int) -> None:
        """``memory``: the error record's half-life in selections. Nothing sleeps before the record
        holds two half-lives (early errors say little); a candidate sleeps after being clearly out
        for half a half-life, and sleeps one half-life."""
        self.n = n
        self.warmup = 2 * memory
        self.after = max(2, memory // 2)
        self.sleep = max(2, memory)
        self.asleep = np.zeros(n, dtype=bool)
        self.idle = np.zeros(n, dtype=np.int64)
        self.wake_at = np.zeros(n, dtype=np.int64)
        self.selections = 0
        self.masked_columns = np.zeros(2 * n + 1, dtype=bool)  # columns of sleeping candidates
        self._saved: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def awake(self) -> list[int]:
        """Indices of the candidates to ask for forecasts."""
        return [i for i in range(self.n) if not self.asleep[i]]

    def wake_due(self, sums: np.ndarray, bias_acc: np.ndarray, pred: np.ndarray) -> bool:
        """At the start of a selection: wake the candidates whose sleep is over. True if any woke."""
        self.selections += 1
        if not self.asleep.any():  # (the usual case: nobody to wake)
            return False
        due = [i for i in range(self.n) if self.asleep[i] and self.selections >= self.wake_at[i]]
        for i in due:
            self._wake(i, sums, bias_acc, pred)
        return bool(due)

    def wake_all(self, sums: np.ndarray, bias_acc: np.ndarray, pred: np.ndarray) -> None:
        for i in range(self.n):
            if self.asleep[i]:
                self._wake(i, sums, bias_acc, pred)

    def _wake(self, i: int, sums: np.ndarray, bias_acc: np.ndarray, pred: np.ndarray) -> None:
        cols = [i, i + self.n]
        saved_sums, saved_bias = self._saved.pop(i)
        sums[:, :, cols] = saved_sums
        bias_acc[:, :, i] = saved_bias
        # forecasts filed while asleep are stale copies: not scored
        pred[:, :, cols] = np.nan
        self.asleep[i] = False
        self.idle[i] = 0
        self.masked_columns[cols] = False

    def after_selection(self, mse: np.ndarray, weights: np.ndarray, choice: np.ndarray, sums: np.ndarray, bias_acc: np.ndarray) -> bool:
        """Put to sleep the candidates clearly out for ``after`` selections. ``mse``: (horizons, 2 n + 1) with sleeping
        columns masked (NaN); ``weights``: (2 n, horizons) blend weights; ``choice``: column per horizon. True if any slept."""
        n = self.n
        best = np.fmin.reduce(mse, axis=1, initial=np.inf)  # (finite or NaN: a row of NaN gives inf)
        own = np.fmin(mse[:, :n], mse[:, n : 2 * n])  # each candidate's better column (raw or twin)
        # only once every horizon has errors: an unscored horizon falls back on a default column or equal weights
        tracked = np.isfinite(best)
        out = (own > RATIO * best[:, None]).all(axis=0) if tracked.all() else np.zeros(n, dtype=bool)  # (NaN compares False)
        used = (weights[:n] > 0).any(axis=1) | (weights[n : 2 * n] > 0).any(axis=1)
        chosen = np.zeros(2 * n + 1, dtype=bool)
        chosen[choice] = True
        used |= chosen[:n] | chosen[n : 2 * n]
        clear = out & ~used & ~self.asleep
        self.idle = np.where(clear, self.idle + 1, 0)
        if self.selections < self.warmup:
            return False
        falling = np.flatnonzero(self.idle >= self.after)
        for i in falling.tolist():
            cols = [i, i + n]
            self._saved[i] = (sums[:, :, cols].copy(), bias_acc[:, :, i].copy())
            self.asleep[i] = True
            self.wake_at[i] = self.selections + self.sleep
            self.masked_columns[cols] = True
        return bool(falling.size)
