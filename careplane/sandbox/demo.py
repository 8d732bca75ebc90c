"""``careplane demo``: the whole loop on one machine, with real HTTP, a real Prometheus and real load.

Order of start (each on a free 127.0.0.1 port), and why:

1. the schedule: the drill's clock starts at ``start_at`` (a lead time after
   now), so that the backfilled history can hold the same recurring surge at
   the same time of day before anything runs;
2. Prometheus (Debian's binary) with days of history backfilled by promtool,
   so forecasts are meaningful from the first minute;
3. the emulated cluster (kmock) with the ScalingPolicy CRD, the namespaces,
   the example policies and their Deployments/StatefulSets, DestinationRules,
   VirtualServices and HTTPRoutes; a scenario's known campaign (a surge marked
   ``scheduled``) is added to its policy's ``schedules`` on the drill's clock,
   as an SRE would write it (:func:`campaign_schedule`);
4. the workloads (a subprocess: ``python -m careplane.sandbox.workloads``)
   following that cluster, added as scrape targets with their policy's
   ``namespace`` label;
5. the operator (a subprocess: ``python -m careplane operator``) when it is
   installed, scraped too; without it the demo still runs and says so;
6. the Locust drill (a subprocess, always: Locust must not share a process
   with aiohttp/kubernetes).

Every child runs in its own session (process group) and is stopped by us on
the way out, Ctrl-C and errors included: SIGINT/SIGTERM to the group, then
SIGKILL. The :class:`Sandbox` is a context manager so that tests get the same
guarantee.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import requests

from careplane.policy import ScalingPolicy
from careplane.sandbox.emulator import EmulatedCluster
from careplane.sandbox.history import history_series
from careplane.sandbox.locust_runner import REPO_ROOT, DrillRun, load_scenarios, start_drill
from careplane.sandbox.prometheus import (
    PROMTOOL_BIN,
    PrometheusError,
    PrometheusServer,
    ScrapeTarget,
    Series,
    free_port,
    render_openmetrics,
)
from careplane.sandbox.workloads import BEHAVIOURS, SAMPLING_WEIGHT, load_policies

EXAMPLES = REPO_ROOT / "crds" / "examples"
ISTIO = "networking.istio.io/v1"
GATEWAY = "gateway.networking.k8s.io/v1"


def operator_available() -> bool:
    """The operator is written in parallel: run it when its CLI module exists."""
    return importlib.util.find_spec("careplane.cli.operator") is not None and (
        importlib.util.find_spec("careplane.operator.main") is not None
    )


def initial_replicas(policy: ScalingPolicy, baseline: float) -> int:
    """Replicas a settled cluster runs at the baseline: demand / (capacity x target utilisation)."""
    d = policy.spec.demand
    want = math.ceil(baseline / (d.perReplicaCapacity * d.targetUtilization)) if baseline > 0 else 0
    return max(policy.spec.replicas.min, min(policy.spec.replicas.max, max(1, want)))


def workload_objects(policy: ScalingPolicy, replicas: int) -> list[dict[str, Any]]:
    """The target, DestinationRule and route a policy refers to, as an SRE would have deployed them."""
    spec, ns, name = policy.spec, policy.metadata.namespace or "default", policy.spec.targetRef.name
    labels = {"app": name}
    objs: list[dict[str, Any]] = [{
        "apiVersion": "apps/v1", "kind": spec.targetRef.kind,
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 **({"serviceName": name} if spec.targetRef.kind == "StatefulSet" else {}),
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": name, "image": f"example.org/{name}:1.0"}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }]
    host = f"{name}.{ns}.svc.cluster.local"
    if spec.circuitBreaker is not None:
        cb = spec.circuitBreaker
        pending = min(cb.maxPendingRequests.max, max(cb.maxPendingRequests.min, cb.pendingRequestsPerReplica * replicas))
        dr: dict[str, Any] = {
            "apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": cb.destinationRule, "namespace": ns},
            "spec": {"host": host, "trafficPolicy": {
                "connectionPool": {"tcp": {"maxConnections": max(100, pending)}, "http": {"http1MaxPendingRequests": pending}},
                "outlierDetection": {"consecutive5xxErrors": cb.consecutive5xxErrors.default, "interval": "5s",
                                     "baseEjectionTime": f"{cb.baseEjectionSeconds}s",
                                     "maxEjectionPercent": cb.maxEjectionPercent}}},
        }
        if spec.routing is not None and spec.routing.kind.value == "VirtualService":
            dr["spec"]["subsets"] = [{"name": b.name, "labels": {"region": b.name}} for b in spec.routing.backends]
        objs.append(dr)
    if spec.routing is not None:
        r = spec.routing
        if r.kind.value == "VirtualService":
            objs.append({
                "apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": r.name, "namespace": ns},
                "spec": {"hosts": [host], "http": [{"route": [
                    {"destination": {"host": host, "subset": b.name}, "weight": b.weight} for b in r.backends]}]},
            })
        else:
            objs.append({
                "apiVersion": GATEWAY, "kind": "HTTPRoute", "metadata": {"name": r.name, "namespace": ns},
                "spec": {"parentRefs": [{"name": "mesh", "kind": "Service", "group": ""}],
                         "rules": [{"backendRefs": [{"name": b.name, "port": 8080, "weight": b.weight}
                                                    for b in r.backends]}]},
            })
    return objs


def policy_object(path: Path) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def campaign_schedule(policy: ScalingPolicy, surge: Any, peak: float, start_at: float,
                      duration: float) -> dict[str, Any]:
    """The ``schedules`` entry an SRE writes for a known campaign, on the drill's clock (UTC cron).

    Why these numbers: the floor is the campaign's expected peak at the
    policy's targetUtilization (the headroom the SLO needs, as the reactive
    term aims); the window opens a pod startup plus two reconcile intervals
    before the onset (the decision may come up to one interval late, and one
    more for luck on a loaded machine), rounded down to cron's minute, and
    closes one interval after the surge ends.
    """
    spec = policy.spec
    onset = start_at + surge.start * duration
    lead = spec.demand.podStartupSeconds + 2 * spec.intervalSeconds
    opens = math.floor((onset - lead) / 60.0) * 60.0
    closes = start_at + surge.end * duration + spec.intervalSeconds
    floor = math.ceil(peak / (spec.demand.perReplicaCapacity * spec.demand.targetUtilization) - 1e-9)
    at = time.gmtime(opens)
    return {"cron": f"{at.tm_min} {at.tm_hour} * * *", "durationSeconds": max(60, math.ceil(closes - opens)),
            "minReplicas": max(spec.replicas.min, min(spec.replicas.max, floor)), "timezone": "UTC"}


class SandboxPrometheus(PrometheusServer):
    """PrometheusServer whose backfill writes week-long blocks.

    promtool's default is one 2 h block per 2 h of history: 7 days become 85
    blocks, which took 20 s to write (90 s on a busy machine) and slow
    Prometheus' start; ``--max-block-duration=168h`` writes 2 blocks in ~1 s.
    This override only adds that flag; it can go once ``PrometheusServer.backfill``
    accepts extra promtool arguments (asked of its owner).
    """

    def backfill(self, data: str | Iterable[Series]) -> None:
        text = data if isinstance(data, str) else render_openmetrics(data)
        was_running = self.running
        if was_running:
            self.stop_process()
        source = self.root / "history.om"
        source.write_text(text)
        try:
            proc = subprocess.run([PROMTOOL_BIN, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                                   "--max-block-duration=168h", str(source), str(self.storage)],
                                  capture_output=True, text=True, timeout=600)
        finally:
            source.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise PrometheusError(f"promtool backfill failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
        if was_running:
            self.start()


@dataclass
class ChildProcess:
    """A subprocess in its own session, stopped by signalling its whole group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 8.0) -> None:
        # SIGTERM, not SIGINT: a process started from a non-interactive shell's background job inherits
        # SIGINT ignored; every child here (kopf, aiohttp, Locust) shuts down cleanly on SIGTERM.
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 3.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                # The leader exited; anything it left in its group goes too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


