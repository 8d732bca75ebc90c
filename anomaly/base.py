"""The one shape every anomaly detector has (river's ``learn_one`` / ``score_one``).

``score_one(x)`` scores ``x`` against what was learned *before* it (causal) and
returns a value in [0, 1]; ``learn_one(x)`` then adds it. Missing samples are
never passed in: callers skip them (a gap is unknown, not zero).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Detector(Protocol):
    name: str

    def learn_one(self, x: float) -> None: ...

    def score_one(self, x: float) -> float: ...
