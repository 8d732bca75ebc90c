"""Context novelty: has the stream ever shown this short pattern of levels before?

Values are quantised into ``levels`` bins over the range seen so far and the
last ``order`` bins form a context. A context never seen before scores 1, a
rare one scores in between, a familiar one 0. This catches what a z-score
cannot: a daily peak that fails to appear, a flat line where the stream
normally wiggles, a new rhythm, the family of anomalies that the contextual
detectors of the NAB scoreboard (CAD OSE) are good at. The table of seen
contexts is capped so per-workload state stays small.
"""

from __future__ import annotations

import math
from collections import deque


class ContextNoveltyDetector:
    """Count-based novelty of the (last ``order`` quantised levels) context."""

    name = "context_novelty"
    __slots__ = (
        "_counts",
        "_hi",
        "_levels",
        "_lo",
        "_max_contexts",
        "_n",
        "_order",
        "_prefix",
        "_recent",
        "_transition",
        "_warmup",
    )

    def __init__(
        self, levels: int = 12, order: int = 3, max_contexts: int = 4096, warmup: int = 50, transition: bool = False
    ) -> None:
        self._transition = transition
        self._prefix: dict[tuple[int, ...], int] = {}
        self._levels = levels
        self._order = order
        self._max_contexts = max_contexts
        self._warmup = warmup
        self._counts: dict[tuple[int, ...], int] = {}
        self._recent: deque[int] = deque(maxlen=order - 1)
        self._lo = math.inf
        self._hi = -math.inf
        self._n = 0

    def _bin(self, x: float) -> int:
        span = self._hi - self._lo
        if span <= 0.0:
            return 0 if x == self._lo else (-1 if x < self._lo else self._levels)
        # outside the range seen so far: one bin of its own below / above (symmetrically)
        if x < self._lo:
            return -1
        if x > self._hi:
            return self._levels
        b = int((x - self._lo) / span * self._levels)
        return b if b < self._levels else self._levels - 1

    def _context(self, x: float) -> tuple[int, ...]:
        return (*self._recent, self._bin(x))

    def context_key(self, x: float) -> tuple[int, ...] | None:
        """The quantised context ending in ``x`` (None until warmed up and ``order`` samples long)."""
        if self._n < self._warmup or len(self._recent) < self._order - 1:
            return None
        return self._context(x)

    def familiarity(self, x: float) -> int:
        """How often the context ending in ``x`` occurred before (0 = never, or still warming up)."""
        if self._n < self._warmup:
            return 0
        return self._counts.get(self._context(x), 0)

    def score_one(self, x: float) -> float:
        if self._n < self._warmup:
            return 0.0
        key = self._context(x)
        count = self._counts.get(key, 0)
        if not self._transition:
            return 1.0 / (1.0 + count)
        # sequence surprise: 1 - P(this level | the previous levels), as HTM's raw score
        seen = self._prefix.get(key[:-1], 0)
        return 1.0 - count / seen if seen else 1.0

    def learn_one(self, x: float) -> None:
        self._n += 1
        if x < self._lo:
            self._lo = x
        if x > self._hi:
            self._hi = x
        key = self._context(x)
        counts = self._counts
        if len(self._recent) == self._order - 1:
            if key not in counts and len(counts) >= self._max_contexts:
                counts.clear()  # rare: forget everything rather than grow without bound
                self._prefix.clear()
            counts[key] = counts.get(key, 0) + 1
            prefix = key[:-1]
            self._prefix[prefix] = self._prefix.get(prefix, 0) + 1
        self._recent.append(key[-1])