def spawn(name: str, cmd: list[str], workdir: Path, env: dict[str, str] | None = None) -> ChildProcess:
    log_path = workdir / f"{name}.log"
    out = open(log_path, "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT),
                            env={**os.environ, **(env or {})}, start_new_session=True)
    out.close()
    return ChildProcess(name, proc, log_path)


@dataclass
class SandboxConfig:
    scenario: str = "showcase"
    duration: float = 600.0
    lead_seconds: float = 30.0  # from "now" to the drill clock's start: setup happens meanwhile
    history_days: float = 7.0
    scrape_interval: float = 2.0
    run_operator: bool | None = None  # None: when it is installed
    operator_args: tuple[str, ...] = ()
    policies_dir: Path = EXAMPLES
    workdir: Path | None = None
    request_weight: float = SAMPLING_WEIGHT  # one sampled request stands for this many (see workloads.py)


@dataclass
class Sample:
    """The cluster as the orchestrator saw it at time t (ground truth for the report and the tests)."""

    t: float
    replicas: dict[str, int | None] = field(default_factory=dict)  # policy -> spec.replicas
    ready: dict[str, int | None] = field(default_factory=dict)  # policy -> status.readyReplicas
    max_pending: dict[str, int | None] = field(default_factory=dict)  # policy -> DR http1MaxPendingRequests
    consecutive_5xx: dict[str, int | None] = field(default_factory=dict)
    weights: dict[str, dict[str, int]] = field(default_factory=dict)  # policy -> backend -> weight


