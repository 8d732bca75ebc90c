"""Controllers replayed by the backtest: careplane, the Kubernetes HPA, and the oracle.

Each controller decides at its own sync period; the engine calls
``begin_step`` once per trace step (when a new row's metric arrives, one step
late) and ``decide`` at every sync inside that step with the metric as read then.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from typing import Protocol

from careplane.decision.core import decide
from careplane.decision.models import WorkloadModels
from careplane.decision.state import DecisionState
from careplane.decision.types import Observations
from careplane.policy import Mode, ScalingPolicySpec

# The HPA's defaults (kube-controller-manager and autoscaling/v2 behavior)
HPA_SYNC_SECONDS = 15.0
HPA_TOLERANCE = 0.1
HPA_SCALE_UP_PODS = 4  # per 15 s period ...
HPA_SCALE_UP_PERCENT = 100  # ... or this percent of current, whichever is more
HPA_SCALE_DOWN_WINDOW_SECONDS = 300.0


class Controller(Protocol):
    name: str
    sync_seconds: float

    def begin_step(self, t: float, sample_time: float, metric: float | None, current: int, ready: int) -> None: ...

    def decide(self, t: float, metric: float | None, current: int, ready: int) -> int: ...


class HPAController:
    """The Kubernetes HPA algorithm on utilisation = demand / (ready x capacity).

    desired = ceil(ready x utilisation / target) = ceil(demand / (capacity x target))
    (for a load-per-pod metric the HPA's treatment of not-yet-ready pods, counted
    at zero use on scale-up, gives the same count), skipped within the 10%
    tolerance; scale-up at most max(4 pods, 100%) per 15 s; scale-down only to
    the highest recommendation of the last 300 s; no change while the metric is missing.
    """

    name = "hpa"

    def __init__(
        self,
        *,
        capacity: float,
        target: float,
        min_replicas: int,
        max_replicas: int,
        sync_seconds: float = HPA_SYNC_SECONDS,
    ) -> None:
        self.capacity, self.target = capacity, target
        self.min, self.max = min_replicas, max_replicas
        self.sync_seconds = sync_seconds
        self._recs: deque[tuple[float, int]] = deque()

    def begin_step(self, t: float, sample_time: float, metric: float | None, current: int, ready: int) -> None:
        """Nothing to learn: the HPA only looks at the current metric."""

    def decide(self, t: float, metric: float | None, current: int, ready: int) -> int:
        m = metric
        if m is None:
            return current  # missing metrics: hold
        if ready > 0:
            ratio = m / (ready * self.capacity) / self.target
            rec = current if abs(ratio - 1.0) <= HPA_TOLERANCE else math.ceil(m / (self.capacity * self.target) - 1e-9)
        else:
            rec = math.ceil(m / (self.capacity * self.target) - 1e-9)
        self._recs.append((t, rec))
        while self._recs[0][0] <= t - HPA_SCALE_DOWN_WINDOW_SECONDS:
            self._recs.popleft()
        if rec < current:
            rec = min(current, max(r for _, r in self._recs))
        elif rec > current:
            rec = min(rec, max(current + HPA_SCALE_UP_PODS, current * (100 + HPA_SCALE_UP_PERCENT) // 100))
        return max(self.min, min(self.max, rec))


class CareplaneController:
    """careplane as the operator runs it: WorkloadModels.observe, then decide, every intervalSeconds."""

    name = "careplane"

    def __init__(self, spec: ScalingPolicySpec, step_seconds: float) -> None:
        # the backtest answers "what would Active do", whatever mode the file says
        self.spec = spec if spec.mode == Mode.ACTIVE else spec.model_copy(update={"mode": Mode.ACTIVE})
        self.models = WorkloadModels(self.spec, step_seconds)
        self.state = DecisionState.initial()
        self.sync_seconds = float(spec.intervalSeconds)
        self.obs = Observations(demand=None, current_replicas=None, ready_replicas=None)
        self.forecast_upper = math.nan
        self.forecast_mean = math.nan
        self.reason = ""

    def begin_step(self, t: float, sample_time: float, metric: float | None, current: int, ready: int) -> None:
        raw = Observations(demand=metric, current_replicas=current, ready_replicas=ready)
        self.obs = self.models.observe(t, raw, sample_time=sample_time)
        f = self.obs.forecast
        self.forecast_upper = f.upper if f is not None else math.nan
        self.forecast_mean = f.mean if f is not None else math.nan

    def decide(self, t: float, metric: float | None, current: int, ready: int) -> int:
        # the models learned the step's sample in begin_step; between rows the reading is fresher
        reactive = self.models.track(t, metric)
        obs = replace(self.obs, demand=metric, current_replicas=current, ready_replicas=ready, reactive=reactive)
        actions, self.state, explanation = decide(self.spec, obs, self.state, t)
        self.reason = explanation.reason
        return current if actions.replicas is None else actions.replicas
