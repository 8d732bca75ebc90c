"""Replay a demand trace through a controller under DESIGN.md's evaluation model.

Timing on a trace with step s (the trace's step after aggregation); row k holds the
mean demand over [t_k, t_k + s):

* a controller with a sync period p < s decides floor(s / p) times per step, evenly
  spaced (the HPA's 15 s sync on a 60 s trace is 4 syncs per step, at t_k, +15, +30, +45).
  A period longer than s decides every round(p / s) steps and holds in between;
* metrics are one step late: at time τ a controller sees the demand averaged over the
  last step, [τ - s, τ) (what a Prometheus ``rate(...[1m])`` returns on a 1-minute trace).
  At t_k that is exactly row k - 1; between rows it is the time-weighted mix of rows
  k - 1 and k that the window covers (rows are piecewise constant). A gap contributes
  nothing; a window of gaps is a missing metric;
* a replica asked for at a sync is ready podStartupSeconds later, rounded up to a whole
  sync; removal is immediate;
* step k is scored on the replicas ready at the end of the step (after its last sync):
  it violates the SLO when demand > ready x perReplicaCapacity; gaps are not scored;
* cost counts the replicas asked for, averaged over the step's syncs (starting replicas
  cost too). ``desired_replicas`` in the timeline is what was asked at the step's last sync.

With these semantics the Kubernetes HPA on the NASA trace reproduces the issue's
reference figures (see benchmarks/autoscaling.py); a careplane policy whose
intervalSeconds equals the step decides once per step, at t_k, on row k - 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from careplane.backtest.cluster import Cluster
from careplane.backtest.controllers import Controller

ProgressFn = Callable[[int], None]


@dataclass
class Run:
    """One controller's replay: per-step arrays plus the count of replica changes."""

    name: str
    desired: np.ndarray  # int, asked at each step's last sync
    ready: np.ndarray  # int, ready at the end of the step
    cost: np.ndarray  # float, replicas asked averaged over the step
    changes: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def initial_replicas(values: np.ndarray, capacity: float, target: float, lo: int, hi: int) -> int:
    """Every controller starts where a sensible operator would: the first known demand at ``target``."""
    known = values[np.isfinite(values)]
    first = float(known[0]) if known.size else 0.0
    return int(min(hi, max(lo, math.ceil(first / (capacity * target) - 1e-9))))


def syncs_per_step(step_seconds: float, sync_seconds: float) -> tuple[int, int]:
    """(syncs inside one step, steps between decisions) for a controller's sync period."""
    if sync_seconds <= step_seconds:
        return max(1, math.floor(step_seconds / sync_seconds + 1e-9)), 1
    return 1, max(1, round(sync_seconds / step_seconds))


def window_metric(previous: float, current: float, fraction: float) -> float | None:
    """Mean demand over the last step when ``fraction`` of the current row has elapsed (None: all gaps)."""
    weights = ((previous, 1.0 - fraction), (current, fraction))
    known = [(v, w) for v, w in weights if w > 0 and math.isfinite(v)]
    total = sum(w for _, w in known)
    if total <= 0:
        return None
    return sum(v * w for v, w in known) / total


def simulate(
    controller: Controller,
    times: np.ndarray,
    values: np.ndarray,
    *,
    step_seconds: float,
    startup_seconds: float,
    initial: int,
    progress: ProgressFn | None = None,
    extra: Callable[[], dict[str, float]] | None = None,
) -> Run:
    """Replay ``values`` (demand per step, NaN gaps) through ``controller``."""
    n = len(values)
    sub, every = syncs_per_step(step_seconds, controller.sync_seconds)
    sync_len = step_seconds / sub
    cluster = Cluster(initial, Cluster.startup_syncs(startup_seconds, sync_len))
    desired = np.empty(n, dtype=np.int64)
    ready_out = np.empty(n, dtype=np.int64)
    cost = np.empty(n)
    extras: dict[str, list[float]] = {}
    changes = 0
    current = initial
    index = 0
    for k in range(n):
        t = float(times[k])
        decides = k % every == 0
        prev = float(values[k - 1]) if k > 0 else math.nan
        here = float(values[k])
        if decides:
            sample_time = float(times[k - 1]) if k > 0 else t - step_seconds
            metric = prev if math.isfinite(prev) else None
            controller.begin_step(t, sample_time, metric, current, cluster.ready_before(index))
        total = 0
        for j in range(sub):
            if decides:
                metric = window_metric(prev, here, j / sub)
                asked = controller.decide(t + j * sync_len, metric, current, cluster.ready_before(index))
            else:
                asked = current
            if asked != current:
                changes += 1
            current = asked
            after = cluster.ask(index, asked)
            total += asked
            index += 1
        desired[k] = current
        ready_out[k] = after
        cost[k] = total / sub
        if extra is not None:
            for key, value in extra().items():
                extras.setdefault(key, []).append(value)
        if progress is not None and (k + 1) % 2000 == 0:
            progress(2000)
    if progress is not None:
        progress(n % 2000)
    return Run(controller.name, desired, ready_out, cost, changes, {k: np.array(v) for k, v in extras.items()})


def oracle(
    values: np.ndarray, *, capacity: float, step_seconds: float, startup_seconds: float, lo: int, hi: int
) -> Run:
    """Perfect foresight: ceil(demand / capacity) asked podStartupSeconds ahead, removed the moment it is not needed.

    With immediate removal and delayed readiness, a replica serving step k must
    exist from k - L to k, so the least-cost plan asks at each step for the most
    that any step of the next L needs. Unknown (gap) demand needs nothing.
    """
    need = np.where(np.isfinite(values), np.ceil(np.nan_to_num(values) / capacity - 1e-9), 0).astype(np.int64)
    lead = Cluster.startup_syncs(startup_seconds, step_seconds)
    padded = np.concatenate([need, np.zeros(lead, dtype=np.int64)])
    if lead:
        windows = np.lib.stride_tricks.sliding_window_view(padded, lead + 1).max(axis=1)
    else:
        windows = need
    desired = np.clip(windows[: len(need)], lo, hi)
    ready = desired.copy()
    for shift in range(1, lead + 1):  # ready = min of the asks over the startup window
        ready[shift:] = np.minimum(ready[shift:], desired[:-shift])
    changes = int(np.count_nonzero(np.diff(desired)))
    return Run("oracle", desired, ready, desired.astype(float), changes)


@dataclass(frozen=True)
class Metrics:
    violation_pct: float
    excess_pct: float
    replica_hours: float
    cost_vs_oracle: float | None
    changes: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "violation_pct": self.violation_pct,
            "excess_pct": self.excess_pct,
            "replica_hours": self.replica_hours,
            "cost_vs_oracle": self.cost_vs_oracle,
            "changes": self.changes,
        }


def score(run: Run, values: np.ndarray, *, capacity: float, step_seconds: float, oracle_hours: float | None) -> Metrics:
    """DESIGN.md's headline figures; gaps are not scored."""
    scored = np.isfinite(values)
    demand = values[scored]
    served = run.ready[scored] * capacity
    violated = demand > served * (1 + 1e-12)
    n = max(1, int(scored.sum()))
    total = float(demand.sum())
    excess = float(np.maximum(demand - served, 0.0).sum())
    hours = float(run.cost.sum() * step_seconds / 3600.0)
    return Metrics(
        violation_pct=round(100.0 * float(violated.sum()) / n, 4),
        excess_pct=round(100.0 * excess / total, 4) if total > 0 else 0.0,
        replica_hours=round(hours, 3),
        cost_vs_oracle=round(hours / oracle_hours, 4) if oracle_hours else None,
        changes=run.changes,
    )
