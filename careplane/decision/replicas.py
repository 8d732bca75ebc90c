"""The replica decision: candidate terms, then stabilisation, step limits and bounds.

Terms (each a replica count; the highest wins and names the reason):

* ``forecast`` – predictive capacity: the forecast's upper quantile over
  [now, now + podStartupSeconds + horizon] / perReplicaCapacity. Replicas asked
  for now are ready only after podStartupSeconds, so capacity must be bought
  for the demand that will exist then.
* ``reactive`` – the HPA's idea: current demand at ``targetUtilization``, so a
  surge the forecast did not see is still met. With a forecast, the headroom
  comes from the forecast's quantile and the reactive floor serves current
  demand at full capacity (adding the HPA headroom on top of the quantile would
  pay twice for the same risk; measured: with the headroom whenever demand
  exceeded the forecast's upper bound, low quantiles cost more than the HPA at
  0.8 for more violations); critical workloads keep the targetUtilization
  headroom always.
* calibrated reactive bound (``Observations.reactive``, careplane.decision.reactive) –
  the current reading plus the excess that, on this workload, the reading one
  startup + one interval later showed at the policy's quantile: the HPA's headroom
  sized to the workload's own volatility. When its rolling out-of-sample pinball
  loss is lower than the forecast bound's, it sets the ``reactive`` term and the
  forecast term is left out (the higher of two q-quantiles over-covers and pays
  for it; measured on the benchmark's spiky ELB series at 15 s decisions and
  q 0.9: the forecast's bound over a reactive floor cost 1.92x the oracle for
  4.9% violated steps, the calibrated reading bound alone 1.44x for 5.0%).
  Critical workloads keep both terms: they pay to never miss a predicted rise.
* ``panic`` – Knative KPA's panic mode: when demand jumps far beyond what the
  forecast said (or, without forecast, needs twice the ready replicas) the
  workload is scaled to current demand at targetUtilization at once and is not
  scaled down until the panic window has passed without a new trigger.
* ``schedule`` – the highest floor of the active cron windows.
* ``min`` – the policy's minimum.

Scale-down stabilisation holds the highest recommendation of the declared
``scaleDownStabilizationSeconds``, or of the shorter hold this workload's own dips
call for (``ReactiveSummary.hold_seconds``, careplane.decision.hold: a hold is
shortened only when spending its cost on headroom instead missed fewer steps; the
declared window is never exceeded, and without a learned hold it is used as is).

Anomalous demand (careplane.anomaly) is classified before the terms are built
(:func:`classify_spike`):

* a *benign* spike – latency and errors healthy – is not chased blindly: no
  panic, no calibrated reactive bound, no headroom; current demand at full
  capacity and the forecast (learned before the spike) still count, so the
  spike is served, not extrapolated. Without a latency
  measurement, health must come from somewhere else: the reading must fit
  within ``targetUtilization`` of the ready capacity (perReplicaCapacity is
  by definition what a replica serves within its SLO). Why: a saturated
  workload's throughput reads as its capacity, so "served at full capacity"
  would hold the replicas where they are for as long as the surge lasts
  (measured in the sandbox's device-storm drill: the second burst of a
  vitals service without a latency SLO never got a scale decision, its p95
  at 4.7 s).
* a suspected *retry storm* – a demand anomaly during an error episode (errors
  above the SLO, an error anomaly or a failing routing backend) that began
  while demand was still ordinary: errors first, then the demand they provoke;
  an overload shows the other order – is handled like a benign spike even
  when saturated: more replicas would only feed the loop, and the circuit
  breaker, tightened by the same errors, sheds it. The episode is remembered
  in the decision state (``errors_since``), not read from the anomaly
  detectors alone: an error-rate detector learns for hundreds of samples
  before it may fire, and an SLO breach is evidence from the first one.
  Failure mode, by design: an overload whose demand anomaly fires a decision
  later than its errors is served at full capacity, not chased, until the
  error episode ends.
* anything else is real demand and goes through every term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from careplane.decision.breaker import active_signals, failing_backends
from careplane.decision.schedules import schedule_floor
from careplane.decision.state import DecisionState
from careplane.decision.types import Observations
from careplane.policy import Criticality, FallbackAction, ScalingPolicySpec

# Knative's panic threshold is 200% of the capacity the ready pods give; we use the
# same ratio between demand and the forecast's upper quantile.
PANIC_RATIO = 2.0
# Knative's stable window: panic mode ends this long after the last trigger.
PANIC_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class ReplicaDecision:
    recommended: int | None  # None: leave the replicas as they are (hold with nothing known)
    reason: str
    message: str
    terms: dict[str, float]
    metrics_available: bool
    recommendations: tuple[tuple[float, int], ...]
    panic_until: float | None
    metrics_missing_since: float | None
    errors_since: float | None = None
    errors_before_demand: bool = False


def demand_known(demand: float | None) -> bool:
    """Missing, NaN, infinite or negative demand is unknown (never zero)."""
    return demand is not None and math.isfinite(demand) and demand >= 0


class Spike(StrEnum):
    """How the replica decision treats anomalous demand (see the module docstring)."""

    BENIGN = "benign"
    RETRY_STORM = "retry-storm"


def errors_elevated(policy: ScalingPolicySpec, obs: Observations) -> bool | None:
    """Whether the service is erroring now: errors above the SLO, an error anomaly, a failing routing backend.

    None when that is unknown (the error rate is declared but missing, and nothing else says so). Latency does
    not count: a surge's queueing shows in latency as soon as in the demand reading (a rate over a minute), and
    a timeout a client retries is an error (504) too.
    """
    if policy.anomaly.enabled and any(s == "errors" or s.startswith("backend:") for s in active_signals(obs.anomaly)):
        return True
    if failing_backends(policy, obs):
        return True
    slo = policy.slo
    if slo is None or slo.maxErrorRate is None:
        return False
    if obs.error_rate is None or not math.isfinite(obs.error_rate):
        return None if slo.errorRateQuery else False
    return obs.error_rate > slo.maxErrorRate


def demand_anomalous(policy: ScalingPolicySpec, obs: Observations) -> bool:
    return policy.anomaly.enabled and "demand" in active_signals(obs.anomaly)


def error_episode(
    policy: ScalingPolicySpec, obs: Observations, state: DecisionState, now: float
) -> tuple[float | None, bool]:
    """(since when the service has been erroring, whether demand was ordinary then); (None, False) if it is not."""
    elevated = errors_elevated(policy, obs)
    if elevated is None:  # unknown: the episode neither starts nor ends on a gap
        return state.errors_since, state.errors_before_demand
    if not elevated:
        return None, False
    if state.errors_since is not None:
        return state.errors_since, state.errors_before_demand
    return now, not demand_anomalous(policy, obs)


def classify_spike(
    obs: Observations, policy: ScalingPolicySpec, ready: int | None, errors_before_demand: bool
) -> Spike | None:
    """``BENIGN`` or ``RETRY_STORM`` for anomalous demand that is served but not chased; None: real demand."""
    if not demand_anomalous(policy, obs):
        return None
    if errors_before_demand:
        return Spike.RETRY_STORM
    slo = policy.slo
    latency_known = slo is not None and slo.latencyTargetSeconds is not None and obs.latency_seconds is not None
    if slo is not None:
        if latency_known and obs.latency_seconds > slo.latencyTargetSeconds:  # type: ignore[operator]
            return None
        if slo.maxErrorRate is not None and obs.error_rate is not None and obs.error_rate > slo.maxErrorRate:
            return None
    if not latency_known:
        # no latency evidence: the reading must fit the ready capacity at targetUtilization
        if ready is None or obs.demand is None:
            return None
        demand = policy.demand
        if obs.demand > ready * demand.perReplicaCapacity * demand.targetUtilization:
            return None
    return Spike.BENIGN


def _ceil(x: float) -> int:
    # tolerate float noise: 3.0000000001 replicas is 3
    return max(0, math.ceil(x - 1e-9))


def decide_replicas(
    policy: ScalingPolicySpec, obs: Observations, state: DecisionState, now: float
) -> ReplicaDecision:
    """The replica count careplane recommends, with its reason and the updated windows."""
    bounds = policy.replicas
    current = obs.current_replicas if obs.current_replicas is not None else state.last_replicas
    terms: dict[str, float] = {"min": float(bounds.min)}
    floor, which = schedule_floor(policy.schedules, now)
    if which is not None:
        terms["schedule"] = float(floor)

    errors_since, errors_before_demand = error_episode(policy, obs, state, now)
    window = float(bounds.scaleDownStabilizationSeconds)
    recs = tuple((t, r) for t, r in state.recommendations if now - window < t <= now)
    panic_until = state.panic_until if state.panic_until is not None and state.panic_until > now else None

    if not demand_known(obs.demand):
        missing_since = state.metrics_missing_since if state.metrics_missing_since is not None else now
        if policy.fallback.onMetricsUnavailable == FallbackAction.REPLICAS and policy.fallback.replicas is not None:
            terms["fallback"] = float(policy.fallback.replicas)
            candidate: int | None = policy.fallback.replicas
            reason, why = "fallback", f"demand unavailable: fallback to {policy.fallback.replicas} replicas"
        else:
            candidate = current
            reason, why = "hold", "demand unavailable: holding the current replicas"
        if candidate is None:
            # nothing known at all: leave the target alone rather than guess (never zero)
            return ReplicaDecision(None, "hold", why + " (current replicas unknown)", terms, False, recs, panic_until,
                                  missing_since, errors_since, errors_before_demand)
        if which is not None and floor > candidate:
            candidate, reason = floor, "schedule"
        final, reason = _limit(policy, candidate, current, reason, stabilise=False, recs=recs, now=now)
        return ReplicaDecision(final, reason, why, terms, False, recs, panic_until, missing_since, errors_since,
                               errors_before_demand)

    demand = float(obs.demand)  # type: ignore[arg-type]
    capacity = policy.demand.perReplicaCapacity
    target = policy.demand.targetUtilization
    ready = obs.ready_replicas if obs.ready_replicas is not None else current
    spike = classify_spike(obs, policy, ready, errors_before_demand)
    benign_spike = spike is not None
    forecast = obs.forecast if policy.forecast.enabled else None
    notes: list[str] = []

    if forecast is not None and not math.isfinite(forecast.upper):
        forecast = None
    calibrated = obs.reactive if not benign_spike else None
    if calibrated is not None and not (math.isfinite(calibrated.upper) and calibrated.upper >= 0):
        calibrated = None
    if forecast is not None:
        terms["forecast"] = float(_ceil(forecast.upper / capacity))
    # with a forecast or a calibrated bound, the quantile carries the headroom (surges beyond
    # it are panic's job); critical workloads keep the HPA headroom on top
    headroom = target
    if (
        (forecast is not None or calibrated is not None) and policy.criticality != Criticality.CRITICAL
    ) or benign_spike:
        headroom = 1.0
    terms["reactive"] = float(_ceil(demand / (capacity * headroom)))
    if calibrated is not None and calibrated.basis == "reading":
        # the calibrated reading bound had the lower loss: it replaces the forecast's bound
        # (the higher of two q-quantiles over-covers and pays for it), except for critical
        # workloads, which pay for both: the loss is an average dominated by ordinary hours, and a
        # rare predicted rise (a campaign, a daily peak the readings cannot show yet) is exactly
        # what a critical workload must not lose (measured in the sandbox demo: without this the
        # FHIR API dropped a forecast upper bound of 270 req/s for a reading bound of 65 before
        # the scheduled spike)
        if policy.criticality != Criticality.CRITICAL:
            terms.pop("forecast", None)
        terms["reactive"] = max(terms["reactive"], float(_ceil(calibrated.upper / capacity)))
        kept = "; the forecast's bound is kept too (critical)" if "forecast" in terms else ""
        rising = f", the reading rising by {calibrated.rise:.3g} req/s extrapolated" if calibrated.rise > 0 else ""
        notes.append(
            f"reactive bound {calibrated.upper:.3g} req/s = reading x {calibrated.ratio:.3g} "
            f"(policy quantile of {calibrated.samples} calibrated excesses{rising}; "
            f"lower loss than the forecast's{kept})"
        )
    elif calibrated is not None and "forecast" in terms and _shortened(obs, window):
        # the forecast's bound had the lower loss; under a shortened hold it carries the headroom
        # that the declared hold's cost buys (careplane.decision.hold scales the bound it was given)
        terms["forecast"] = max(terms["forecast"], float(_ceil(calibrated.upper / capacity)))
    # panic (Knative KPA): demand far beyond the forecast, or beyond twice the ready capacity
    if not benign_spike and policy.criticality != Criticality.BATCH:
        if forecast is not None:
            triggered = demand > PANIC_RATIO * max(forecast.upper, capacity * 1e-3)
        else:
            triggered = ready is not None and demand / (capacity * target) >= PANIC_RATIO * max(ready, 1)
        if triggered:
            panic_until = now + PANIC_WINDOW_SECONDS
    if panic_until is not None:
        terms["panic"] = float(_ceil(demand / (capacity * target)))
        notes.append("panic mode: no scale-down")
    if spike is Spike.BENIGN:
        notes.append("anomalous demand with healthy latency/errors: served, not extrapolated")
    elif spike is Spike.RETRY_STORM:
        notes.append("anomalous demand after errors that began while demand was ordinary (a retry storm?): "
                     "served, not chased; the circuit breaker sheds it")

    reason = max(terms, key=lambda k: (terms[k], _PRIORITY[k]))
    candidate = int(terms[reason])
    recs = (*recs, (now, candidate))
    if panic_until is not None and current is not None and candidate < current:
        candidate, reason = current, "panic"
    # the state keeps the declared window; the hold this workload's dips call for may be shorter
    held = recs
    if _shortened(obs, window):
        hold = obs.reactive.hold_seconds  # type: ignore[union-attr]
        held = tuple((t, r) for t, r in recs if now - hold < t or t == now)  # type: ignore[operator]
        notes.append(f"scale-down hold {hold:.0f} s of the declared {window:.0f} s (learned from this workload's dips)")
    final, reason = _limit(policy, candidate, current, reason, stabilise=True, recs=held, now=now)
    why = _sentence(reason, final, demand, forecast.upper if forecast is not None else None, notes)
    return ReplicaDecision(final, reason, why, terms, True, recs, panic_until, None, errors_since,
                           errors_before_demand)


def _shortened(obs: Observations, window: float) -> bool:
    """Whether the learned hold (careplane.decision.hold) is shorter than the declared window."""
    hold = obs.reactive.hold_seconds if obs.reactive is not None else None
    return hold is not None and math.isfinite(hold) and 0 <= hold < window


# ties go to the more specific term
_PRIORITY = {"panic": 6, "schedule": 5, "forecast": 4, "reactive": 3, "fallback": 2, "min": 1}


def _limit(
    policy: ScalingPolicySpec,
    candidate: int,
    current: int | None,
    reason: str,
    *,
    stabilise: bool,
    recs: tuple[tuple[float, int], ...],
    now: float,
) -> tuple[int, str]:
    """Stabilisation, step limits, then [min, max] (the bounds win over everything)."""
    bounds = policy.replicas
    value = candidate
    if current is not None:
        if stabilise and value < current and recs:
            stabilised = min(current, max(r for _, r in recs))
            if stabilised > value:
                value, reason = stabilised, "stabilization"
        if value > current + bounds.maxScaleUpStep:
            value, reason = current + bounds.maxScaleUpStep, "step-limit"
        elif value < current - bounds.maxScaleDownStep:
            value, reason = current - bounds.maxScaleDownStep, "step-limit"
    if value < bounds.min:
        value, reason = bounds.min, "min"
    elif value > bounds.max:
        value, reason = bounds.max, "max"
    return value, reason


def _sentence(reason: str, replicas: int, demand: float, upper: float | None, notes: list[str]) -> str:
    forecast = f", forecast upper {upper:.3g} req/s" if upper is not None else ", no forecast"
    text = f"{replicas} replicas set by {reason} (demand {demand:.3g} req/s{forecast})"
    if notes:
        text += "; " + "; ".join(notes)
    return text
