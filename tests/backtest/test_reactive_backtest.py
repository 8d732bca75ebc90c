"""The backtest drives the calibrated reactive bound the way the operator does: one reading per decision."""

from __future__ import annotations

import numpy as np

from careplane.backtest.controllers import CareplaneController
from careplane.backtest.engine import initial_replicas, simulate
from careplane.policy import ScalingPolicySpec
from careplane.traces import Trace


def every_15s(spec: ScalingPolicySpec) -> ScalingPolicySpec:
    return spec.model_copy(update={"intervalSeconds": 15})


def replay(spec: ScalingPolicySpec, trace: Trace) -> tuple[CareplaneController, np.ndarray]:
    controller = CareplaneController(spec, trace.step_seconds)
    start = initial_replicas(trace.values, spec.demand.perReplicaCapacity, spec.demand.targetUtilization, 1, 100)
    run = simulate(controller, trace.times, trace.values, step_seconds=trace.step_seconds,
                   startup_seconds=spec.demand.podStartupSeconds, initial=start)
    return controller, run.desired


def test_every_decision_reading_is_learned_once_and_gaps_are_not(trace: Trace, spec: ScalingPolicySpec) -> None:
    fast = every_15s(spec)
    controller, _ = replay(fast, trace)
    reactive = controller.models.reactive
    known_rows = int(np.isfinite(trace.values).sum())
    # four readings per 60 s row; each resolved once when the reading one startup + one interval later came
    assert reactive.horizon == fast.demand.podStartupSeconds + 15
    assert len(reactive.excess) <= 4 * known_rows
    assert len(reactive.excess) > 4 * (known_rows - 10) - 2 * reactive.horizon / 15


def test_a_truncated_trace_gives_the_same_decisions_at_15s(trace: Trace, spec: ScalingPolicySpec) -> None:
    fast = every_15s(spec)
    _, full = replay(fast, trace)
    cut = trace.head(500)
    _, part = replay(fast, cut)
    assert np.array_equal(full[:500], part)