class Sandbox:
    """Everything the demo runs, started in order and stopped in reverse (see the module docstring)."""

    def __init__(self, config: SandboxConfig, say: Callable[[str], None] = lambda _msg: None) -> None:
        self.config = config
        self._say = say
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if config.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="careplane-demo-")
            self.workdir = Path(self._tmp.name)
        else:
            # Absolute: children run in other directories (Locust in loadtests/) and Prometheus resolves
            # relative paths against its config file's directory.
            self.workdir = Path(config.workdir).resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.scenarios = load_scenarios()
        self.scenario = self.scenarios.get(config.scenario)
        self.policies: list[ScalingPolicy] = load_policies([config.policies_dir])
        self.policy_files = sorted(Path(config.policies_dir).glob("*.yaml"))
        self.prometheus: PrometheusServer | None = None
        self.cluster: EmulatedCluster | None = None
        self.children: list[ChildProcess] = []
        self.drill: DrillRun | None = None
        self.ports: dict[str, int] = {}
        self.operator_port: int | None = None
        self.start_at = 0.0
        self.created = 0.0
        self.timeline: list[Sample] = []
        self.operator_running = False

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def say(self, message: str) -> None:
        """Tell the user, and keep a timestamped line in ``sandbox.log`` (where the time went)."""
        self._say(message)
        with (self.workdir / "sandbox.log").open("a") as fh:
            fh.write(f"{time.time() - (self.created or time.time()):8.1f}s {message}\n")

    def baseline(self, workload: str) -> float:
        return float(self.scenario.rate(workload, 0.0)) if workload in self.scenario.rates else 0.0

    def start(self) -> None:
        cfg = self.config
        self.created = time.time()
        self.start_at = self.created + cfg.lead_seconds
        namespaces = sorted({p.metadata.namespace or "default" for p in self.policies})
        ns_of = {p.spec.targetRef.name: p.metadata.namespace or "default" for p in self.policies}
        backend_of = {p.spec.targetRef.name: (p.spec.routing.backends[0].name if p.spec.routing else "default")
                      for p in self.policies}

        # Ports are chosen now: the history is written under the instance label the live series will have.
        self.ports = {p.spec.targetRef.name: free_port() for p in self.policies}
        instances = {name: f"127.0.0.1:{port}" for name, port in self.ports.items()}

        self.cluster = EmulatedCluster(namespaces=namespaces, ready_delay_seconds=None,
                                       kubeconfig_path=self.workdir / "kubeconfig")
        self.cluster.start()
        initial: dict[str, int] = {}
        for pol in self.policies:
            replicas = initial_replicas(pol, self.baseline(pol.spec.targetRef.name))
            initial[pol.metadata.name] = replicas
            for obj in workload_objects(pol, replicas):
                self.cluster.create(obj)
        by_name = {p.metadata.name: p for p in self.policies}
        for path in self.policy_files:
            for doc in policy_object(path):
                name = str((doc.get("metadata") or {}).get("name", ""))
                self.cluster.create(self._with_campaigns(doc, by_name.get(name)))
        self.say(f"emulated cluster at {self.cluster.url}: {len(self.policies)} policies in {', '.join(namespaces)}")

        ports_file = self.workdir / "ports.json"
        ports_file.unlink(missing_ok=True)  # a stale file from an earlier run in this workdir must not be read
        wl = spawn("workloads", [
            sys.executable, "-m", "careplane.sandbox.workloads", "--kubeconfig", str(self.cluster.kubeconfig_path),
            "--policies", str(cfg.policies_dir), "--ports-file", str(ports_file),
            "--ports", *[f"{k}={v}" for k, v in self.ports.items()],
            "--initial-replicas", *[f"{k}={v}" for k, v in initial.items()],
        ], self.workdir)
        self.children.append(wl)
        info = self._wait_file(ports_file, wl, 30.0)
        self.ports = {name: int(v["port"]) for name, v in info.items()}
        self.say("workloads: " + ", ".join(f"{n} :{p}" for n, p in self.ports.items()))

        # Traffic first (at the baseline until the drill clock starts), history up to this moment next,
        # then Prometheus: the live demand counters continue the backfilled ones without a gap or a dip.
        hosts = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.drill = start_drill(self.scenario.name, hosts[self.scenario.primary], cfg.duration,
                                 self.workdir / "drill", hosts=hosts, request_weight=cfg.request_weight,
                                 start_at=self.start_at)
        self.say(f"Locust drill '{self.scenario.name}' started (pid {self.drill.process.pid if self.drill.process else '?'})")

        # The history ends when the live traffic is flowing: once Locust's shape has ticked (its users
        # spawn within the next second with random phases), not when its process merely started.
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not any(e.get("event") == "start" for e in self.drill.events()):
            if self.drill.poll() is not None:
                raise RuntimeError(f"Locust exited at startup; log:\n{(self.drill.workdir / 'locust.log').read_text()[-2000:]}")
            time.sleep(0.2)
        time.sleep(2.0)
        self.say(f"Prometheus: backfilling {cfg.history_days:g} days of history")
        shutil.rmtree(self.workdir / "prometheus", ignore_errors=True)  # our own storage from an earlier run
        self.prometheus = SandboxPrometheus(scrape_interval=cfg.scrape_interval, data_dir=self.workdir / "prometheus",
                                           log_path=self.workdir / "prometheus.log")
        history_end = time.time()
        # The live traffic's texture (see history.py): sampled requests carry the sampling weight, batches
        # their sizes; the last hours on the scrape interval.
        units = {name: ((float(self.scenarios.BATCH_UNITS[name]), float(self.scenarios.BATCH_CV))
                        if name in self.scenarios.BATCH_UNITS else (float(cfg.request_weight), 0.0))
                 for name in ns_of}
        history = history_series(self.scenario, ns_of, backend_of, instances, history_end, self.start_at,
                                 cfg.duration, days=cfg.history_days, units_per_request=units,
                                 fine_step=cfg.scrape_interval)
        for series in history:
            if series.samples:
                with contextlib.suppress(requests.RequestException):
                    requests.put(f"{hosts[series.labels['service']]}/_sandbox/counter",
                                 json={"value": series.samples[-1][1]}, timeout=5)
        self.prometheus.backfill(history)
        for v in info.values():
            self.prometheus.add_target(ScrapeTarget(f"127.0.0.1:{v['port']}", {"namespace": v["namespace"]},
                                                    job="workloads"))
        self.prometheus.start()
        self.say(f"Prometheus ready at {self.prometheus.url}")

        run_op = operator_available() if cfg.run_operator is None else cfg.run_operator
        if run_op:
            self.operator_port = free_port()
            op = spawn("operator", [
                sys.executable, "-m", "careplane", "operator", "--kubeconfig", str(self.cluster.kubeconfig_path),
                "--prometheus-url", self.prometheus.url, "--all-namespaces", "--standalone",
                "--metrics-port", str(self.operator_port), *cfg.operator_args,
            ], self.workdir)
            self.children.append(op)
            self.prometheus.add_target(ScrapeTarget(f"127.0.0.1:{self.operator_port}", {}, job="careplane-operator"))
            self.operator_running = True
            self.say(f"operator started (pid {op.process.pid}), metrics on :{self.operator_port}")
        else:
            self.say("operator not installed yet: the demo runs the workloads and the drill without it")

    def _with_campaigns(self, doc: dict[str, Any], policy: ScalingPolicy | None) -> dict[str, Any]:
        """The policy document plus a schedule window for each of the scenario's scheduled surges on it."""
        if policy is None:
            return doc
        windows = [campaign_schedule(policy, s, self.scenario.peak(s.workload), self.start_at, self.config.duration)
                   for s in self.scenario.surges if getattr(s, "scheduled", False)
                   and s.workload == policy.spec.targetRef.name]
        if not windows:
            return doc
        self.say(f"{policy.metadata.name}: known campaign scheduled: {windows}")
        spec = dict(doc.get("spec") or {})
        spec["schedules"] = [*(spec.get("schedules") or []), *windows]
        return {**doc, "spec": spec}

    @staticmethod
    def _wait_file(path: Path, child: ChildProcess, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                data: dict[str, Any] = json.loads(path.read_text())
                return data
            if not child.alive():
                raise RuntimeError(f"{child.name} exited at startup; log:\n{child.log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{child.name} did not start within {timeout} s")

    def stop(self) -> None:
        """Stop everything, newest first; safe to call twice and after a failed start."""
        if self.children or self.prometheus is not None:
            with contextlib.suppress(OSError):
                self.say("stopping")
        if self.drill is not None:
            self.drill.stop()
        for child in reversed(self.children):
            child.stop()
        self.children = []
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.stop()
            self.cluster = None
        if self.prometheus is not None:
            self.prometheus.stop_process()
            self.prometheus = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def pids(self) -> list[int]:
        out = [c.process.pid for c in self.children]
        if self.drill is not None and self.drill.process is not None:
            out.append(self.drill.process.pid)
        if self.prometheus is not None and self.prometheus.pid is not None:
            out.append(self.prometheus.pid)
        return out

    # --- running -----------------------------------------------------------------------------------------------
    def end_time(self) -> float:
        return self.start_at + self.config.duration

    def check_children(self) -> None:
        for child in self.children:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited unexpectedly; log:\n{child.log_path.read_text()[-2000:]}")

    def sample(self) -> Sample:
        """Read replicas, DestinationRules and routes of every policy from the cluster."""
        assert self.cluster is not None
        s = Sample(t=time.time())
        for pol in self.policies:
            spec, ns, name = pol.spec, pol.metadata.namespace or "default", pol.metadata.name
            target = self.cluster.get_or_none(spec.targetRef.apiVersion, spec.targetRef.kind, spec.targetRef.name, ns)
            s.replicas[name] = int(target["spec"]["replicas"]) if target else None
            s.ready[name] = int((target or {}).get("status", {}).get("readyReplicas", 0)) if target else None
            if spec.circuitBreaker is not None:
                dr = self.cluster.get_or_none(ISTIO, "DestinationRule", spec.circuitBreaker.destinationRule, ns)
                tp = ((dr or {}).get("spec") or {}).get("trafficPolicy") or {}
                s.max_pending[name] = ((tp.get("connectionPool") or {}).get("http") or {}).get("http1MaxPendingRequests")
                s.consecutive_5xx[name] = (tp.get("outlierDetection") or {}).get("consecutive5xxErrors")
            if spec.routing is not None:
                from careplane.sandbox.cluster_view import weights_from_route

                api = ISTIO if spec.routing.kind.value == "VirtualService" else GATEWAY
                route = self.cluster.get_or_none(api, spec.routing.kind.value, spec.routing.name, ns)
                s.weights[name] = weights_from_route(spec.routing.kind.value, route or {})
        self.timeline.append(s)
        return s

    def run(self, on_tick: Callable[[Sandbox, Sample], None] | None = None, sample_every: float = 2.0,
            until: float | None = None) -> None:
        """Sample the cluster until the drill ends (or ``until``), calling ``on_tick`` after each sample."""
        end = until or self.end_time()
        while time.time() < end:
            self.check_children()
            sample = self.sample()
            if on_tick is not None:
                on_tick(self, sample)
            if self.drill is not None and self.drill.poll() is not None and time.time() > self.start_at:
                break
            time.sleep(max(0.0, min(sample_every, end - time.time())))
        if self.drill is not None:
            # Prometheus has what the report needs; Locust's own CSV does not matter here, so a Locust
            # that is slow to wind down (users stuck in 10 s timeouts) is not waited for.
            self.drill.wait(grace=2.0)
        self.say("drill finished")

    def timeline_json(self) -> list[dict[str, Any]]:
        return [s.__dict__ for s in self.timeline]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C does (a KeyboardInterrupt runs every cleanup).

    SIGINT gets Python's default handler back too: a process started in the background of a
    non-interactive shell inherits SIGINT *ignored*, and Ctrl-C must still stop the demo.
    """

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def service_behaviours() -> dict[str, str]:
    """For the report: what each workload's unit is."""
    return {name: b.unit for name, b in BEHAVIOURS.items()}
