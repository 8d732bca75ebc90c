"""Run a Locust drill in its own process and read back what it did.

Locust monkey-patches the standard library with gevent, so it never runs
inside a careplane process (which has imported aiohttp, ssl, kopf or the
kubernetes client): we start ``locust -f loadtests/<scenario>.py --headless``
as a subprocess, bounded in time, in its own process group so that Ctrl-C
and timeouts end it and its greenlets' sockets cleanly. The scenario
definitions (``loadtests/scenarios.py``) are plain Python that both sides
load by path.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LOADTESTS = REPO_ROOT / "loadtests"


def load_scenarios() -> ModuleType:
    """``loadtests/scenarios.py`` as a module (it is not part of the installed package)."""
    name = "careplane_loadtest_scenarios"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LOADTESTS / "scenarios.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{LOADTESTS / 'scenarios.py'} is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class body runs
    spec.loader.exec_module(module)
    return module


def scenario_names() -> list[str]:
    return list(load_scenarios().SCENARIOS)


def locustfile(scenario: str) -> Path:
    return LOADTESTS / (scenario.replace("-", "_") + ".py")


@dataclass
class DrillRun:
    """A started (or finished) Locust process and where it writes."""

    scenario: str
    duration: float
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = field(default_factory=time.time)

    @property
    def log_path(self) -> Path:
        return self.workdir / "drill-events.jsonl"

    @property
    def csv_prefix(self) -> Path:
        return self.workdir / "locust"

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def start_time(self) -> float:
        """When the shape started the scenario clock (falls back to process start)."""
        for ev in self.events():
            if ev.get("event") == "start":
                return float(ev.get("start", ev["t"]))
        return self.started

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group (Locust quits cleanly and writes its CSVs), then SIGKILL if it lingers.

        Not SIGINT: a process started from a non-interactive shell's background job inherits it ignored.
        """
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def wait(self, grace: float = 30.0) -> int:
        """Wait for the drill to end on its own (duration + grace), else stop it."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=max(1.0, self.duration + grace - (time.time() - self.started)))
        except subprocess.TimeoutExpired:
            self.stop(timeout=3.0)
            return self.process.wait()

    def history(self) -> list[dict[str, str]]:
        """Locust's per-second stats history (``--csv-full-history``), rows of the Aggregated line."""
        path = Path(str(self.csv_prefix) + "_stats_history.csv")
        if not path.exists():
            return []
        with path.open() as fh:
            return [row for row in csv.DictReader(fh) if row.get("Name") == "Aggregated"]

    def totals(self) -> list[dict[str, str]]:
        path = Path(str(self.csv_prefix) + "_stats.csv")
        if not path.exists():
            return []
        with path.open() as fh:
            return list(csv.DictReader(fh))


def start_drill(
    scenario: str,
    host: str,
    duration: float,
    workdir: Path,
    hosts: Mapping[str, str] | None = None,
    request_weight: float = 1.0,
    start_at: float | None = None,
) -> DrillRun:
    """Start ``locust -f loadtests/<scenario>.py --headless --host HOST`` for ``duration`` seconds."""
    load_scenarios().get(scenario)  # a clear KeyError for an unknown name
    workdir = workdir.resolve()  # Locust runs in loadtests/: relative paths would land there
    workdir.mkdir(parents=True, exist_ok=True)
    lead = 0.0 if start_at is None else max(0.0, start_at - time.time())
    run = DrillRun(scenario=scenario, duration=duration + lead, workdir=workdir)
    run.log_path.unlink(missing_ok=True)
    env = {
        **os.environ,
        "CAREPLANE_SCENARIO": scenario,
        "CAREPLANE_DURATION": str(duration),
        "CAREPLANE_HOSTS": json.dumps(dict(hosts or {})),
        "CAREPLANE_REQUEST_WEIGHT": str(request_weight),
        "CAREPLANE_DRILL_LOG": str(run.log_path),
        "PYTHONPATH": str(LOADTESTS),
        "CAREPLANE_START_AT": "" if start_at is None else repr(start_at),
    }
    cmd = [
        sys.executable, "-m", "locust", "-f", str(locustfile(scenario)), "--headless", "--host", host,
        "--csv", str(run.csv_prefix), "--csv-full-history", "--only-summary", "--loglevel", "WARNING",
        "--exit-code-on-error", "0",
    ]
    out = open(workdir / "locust.log", "wb")  # noqa: SIM115 (owned by the process for its lifetime)
    run.process = subprocess.Popen(
        cmd, cwd=str(LOADTESTS), env=env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: we can signal Locust and everything it started
    )
    out.close()
    run.started = time.time()
    return run
