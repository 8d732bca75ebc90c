"""``decide``: the pure decision core (DESIGN.md, "Functional core, imperative shell").

No I/O, no wall clock, no model objects: everything it needs is in the policy,
the observations (raw metrics plus model outputs), the previous state and
``now``. The operator, the backtest and the sandbox call exactly this function,
so a behaviour seen live can be replayed.
"""

from __future__ import annotations

from careplane.decision.breaker import decide_breaker
from careplane.decision.recurrence import recurring_note
from careplane.decision.replicas import decide_replicas
from careplane.decision.routing import decide_routing
from careplane.decision.state import DecisionState
from careplane.decision.types import Actions, Explanation, Observations
from careplane.policy import Mode, ScalingPolicySpec


def decide(
    policy: ScalingPolicySpec, observations: Observations, state: DecisionState, now: float
) -> tuple[Actions, DecisionState, Explanation]:
    """What to set now, the state to remember, and why.

    * ``Paused``: nothing is computed or changed; the state is returned as is.
    * ``ForecastOnly``: every action is None; the explanation carries the
      recommendation. The stabilisation memory advances (so switching to Active
      continues smoothly); routing and breaker memory do not (nothing was set).
    * ``Active``: replicas, circuit breaker (if configured) and weights (if configured).
    """
    if policy.mode == Mode.PAUSED:
        return Actions(), state, Explanation(reason="paused", message="policy is Paused: nothing changed")

    replicas = decide_replicas(policy, observations, state, now)
    breaker = decide_breaker(policy, observations, state.consecutive_5xx_errors, replicas.recommended)
    routing = decide_routing(policy, observations, state.weights_map())
    anomaly = observations.anomaly
    notes = [n for n in (breaker.note, routing.note) if n]
    if anomaly is not None and anomaly.active:
        notes.append(f"anomaly on {anomaly.signal or 'unknown signal'} (score {anomaly.score:.2f})")
    message = replicas.message
    recurring = recurring_note(policy, observations)
    if recurring is not None and replicas.metrics_available:
        message += "; " + recurring
    if not replicas.metrics_available:
        message += "; MetricsAvailable=False"

    active = policy.mode == Mode.ACTIVE
    new_state = DecisionState(
        recommendations=replicas.recommendations,
        last_replicas=(replicas.recommended if active and replicas.recommended is not None else state.last_replicas),
        panic_until=replicas.panic_until,
        weights=(tuple(sorted(routing.weights.items())) if active and routing.weights is not None else state.weights),
        consecutive_5xx_errors=breaker.consecutive_5xx_errors if active else state.consecutive_5xx_errors,
        metrics_missing_since=replicas.metrics_missing_since,
        errors_since=replicas.errors_since,
        errors_before_demand=replicas.errors_before_demand,
        last_decision_time=now,
    )
    explanation = Explanation(
        reason=replicas.reason,
        message=message if active else f"ForecastOnly: would set {message}",
        terms=replicas.terms,
        metrics_available=replicas.metrics_available,
        recommended_replicas=replicas.recommended,
        notes=tuple(notes),
    )
    if not active:
        return Actions(), new_state, explanation
    actions = Actions(replicas=replicas.recommended, circuit_breaker=breaker.settings, weights=routing.weights)
    return actions, new_state, explanation
