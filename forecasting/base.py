"""The one shape every forecaster has (river's: one cheap update per sample).

Why a protocol and not a base class: models wrap very different libraries
(statsmodels, scikit-learn, river, plain numpy); what the decision core, the
backtest and the operator rely on is only this surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Forecast:
    """Forecasts for the next ``len(mean)`` steps after the last learned sample.

    ``lower`` / ``upper`` are the ``(1 - quantile)`` and ``quantile`` quantiles of
    the predictive distribution at each step (a central interval of coverage
    ``2 * quantile - 1``; ``upper`` alone is what capacity is provisioned for).
    """

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    quantile: float


@runtime_checkable
class Forecaster(Protocol):
    """A demand forecaster on a fixed step.

    * ``fit(times, values)`` – bulk start from history (values may hold NaN gaps);
    * ``learn_one(t, y)`` – one new sample; ``y`` may be NaN (a gap, never a zero);
    * ``forecast(steps, quantile)`` – the next ``steps`` steps.
    """

    name: str

    def fit(self, times: np.ndarray, values: np.ndarray) -> None: ...

    def learn_one(self, t: float, y: float) -> None: ...

    def forecast(self, steps: int, quantile: float = 0.9) -> Forecast: ...
