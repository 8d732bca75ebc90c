"""LoadTestShape for the scenarios in ``scenarios.py``, and the clock the paced users read.

The shape holds a pool of paced users per workload (sized for the scenario's
peak) for the drill's duration and stops the test at its end; the demand
curve itself is applied by the users' pacing (see ``users.py``). It also
plays the scenario's faults: at their start and end it calls the sandbox's
``PUT /_sandbox/fault`` on the workload (a real service answers 404; the fault
is then skipped and logged). Every step is appended as a JSON line to
``CAREPLANE_DRILL_LOG`` so that the drill report knows when the drill really
started and when faults were on.

Environment: ``CAREPLANE_SCENARIO`` (default: the shape class's), ``CAREPLANE_DURATION``
(seconds, default the scenario's), ``CAREPLANE_START_AT`` (epoch seconds the scenario clock starts at;
default: the first tick), ``CAREPLANE_HOSTS``, ``CAREPLANE_DRILL_LOG``.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from typing import Any, ClassVar

import scenarios
from locust import LoadTestShape

_ACTIVE: dict[str, Any] = {"scenario": None, "start": None, "duration": 1.0}
_POOLS: dict[type, int] = {}
_PEAKS: dict[str, float] = {}
USER_CLASSES: dict[str, type] = {}


def fraction_at(t: float) -> float:
    """How far into the drill wall-clock time ``t`` is, in [0, 1] (0 before the scenario clock starts)."""
    start = _ACTIVE["start"]
    if start is None:
        return 0.0
    return min(1.0, max(0.0, (t - start) / _ACTIVE["duration"]))


def current_fraction() -> float:
    return fraction_at(time.time())


def rate_at(workload: str, t: float) -> float:
    """The scenario's demand (units/s) of ``workload`` at wall-clock time ``t``, now or ahead."""
    scenario = _ACTIVE["scenario"]
    return float(scenario.rate(workload, fraction_at(t))) if scenario is not None else 0.0


def peak_rate(workload: str) -> float:
    """The scenario's highest demand (units/s) of ``workload``: the paced users' candidate rate."""
    scenario = _ACTIVE["scenario"]
    if scenario is None:
        return 0.0
    if workload not in _PEAKS:
        _PEAKS[workload] = float(scenario.peak(workload))
    return _PEAKS[workload]


def pool_size(cls: type) -> int:
    return _POOLS.get(cls, 1)


def _log(event: dict[str, Any]) -> None:
    path = os.environ.get("CAREPLANE_DRILL_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"t": time.time(), **event}) + "\n")


class ScenarioShape(LoadTestShape):
    """Runs ``scenario`` (a name in scenarios.SCENARIOS) for CAREPLANE_DURATION seconds."""

    abstract = True
    scenario_name: ClassVar[str] = ""
    # Users per (request/s) at peak: the load stays open-loop until a request waits this long. It is the mesh
    # route's timeout (the sandbox's UPSTREAM_TIMEOUT_SECONDS): beyond it a request has failed anyway, and a
    # real device gateway gives up or retries. With 1.5 s, a device storm's users all ended up waiting on the
    # saturated service, and the demand it offered never showed: 650 of 2280 messages/s read, p95 4.7 s
    # (measured in the device-storm drill). Idle users are cheap greenlets.
    concurrency_seconds: ClassVar[float] = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.scenario = scenarios.get(os.environ.get("CAREPLANE_SCENARIO") or self.scenario_name)
        self.duration = float(os.environ.get("CAREPLANE_DURATION") or self.scenario.default_duration)
        self.hosts: dict[str, str] = json.loads(os.environ.get("CAREPLANE_HOSTS", "{}") or "{}")
        self._faults_on: set[int] = set()
        self._faults_done: set[int] = set()

    def _classes(self) -> list[type]:
        # Imported here: users.py imports this module.
        import users

        out = []
        for cls in vars(users).values():
            if isinstance(cls, type) and issubclass(cls, users.PacedUser) and cls.workload in self.scenario.rates:
                peak = self.scenario.peak(cls.workload) / cls.units_per_request()
                _POOLS[cls] = max(2, math.ceil(peak * self.concurrency_seconds) + 2)
                cls.fixed_count = _POOLS[cls]  # type: ignore[attr-defined]
                out.append(cls)
        return out

    def _set_fault(self, index: int, on: bool) -> None:
        fault = self.scenario.faults[index]
        host = self.hosts.get(fault.workload)
        if host is None and fault.workload == self.scenario.primary and self.runner is not None:
            host = self.runner.environment.host
        body = {"backend": fault.backend, "errorRate": fault.error_rate if on else 0.0,
                "latencySeconds": fault.latency_seconds if on else 0.0}
        outcome = "applied"
        if host:
            req = urllib.request.Request(host.rstrip("/") + "/_sandbox/fault", data=json.dumps(body).encode(),
                                         method="PUT", headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=3).read()
            except (urllib.error.URLError, OSError) as exc:
                outcome = f"skipped ({exc})"
        else:
            outcome = "skipped (no host)"
        _log({"event": "fault-on" if on else "fault-off", "workload": fault.workload, **body, "outcome": outcome})

    def tick(self) -> tuple[int, float, list[Any]] | None:
        if _ACTIVE["start"] is None:
            classes = self._classes()
            self._users = sum(_POOLS[c] for c in classes)
            self._user_classes = classes
            # CAREPLANE_START_AT pins the scenario clock to a wall-clock time planned in advance (the sandbox
            # writes the same schedule into the backfilled history); before it the users run the baseline.
            start = float(os.environ.get("CAREPLANE_START_AT") or time.time())
            _ACTIVE.update(scenario=self.scenario, start=start, duration=self.duration)
            _log({"event": "start", "start": start, "scenario": self.scenario.name, "duration": self.duration,
                  "pools": {c.workload: _POOLS[c] for c in classes}})
        frac = current_fraction()
        for i, fault in enumerate(self.scenario.faults):
            if i not in self._faults_on and frac >= fault.start:
                self._faults_on.add(i)
                self._set_fault(i, True)
            if i in self._faults_on and i not in self._faults_done and frac >= fault.end:
                self._faults_done.add(i)
                self._set_fault(i, False)
        if frac >= 1.0:
            for i in self._faults_on - self._faults_done:
                self._faults_done.add(i)
                self._set_fault(i, False)
            _log({"event": "stop"})
            return None
        return self._users, float(self._users), self._user_classes
