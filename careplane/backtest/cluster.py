"""The simulated cluster of DESIGN.md's evaluation model: readiness delay, immediate removal.

A replica asked for at time t is ready at t + podStartupSeconds; removal is
immediate (and removes not-yet-ready replicas first, as a ReplicaSet deletes
unready pods first). Under those rules the ready count at a time is the
*minimum* of the replicas asked for over the last podStartupSeconds: a pod is
ready exactly when it has existed for the whole startup delay. That minimum is
kept over a sliding window with a monotonic deque (O(1) amortised per decision,
also for long startups on short sync periods).
"""

from __future__ import annotations

import math
from collections import deque


class Cluster:
    """Replicas asked for at each decision (sync) index and the ready count they give."""

    def __init__(self, initial: int, startup_syncs: int) -> None:
        self.startup = max(0, startup_syncs)
        self.index = -1
        # (sync index, replicas asked) increasing in replicas: the front is the window minimum.
        # The initial replicas count as asked at every sync before 0 (ready at the start).
        self._window: deque[tuple[int, int]] = deque([(-1, initial)])
        self.desired = initial

    @staticmethod
    def startup_syncs(startup_seconds: float, sync_seconds: float) -> int:
        """Syncs between asking for a pod and it serving: ceil(startup / sync)."""
        return max(0, math.ceil(startup_seconds / sync_seconds - 1e-9))

    def ready_before(self, index: int) -> int:
        """Ready replicas at sync ``index`` before its decision (what the controller sees)."""
        if self.startup == 0:
            return self.desired
        low = index - self.startup
        while len(self._window) > 1 and self._window[0][0] < low:
            self._window.popleft()
        return self._window[0][1]

    def ask(self, index: int, replicas: int) -> int:
        """Record the decision of sync ``index``; returns the ready count right after it."""
        while self._window and self._window[-1][1] >= replicas:
            self._window.pop()
        self._window.append((index, replicas))
        self.index = index
        self.desired = replicas
        if self.startup == 0:
            return replicas
        low = index - self.startup
        while len(self._window) > 1 and self._window[0][0] < low:
            self._window.popleft()
        return self._window[0][1]
