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
anomaly starts when a signal's probability reaches ``sensitivity`` and ends
only after it stays below ``exit_level`` for ``exit_samples`` updates in a row.
A missing sample counts as below (a signal that went silent, e.g. a backend
that routing drained to weight 0, must not stay anomalous forever).

Why per-signal hysteresis and ``active_signals``: the consumers care about
different kinds. The circuit breaker reacts to error/latency anomalies,
routing to ``backend:<name>`` ones, the replica decision to demand ones. With
one workload-wide state and one reported ``signal`` (the highest score), a
long demand anomaly (score 1.0, first in the dict) hid an error anomaly that
started during it, and the breaker never saw the errors (measured in the
sandbox demo). So every signal keeps its own state and the summary lists all
active ones; ``active`` is "any signal active", ``signal`` the strongest
active one (for people), ``since`` when the earliest active one started.
"""

from __future__ import annotations

from collections.abc import Mapping

from careplane.anomaly.base import Detector
from careplane.anomaly.registry import make_detector
from careplane.decision.types import AnomalySummary

ONE_SIDED_PREFIXES = ("latency", "errors", "backend:")


class _Signal:
    """A signal's detector plus the recent level used to make rises-only signals one-sided."""

    __slots__ = ("below", "detector", "level", "one_sided", "seen", "since")

    def __init__(self, detector: Detector, one_sided: bool) -> None:
        self.detector = detector
        self.one_sided = one_sided
        self.level = 0.0
        self.seen = 0
        self.since: float | None = None  # start of this signal's anomaly in progress (None: none)
        self.below = 0  # consecutive updates below the exit level while active

    def hysteresis(self, t: float, score: float, enter: float, exit_level: float, exit_samples: int) -> None:
        """Start at ``enter``; end after ``exit_samples`` updates in a row below ``exit_level``."""
        if self.since is None:
            if score >= enter:
                self.since, self.below = t, 0
        elif score < exit_level:
            self.below += 1
            if self.below >= exit_samples:
                self.since, self.below = None, 0
        else:
            self.below = 0


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
        # A known signal absent from this update is missing too (scores 0): it may not stay active unseen.
        for name, state in self._signals.items():
            state.hysteresis(t, scores.get(name, 0.0), self.sensitivity, self.exit_level, self.exit_samples)
        active = {name: s for name, s in self._signals.items() if s.since is not None}
        score = max(scores.values(), default=0.0)
        if active:
            # the strongest active signal (ties: the longest running, then by name, for a stable report)
            signal: str | None = max(active, key=lambda n: (scores.get(n, 0.0), -(active[n].since or 0.0), n))
        else:
            signal = max(scores, key=scores.__getitem__) if score > 0.0 else None
        return AnomalySummary(
            score=score,
            active=bool(active),
            signal=signal,
            since=min((s.since for s in active.values() if s.since is not None), default=None),
            signal_scores=scores,
            active_signals=tuple(sorted(active)),
        )
