"""river's HalfSpaceTrees over shingled windows, wired as an SRE would.

HalfSpaceTrees needs features in [0, 1]: a river ``MinMaxScaler`` (running
min/max) feeds it the last ``shingle`` values as one feature vector, so a
sample is judged together with its recent context. It is the off-the-shelf
baseline of the issue (~330 samples/s with 25 trees): good to compare with,
too slow to sit on ``auto``'s per-sample path.
"""

from __future__ import annotations

from collections import deque

from river import anomaly, preprocessing


class HalfSpaceTreesDetector:
    """``score_one`` = river's HalfSpaceTrees score of the current shingle (0 until it is full)."""

    name = "half_space_trees"

    def __init__(
        self, shingle: int = 4, n_trees: int = 25, height: int = 8, window_size: int = 250, seed: int = 42
    ) -> None:
        self._shingle: deque[float] = deque(maxlen=shingle)
        self._size = shingle
        self._scaler = preprocessing.MinMaxScaler()
        self._model = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)

    def _features(self, x: float) -> dict[str, float] | None:
        window = [*list(self._shingle)[1:], x] if len(self._shingle) == self._size else [*self._shingle, x]
        if len(window) < self._size:
            return None
        return {f"x{i}": v for i, v in enumerate(window)}

    def score_one(self, x: float) -> float:
        features = self._features(x)
        if features is None:
            return 0.0
        scaled = self._scaler.transform_one(features)
        return float(min(1.0, max(0.0, self._model.score_one(scaled))))

    def learn_one(self, x: float) -> None:
        features = self._features(x)
        self._shingle.append(x)
        if features is None:
            return
        self._scaler.learn_one(features)
        self._model.learn_one(self._scaler.transform_one(features))
