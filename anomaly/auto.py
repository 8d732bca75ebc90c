"""``auto``: several cheap views of surprise, each calibrated by an anomaly likelihood, combined.

Why a combination: each view misses a family of anomalies. The robust z-score
sees level excursions, the forecast residual sees sudden breaks in the local
trend, the context novelty sees shapes that never occurred, the seasonal
residual sees a cycle that fails to repeat (a missing daily peak). Raw scores
are not comparable across views or streams, so each goes through its own
:class:`AnomalyLikelihood` first (a probability on one scale), and the
combination is the strongest view.

Why a familiarity discount: many streams have recurring "surprises" (a nightly
batch job, a spike every 100 samples). A surprise of the same size at the same
quantised shape of the recent values (the context-novelty view's context plus
the residual's z-score bin: 2, 4, 8, 16 sigma) that has occurred n times
before is divided by (1 + n) before calibration: the first time it is news,
the tenth time it is the stream's habit.

Why a refractory period: an anomaly is an event, not a run of samples. After
an alarm the likelihood score is damped for ``refractory`` samples so one
event raises one alarm, not a burst (the NAB rules charge every extra alarm as
a false positive, and so do people on call). Its length is in samples, the
same for every stream.

Why a new-extreme rule: a value beyond everything seen so far (by more than
``range_tolerance`` of the range) scores at least ``range_floor``, rising to 1
for an excursion of half the range, as in Numenta's NAB HTM detector
("spatial anomaly"): the likelihood layer smooths over ten samples and would
otherwise be late for the clearest anomalies. It is not damped: a second,
larger excursion is news even during a refractory period.

Defaults were chosen on the 41-file NAB dev split with one setting for every
file, preferring the middle of flat regions over isolated peaks; the benchmark
reports leave-one-category-out scores to show how much the result leans on any
one category (benchmarks/results/anomaly.json).

Plain Python arithmetic per sample; the seasonal view re-estimates its period
with one FFT every 250 samples.
"""

from __future__ import annotations

from careplane.anomaly.base import Detector
from careplane.anomaly.context import ContextNoveltyDetector
from careplane.anomaly.likelihood import AnomalyLikelihood
from careplane.anomaly.residual import ForecastResidualDetector
from careplane.anomaly.seasonal import SeasonalResidualDetector
from careplane.anomaly.zscore import RobustZScoreDetector

MAX_FAMILIAR = 4096  # cap on the familiarity table (per stream)


def default_views(residual: ForecastResidualDetector | None = None, seasonal_history: int = 3000) -> list[Detector]:
    """``auto``'s views; ``residual`` replaces the built-in forecast-residual view (for example
    one driven by a ``careplane.forecasting`` model)."""
    return [
        RobustZScoreDetector(half_life=200.0),
        residual if residual is not None else ForecastResidualDetector(),
        ContextNoveltyDetector(levels=7),
        SeasonalResidualDetector(history=seasonal_history, max_period=seasonal_history // 2),
    ]


class AutoDetector:
    """Max over views of their log-likelihood scores, with a familiarity discount, a refractory
    period after alarms and a new-extreme rule. Scores are on NAB's log-likelihood scale."""

    name = "auto"

    def __init__(
        self,
        views: list[Detector] | None = None,
        short_window: int = 10,
        long_half_life: float = 500.0,
        learning: int = 300,
        min_std: float = 0.02,
        refractory: int = 150,
        alarm_level: float = 0.5,
        damping: float = 0.3,
        range_tolerance: float | None = 0.05,
        range_warmup: int = 150,
        range_floor: float = 0.6,
        familiarity_discount: float = 1.0,
        z_edges: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0),
        seasonal_history: int = 3000,
    ) -> None:
        self.views: list[Detector] = views if views is not None else default_views(seasonal_history=seasonal_history)
        self._lik = [AnomalyLikelihood(short_window, long_half_life, learning, min_std) for _ in self.views]
        self._refractory = refractory
        self._alarm = alarm_level
        self._damping = damping
        self._since_alarm = refractory
        self._tolerance = range_tolerance
        self._range_warmup = range_warmup
        self._range_floor = range_floor
        self._discount = familiarity_discount
        self._z_edges = z_edges
        self._context = next((v for v in self.views if isinstance(v, ContextNoveltyDetector)), None)
        self._residual = next((v for v in self.views if isinstance(v, ForecastResidualDetector)), None)
        self._familiar: dict[tuple[int, ...], int] = {}
        self._pending: tuple[float, list[float], float, tuple[int, ...] | None] | None = None
        self._lo = float("inf")
        self._hi = float("-inf")
        self._n = 0

    def _key(self, x: float) -> tuple[int, ...] | None:
        """Familiarity key: the quantised context ending in ``x`` plus the residual's z-score bin."""
        if not self._discount or self._context is None or self._residual is None:
            return None
        key = self._context.context_key(x)
        if key is None:
            return None
        z = abs(self._residual.zscore(x))
        zbin = 0
        for edge in self._z_edges:
            if z < edge:
                break
            zbin += 1
        return (*key, zbin)

    def _score(self, x: float) -> tuple[list[float], float, tuple[int, ...] | None]:
        raws = [view.score_one(x) for view in self.views]
        key = self._key(x)
        if key is not None:
            count = self._familiar.get(key, 0)
            if count:
                factor = (1.0 + count) ** -self._discount
                context = self._context
                raws = [r if v is context else r * factor for v, r in zip(self.views, raws, strict=True)]
        best = 0.0
        for lik, raw in zip(self._lik, raws, strict=True):
            s = AnomalyLikelihood.log_score(lik.peek(raw))
            if s > best:
                best = s
        if self._since_alarm < self._refractory:
            best *= self._damping
        tol = self._tolerance
        if tol is not None and self._n >= self._range_warmup:
            span = self._hi - self._lo
            excess = x - self._hi - tol * span if x > self._hi else self._lo - tol * span - x
            if excess > 0.0:
                floor = self._range_floor
                spatial = floor + (1.0 - floor) * min(1.0, excess / (0.5 * span)) if span > 0.0 else 1.0
                if spatial > best:
                    best = spatial
        return raws, best, key

    def score_one(self, x: float) -> float:
        raws, score, key = self._score(x)
        self._pending = (x, raws, score, key)
        return score

    def learn_one(self, x: float) -> None:
        pending = self._pending
        raws, score, key = (
            (pending[1], pending[2], pending[3]) if pending is not None and pending[0] == x else self._score(x)
        )
        self._pending = None
        if key is not None:
            familiar = self._familiar
            if key not in familiar and len(familiar) >= MAX_FAMILIAR:
                familiar.clear()  # rare: forget rather than grow without bound
            familiar[key] = familiar.get(key, 0) + 1
        for lik, raw in zip(self._lik, raws, strict=True):
            lik.update(raw)
        for view in self.views:
            view.learn_one(x)
        self._since_alarm = 0 if score >= self._alarm else self._since_alarm + 1
        self._n += 1
        if x < self._lo:
            self._lo = x
        if x > self._hi:
            self._hi = x

    @staticmethod
    def probability(score: float) -> float:
        """The anomaly probability behind a score (scores are on NAB's log-likelihood scale)."""
        return AnomalyLikelihood.probability(score)

    def update(self, x: float) -> float:
        """Score then learn ``x`` (the usual streaming call); returns the score."""
        score = self.score_one(x)
        self.learn_one(x)
        return score
