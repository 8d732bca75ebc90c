"""The backtest as a library call: a trace and a policy in, per-controller runs and metrics out.

Used by ``careplane backtest``, the report (which sweeps HPA targets and
careplane quantiles) and ``benchmarks/autoscaling.py``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from careplane.backtest.controllers import CareplaneController, HPAController
from careplane.backtest.engine import Metrics, ProgressFn, Run, initial_replicas, oracle, score, simulate
from careplane.policy import ScalingPolicySpec
from careplane.traces import Trace

CONTROLLERS = ("careplane", "hpa", "oracle")


class BacktestError(ValueError):
    """Bad input for a backtest (one line, names the option); the CLI exits 2."""


@dataclass
class Result:
    runs: dict[str, Run]
    metrics: dict[str, Metrics]
    oracle_hours: float


def check_trace(trace: Trace) -> None:
    if not (math.isfinite(trace.step_seconds) and trace.step_seconds > 0):
        raise BacktestError(f"{trace.source or 'trace'}: the step between rows is {trace.step_seconds} s; it must be positive")
    if not np.isfinite(trace.values).any():
        raise BacktestError(f"{trace.source or 'trace'}: every value is a gap; nothing to replay")


def run_controller(
    name: str,
    spec: ScalingPolicySpec,
    trace: Trace,
    *,
    hpa_target: float | None = None,
    progress: ProgressFn | None = None,
) -> Run:
    """Replay one controller (``careplane``, ``hpa`` or ``oracle``) over ``trace``."""
    capacity = spec.demand.perReplicaCapacity
    startup = float(spec.demand.podStartupSeconds)
    lo, hi = spec.replicas.min, spec.replicas.max
    step = trace.step_seconds
    values = trace.values
    target = spec.demand.targetUtilization if hpa_target is None else hpa_target
    start = initial_replicas(values, capacity, spec.demand.targetUtilization, lo, hi)
    if name == "oracle":
        run = oracle(values, capacity=capacity, step_seconds=step, startup_seconds=startup, lo=lo, hi=hi)
        if progress is not None:
            progress(len(values))
        return run
    if name == "hpa":
        hpa = HPAController(capacity=capacity, target=target, min_replicas=lo, max_replicas=hi)
        return simulate(hpa, trace.times, values, step_seconds=step, startup_seconds=startup, initial=start, progress=progress)
    if name == "careplane":
        controller = CareplaneController(spec, step)

        def extra() -> dict[str, float]:
            return {"forecast_upper": controller.forecast_upper, "forecast_mean": controller.forecast_mean}

        return simulate(
            controller, trace.times, values, step_seconds=step, startup_seconds=startup, initial=start,
            progress=progress, extra=extra,
        )
    raise BacktestError(f"--controller: unknown controller {name!r}; choose careplane, hpa, oracle or all")


def backtest(
    spec: ScalingPolicySpec,
    trace: Trace,
    controllers: Sequence[str] = CONTROLLERS,
    progress: Callable[[str], ProgressFn] | None = None,
) -> Result:
    """Replay ``controllers`` and score them; the oracle always runs (it is the cost yardstick)."""
    check_trace(trace)
    capacity = spec.demand.perReplicaCapacity
    runs: dict[str, Run] = {}
    for name in ("oracle", *[c for c in controllers if c != "oracle"]):
        runs[name] = run_controller(name, spec, trace, progress=progress(name) if progress else None)
    oracle_hours = score(runs["oracle"], trace.values, capacity=capacity, step_seconds=trace.step_seconds, oracle_hours=None).replica_hours
    metrics = {
        name: score(run, trace.values, capacity=capacity, step_seconds=trace.step_seconds, oracle_hours=oracle_hours)
        for name, run in runs.items()
        if name in controllers
    }
    return Result({k: v for k, v in runs.items() if k in controllers}, metrics, oracle_hours)


def _fmt(value: float) -> str:
    return "" if not math.isfinite(value) else repr(float(value))


def write_timeline(path: Path, trace: Trace, runs: dict[str, Run]) -> None:
    """``timestamp,demand,desired_replicas,ready_replicas`` (+ ``<controller>_…`` columns for several).

    With several controllers the unprefixed columns are careplane's (or the first run's).
    A gap's demand is an empty cell.
    """
    names = list(runs)
    main = runs["careplane"] if "careplane" in runs else runs[names[0]]
    header = ["timestamp", "demand", "desired_replicas", "ready_replicas"]
    if len(names) > 1:
        for name in names:
            header += [f"{name}_desired_replicas", f"{name}_ready_replicas"]
    columns: list[list[object]] = [list(trace.labels), [_fmt(v) for v in trace.values], main.desired.tolist(), main.ready.tolist()]
    if len(names) > 1:
        for name in names:
            columns += [runs[name].desired.tolist(), runs[name].ready.tolist()]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(zip(*columns, strict=True))
