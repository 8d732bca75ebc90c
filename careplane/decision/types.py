"""The values the decision core takes and returns.

``decide(policy, observations, state, now) -> (actions, new_state, explanation)``
is pure: these are plain frozen values, no I/O handles, no clocks. The operator
(live), ``careplane backtest`` (replay) and the sandbox fill
:class:`Observations` the same way: raw metrics plus the outputs of the
workload's models (:class:`ForecastSummary`, :class:`AnomalySummary`), which the
stateful model layer computes before ``decide`` is called.

Times are seconds (epoch in the operator, trace time in the backtest).
``None`` always means *unknown*, never zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RecurringPeak:
    """What demand did over this provisioning window on past seasons (careplane.decision.recurrence)."""

    peak: float  # the bound: today's base + the median past rise over the window, requests/s
    rise: float  # that median rise over the demand just before the window, requests/s
    agreeing: int  # past seasons whose rise was at least the median (k of K)
    seasons: int  # past seasons with data in the window (K)
    season_seconds: float

    def describe(self) -> str:
        """The sentence for status and events."""
        return (f"recurring peak: {self.peak:.3g} req/s seen in this window on {self.agreeing} of "
                f"{self.seasons} past {_season_name(self.season_seconds)}")


def _season_name(seconds: float) -> str:
    if abs(seconds - 86_400.0) < 1.0:
        return "days"
    if abs(seconds - 604_800.0) < 1.0:
        return "weeks"
    return f"seasons of {seconds:g} s"


@dataclass(frozen=True)
class ForecastSummary:
    """Forecast demand over the provisioning window [now, now + podStartupSeconds + horizonSeconds]."""

    mean: float  # highest forecast mean over the window, requests/s
    upper: float  # highest forecast at the policy's quantile over the window, requests/s
    lower: float  # lowest lower bound over the window, requests/s
    horizon_seconds: int
    model: str  # model in use (what `auto` chose)
    model_error: float | None = None  # rolling out-of-sample MASE of that model
    # the recurring-peak bound over the same window (None: fewer than 3 past seasons, or no season longer
    # than the window); ``upper`` is never below its peak, and ``model_upper`` is the forecaster's own bound
    recurring: RecurringPeak | None = None
    model_upper: float | None = None


@dataclass(frozen=True)
class AnomalySummary:
    """The workload's anomaly state after the latest samples."""

    score: float  # anomaly probability in [0, 1]
    active: bool  # an anomaly is in progress (with hysteresis)
    signal: str | None  # what drove the score: "demand", "latency", "errors" or "backend:<name>"
    since: float | None  # when the active anomaly started
    signal_scores: Mapping[str, float] = field(default_factory=dict)  # score per signal
    # every signal with an anomaly in progress (each with its own hysteresis); ``signal`` is only the
    # strongest of them, and a consumer that cares about one kind (errors) must not miss it behind another
    active_signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReactiveSummary:
    """The bound of the demand that capacity asked now must serve (careplane.decision.reactive).

    ``basis`` says which bound had the lower rolling out-of-sample pinball loss at the
    policy quantile: ``reading`` (the current reading plus its calibrated excess, a
    reactive bound sized to the workload's volatility) or ``forecast`` (the forecast's
    own calibrated bound, never below the reading).
    """

    upper: float  # requests/s
    basis: str  # "reading" or "forecast"
    ratio: float  # upper / current reading: the headroom this bound implies
    samples: int  # excess samples in the calibration window
    # req/s added to the reading because it was rising: its slope over at most one step (reactive.py)
    rise: float = 0.0
    # the scale-down hold this workload's dips call for (careplane.decision.hold), at most the policy's
    # declared stabilisation window (None: the declared window)
    hold_seconds: float | None = None


@dataclass(frozen=True)
class Observations:
    """What is known at decision time. Any field may be missing (None)."""

    demand: float | None  # requests/s
    current_replicas: int | None  # spec.replicas of the target
    ready_replicas: int | None  # replicas serving traffic
    latency_seconds: float | None = None
    error_rate: float | None = None  # 0..1
    backend_error_rates: Mapping[str, float | None] = field(default_factory=dict)  # per routing backend
    forecast: ForecastSummary | None = None
    anomaly: AnomalySummary | None = None
    reactive: ReactiveSummary | None = None  # calibrated reactive bound (None: not calibrated yet)


@dataclass(frozen=True)
class CircuitBreakerSettings:
    """The Istio DestinationRule fields careplane owns."""

    max_pending_requests: int  # connectionPool.http.http1MaxPendingRequests
    max_connections: int  # connectionPool.tcp.maxConnections
    consecutive_5xx_errors: int  # outlierDetection.consecutive5xxErrors
    base_ejection_seconds: int  # outlierDetection.baseEjectionTime
    max_ejection_percent: int  # outlierDetection.maxEjectionPercent


@dataclass(frozen=True)
class Actions:
    """What to set. ``None`` means leave it as it is (also every field in ForecastOnly/Paused)."""

    replicas: int | None = None
    circuit_breaker: CircuitBreakerSettings | None = None
    weights: Mapping[str, int] | None = None  # backend name -> integer weight, summing to 100


@dataclass(frozen=True)
class Explanation:
    """Why: the term that set the replica count, each term's value, and a sentence for people."""

    reason: str  # e.g. "forecast", "reactive", "panic", "schedule", "min", "max", "step-limit", "stabilization", "fallback", "hold"
    message: str  # one readable sentence, goes to status.lastDecision.reason and Events
    terms: Mapping[str, float] = field(default_factory=dict)  # candidate replicas per term
    metrics_available: bool = True
    recommended_replicas: int | None = None  # what Active mode would set (reported in ForecastOnly too)
    notes: tuple[str, ...] = ()  # circuit breaker / routing / anomaly remarks
