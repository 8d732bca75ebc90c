"""One workload's anomaly state across its signals, as the decision core sees it.

Signals are ``"demand"``, ``"latency"``, ``"errors"`` and ``"backend:<name>"``
(a routing backend's error rate). Each gets its own detector, created on its
first sample. ``None`` (or NaN) is a missing sample: the detector skips it and
that signal scores 0 for this update (a gap is unknown, never a zero, and not
evidence of an anomaly either).

Why one-sided for everything but demand: latency and error rates that *drop*
are good news; only rises are scored (a sample at or below the signal's recent
level scores 0). Demand is scored both ways (a sudden drop can mean an
upstream outage).

Scores are probabilities corrected for watching a stream continuously (see
``_probability``), so ``sensitivity`` means the same thing for every detector.

Why hysteresis: the decision core reacts to ``active``; it must not flap. An
anomaly starts when the combined probability reaches ``sensitivity`` and ends
only after it stays below ``exit_level`` for ``exit_samples`` updates in a row.
"""

from __future__ import annotations

from collections.abc import Mapping

from careplane.anomaly.base import Detector
from careplane.anomaly.registry import make_detector
from careplane.decision.types import AnomalySummary

ONE_SIDED_PREFIXES = ("latency", "errors", "backend:")


class _Signal:
    """A signal's detector plus the recent level used to make rises-only signals one-sided."""

    __slots__ = ("detector", "level", "one_sided", "seen")

    def __init__(self, detector: Detector, one_sided: bool) -> None:
        self.detector = detector
        self.one_sided = one_sided
        self.level = 0.0
        self.seen = 0


class WorkloadAnomalyMonitor:
    """Per-workload anomaly state: ``update(t, signals) -> AnomalySummary``."""

    def __init__(
        self,
        detector: str = "auto",
        sensitivity: float = 0.99,
        exit_level: float | None = None,
        exit_samples: int = 5,
        look_elsewhere: float = 100.0,
    ) -> None:
        self.detector = str(getattr(detector, "value", detector))
        make_detector(self.detector)  # fail fast on an unknown name
        self.look_elsewhere = look_elsewhere
        self.sensitivity = sensitivity
        # leave at a clearly lower probability than the one that started it
        self.exit_level = exit_level if exit_level is not None else 1.0 - 5.0 * (1.0 - sensitivity)
        self.exit_samples = exit_samples
        self._signals: dict[str, _Signal] = {}
        self._active = False
        self._since: float | None = None
        self._below = 0

    def _signal(self, name: str) -> _Signal:
        state = self._signals.get(name)
        if state is None:
            one_sided = name.startswith(ONE_SIDED_PREFIXES)
            # auto's refractory period, new-extreme rule and familiarity discount shape alarms
            # for NAB-style event scoring (one alarm per event). Here hysteresis does that
            # job, a sustained shift must stay visible until it has become the new normal,
            # and a slowly widening range of a noisy signal is no reason to page anyone.
            options: dict[str, object] = (
                {"refractory": 0, "range_tolerance": None, "familiarity_discount": 0.0}
                if self.detector == "auto"
                else {}
            )
            state = self._signals[name] = _Signal(make_detector(self.detector, **options), one_sided)
        return state

    def _probability(self, detector: Detector, score: float) -> float:
        """A detector's score as the probability that the signal is anomalous now.

        Likelihood-calibrated detectors (``auto``) give a tail probability L that
        is ~uniform on calm data, so L >= 0.99 would fire on 1% of samples. We
        correct for watching a stream continuously (Bonferroni over
        ``look_elsewhere`` samples): p = 1 - (1 - L) * look_elsewhere, so the
        default sensitivity 0.99 fires on ~1 calm sample in 10,000 per signal.
        """
        to_probability = getattr(detector, "probability", None)
        if not callable(to_probability):
            return score
        return max(0.0, 1.0 - (1.0 - float(to_probability(score))) * self.look_elsewhere)

    def update(self, t: float, signals: Mapping[str, float | None]) -> AnomalySummary:
        """Feed the samples observed at time ``t``; return the workload's anomaly state."""
        scores: dict[str, float] = {}
        for name, value in signals.items():
            if value is None or value != value:  # missing: skipped, scores 0
                scores[name] = 0.0
                continue
            state = self._signal(name)
            x = float(value)
            raw = state.detector.score_one(x)
            state.detector.learn_one(x)
            p = self._probability(state.detector, raw)
            if state.one_sided and state.seen and x <= state.level:
                p = 0.0
            state.seen += 1
            # slow baseline (half-life ~70 samples): a sustained rise stays a rise for a while
            state.level += (x - state.level) / min(state.seen, 100)
            scores[name] = min(1.0, max(0.0, p))
        signal = max(scores, key=scores.__getitem__) if scores else None
        score = scores[signal] if signal is not None else 0.0
        if not self._active:
            if score >= self.sensitivity:
                self._active, self._since, self._below = True, t, 0
        elif score < self.exit_level:
            self._below += 1
            if self._below >= self.exit_samples:
                self._active, self._since, self._below = False, None, 0
        else:
            self._below = 0
        return AnomalySummary(
            score=score,
            active=self._active,
            signal=signal if score > 0.0 else None,
            since=self._since,
            signal_scores=scores,
        )
