"""Operator scale benchmark: N ScalingPolicies against the emulated cluster and a real Prometheus.

    nice -n 10 python3 benchmarks/operator.py                 # 200 and 1,000 policies, 15 s interval
    nice -n 10 python3 benchmarks/operator.py --policies 200 --measure-seconds 60

What runs where, so that the CPU and memory measured are the operator's own:

* the emulated API server (``python -m careplane.sandbox.emulator``), the
  live exporter and Prometheus run in **other processes**;
* the operator (kopf + the real adapters + the real decision core and models,
  forecasting and anomaly detection on) runs in **this** process, in a thread,
  exactly as ``careplane operator`` runs it (``careplane.operator.main.serve``).

Each policy reads its own series (``sum(careplane_bench_demand{service="svc-i"})``)
with one hour of history backfilled through ``promtool``, so models are rebuilt
from real range queries at start. After every policy has reconciled twice
(warm-up, including the rebuilds), a measurement window records:

* reconcile latency p50/p99: wall time of each tick (query, forecast, detect,
  decide, actuate, status), as seen by the reconcile loop;
* CPU seconds of this process (user + system, ``getrusage``) over the window,
  scaled to per policy per hour, and the cores used (CPU s / wall s);
* resident memory: RSS growth from before the operator started, per policy,
  next to what one policy's models alone take (measured in a fresh process),
  so the part the operator shell adds is visible.

The machine is shared (2 cores), so CPU numbers include contention effects on
latency; the JSON records the load average next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console
from rich.progress import Progress

from careplane.operator.main import serve
from careplane.operator.settings import OperatorConfig
from careplane.operator.telemetry import Telemetry
from careplane.sandbox.prometheus import PrometheusServer, ScrapeTarget, Series, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "operator.json"
NAMESPACE = "bench"
METRIC = "careplane_bench_demand"

EXPORTER = """
import sys, threading
from careplane.sandbox.prometheus import LiveExporter
n, port, metric, namespace = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
e = LiveExporter(port=port).start()
for i in range(n):
    e.set_gauge(metric, {"service": f"svc-{i}", "namespace": namespace}, 100.0 + (i % 7) * 40.0)
print("ready", flush=True)
threading.Event().wait()
"""


MODEL_MEMORY = """
import gc, sys, time
import numpy as np
from careplane.decision.models import WorkloadModels
from careplane.validation import parse_policy
import json
doc, history, interval, k = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
spec = parse_policy(doc).spec
now = time.time()
times = np.arange(now - history, now - 30, interval)
values = 100.0 * (1 + 0.2 * np.sin(2 * np.pi * times / 3600.0))
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
WorkloadModels(spec, interval).rebuild(times, values)  # imports and caches warm
gc.collect()
before = rss()
kept = []
for _ in range(k):
    m = WorkloadModels(spec, interval)
    m.rebuild(times, values)
    kept.append(m)
gc.collect()
print((rss() - before) / k)
"""


def model_memory_per_policy(interval: int, history: int, k: int = 20) -> int:
    """RSS of one policy's models (forecaster + anomaly monitor, rebuilt from the benchmark's history),
    measured in a fresh process: the part of the operator's memory per policy that the models own."""
    doc = objects(1, interval, history)[2]
    out = subprocess.run([sys.executable, "-c", MODEL_MEMORY, json.dumps(doc), str(history), str(interval), str(k)],
                         capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip()))


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process (from /proc), to show where the time goes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def objects(n: int, interval: int, history: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
    for i in range(n):
        labels = {"app": f"svc-{i}"}
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"svc-{i}", "namespace": NAMESPACE},
                     "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                              "template": {"metadata": {"labels": labels},
                                           "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}}}})
        docs.append({"apiVersion": "careplane.io/v1alpha1", "kind": "ScalingPolicy",
                     "metadata": {"name": f"svc-{i}", "namespace": NAMESPACE},
                     "spec": {"targetRef": {"name": f"svc-{i}"}, "intervalSeconds": interval,
                              "replicas": {"min": 1, "max": 50},
                              "demand": {"query": f'sum({METRIC}{{service="svc-{i}"}})', "perReplicaCapacity": 50},
                              "forecast": {"historySeconds": history, "seasonalitySeconds": [3600],
                                           "horizonSeconds": 300}}})
    return docs


def history_series(n: int, exporter_address: str, history: int, now: float) -> list[Series]:
    times = np.arange(now - history, now - 30, 15.0)
    out = []
    for i in range(n):
        base = 100.0 + (i % 7) * 40.0
        values = base * (1 + 0.2 * np.sin(2 * np.pi * times / 3600.0))
        # Same labels as the live series (honor_labels keeps the exporter's; job/instance from the target).
        labels = {"service": f"svc-{i}", "namespace": NAMESPACE, "job": "careplane", "instance": exporter_address}
        out.append(Series(METRIC, labels, list(zip(times.tolist(), values.tolist(), strict=True)), kind="gauge"))
    return out


def run_one(n: int, interval: int, history: int, measure: float, console: Console) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="careplane-bench-") as tmp:
        manifest = Path(tmp) / "objects.yaml"
        manifest.write_text(yaml.safe_dump_all(objects(n, interval, history)))
        kubeconfig = Path(tmp) / "kubeconfig"
        port = free_port()
        procs: list[subprocess.Popen[str]] = []
        try:
            exporter = subprocess.Popen([sys.executable, "-c", EXPORTER, str(n), str(port), METRIC, NAMESPACE],
                                        stdout=subprocess.PIPE, text=True)
            procs.append(exporter)
            assert exporter.stdout is not None and exporter.stdout.readline().strip() == "ready"
            emulator = subprocess.Popen([sys.executable, "-m", "careplane.sandbox.emulator", "--kubeconfig",
                                         str(kubeconfig), "--apply", str(manifest)], stdout=subprocess.PIPE, text=True)
            procs.append(emulator)
            address = f"127.0.0.1:{port}"
            with PrometheusServer([ScrapeTarget(address, {})], scrape_interval=5.0) as prom:
                prom.backfill(history_series(n, address, history, time.time()))
                prom.wait_for_series(f'{METRIC}{{service="svc-{n - 1}"}}', timeout=60)
                assert emulator.stdout is not None
                json.loads(emulator.stdout.readline())  # the emulator is up with every object applied
                others = {"emulator": emulator.pid, "prometheus": prom.pid or 0, "exporter": exporter.pid}
                return measure_operator(n, interval, measure, str(kubeconfig), prom.url, console, others, history)
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def measure_operator(n: int, interval: int, measure: float, kubeconfig: str, prometheus_url: str,
                     console: Console, others: dict[str, int], history: int = 3600) -> dict[str, Any]:
    ticks: list[tuple[float, str, float]] = []
    lock = threading.Lock()

    def on_tick(key: str, result: Any) -> None:
        with lock:
            ticks.append((time.monotonic(), key, result.seconds))

    stop = threading.Event()
    config = OperatorConfig(prometheus_url=prometheus_url, kubeconfig=kubeconfig, standalone=True, metrics_port=-1,
                            identity="bench", namespaces=(NAMESPACE,))
    spans = InMemorySpanExporter()
    telemetry = Telemetry(span_exporter=spans, instance="bench")
    rss_before = rss_bytes()
    started = time.monotonic()
    thread = threading.Thread(
        target=lambda: asyncio.run(serve(config, stop_flag=stop, on_tick=on_tick, telemetry=telemetry)), daemon=True
    )
    thread.start()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{n} policies: warm-up (every policy reconciles twice)", total=2 * n)
        while True:
            with lock:
                counts: dict[str, int] = {}
                for _, key, _ in ticks:
                    counts[key] = counts.get(key, 0) + 1
            done = sum(min(c, 2) for c in counts.values())
            progress.update(task, completed=done)
            if done >= 2 * n:
                break
            if time.monotonic() - started > 900:
                raise RuntimeError(f"warm-up did not finish: {done}/{2 * n}")
            time.sleep(1)
        warmup = time.monotonic() - started
        spans.clear()
        pauses: list[float] = []
        gc.callbacks.append(_gc_timer(pauses))
        t0, cpu0 = time.monotonic(), cpu_seconds()
        others0 = {name: process_cpu_seconds(pid) for name, pid in others.items() if pid}
        task = progress.add_task(f"{n} policies: measuring", total=measure)
        while (elapsed := time.monotonic() - t0) < measure:
            progress.update(task, completed=elapsed)
            time.sleep(1)
        t1, cpu1, rss = time.monotonic(), cpu_seconds(), rss_bytes()
        gc.callbacks.pop()
        others1 = {name: process_cpu_seconds(pid) for name, pid in others.items() if pid}
    steps: dict[str, list[float]] = {}
    for span in spans.get_finished_spans():
        if span.end_time is not None and span.start_time is not None and not (span.attributes or {}).get("rebuild"):
            steps.setdefault(span.name, []).append((span.end_time - span.start_time) / 1e9)
    stop.set()
    thread.join(60)
    telemetry.shutdown()
    with lock:
        window = [s for t, _, s in ticks if t0 <= t <= t1]
    wall = t1 - t0
    cpu = cpu1 - cpu0
    q = statistics.quantiles(window, n=100) if len(window) >= 2 else [float("nan")] * 99
    return {
        "policies": n,
        "interval_seconds": interval,
        "warmup_seconds": round(warmup, 1),
        "measure_seconds": round(wall, 1),
        "reconciles": len(window),
        "reconciles_expected": round(n * wall / interval),
        "latency_p50_seconds": round(q[49], 4),
        "latency_p99_seconds": round(q[98], 4),
        "latency_max_seconds": round(max(window), 4) if window else None,
        "cpu_seconds": round(cpu, 2),
        "cores_used": round(cpu / wall, 3),
        "cpu_seconds_per_policy_per_hour": round(cpu / n * 3600 / wall, 3),
        "rss_bytes": rss,
        "rss_growth_bytes": rss - rss_before,
        "memory_bytes_per_policy": round((rss - rss_before) / n),
        "model_memory_bytes_per_policy": model_memory_per_policy(interval, history),
        "step_p50_seconds": {k: round(statistics.median(v), 4) for k, v in sorted(steps.items())},
        "step_p99_seconds": {k: round(statistics.quantiles(v, n=100)[98], 4) for k, v in sorted(steps.items())
                             if len(v) >= 2},
        "other_processes_cores_used": {k: round((others1[k] - others0[k]) / wall, 3) for k in others1},
        "loadavg_1m_end": os.getloadavg()[0],
        # full (generation-2) collections in the window: each stalls the event loop (see operator/gc_policy.py)
        "gc_full_collections": len(pauses),
        "gc_full_pause_max_seconds": round(max(pauses), 4) if pauses else 0.0,
    }


def _gc_timer(pauses: list[float]) -> Callable[[str, dict[str, Any]], None]:
    """A gc callback that appends the duration of every generation-2 collection to ``pauses``."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.append(time.perf_counter() - started.pop())

    return callback


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--interval", type=int, default=15)
    parser.add_argument("--history-seconds", type=int, default=3600)
    parser.add_argument("--measure-seconds", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console(stderr=True)
    runs = []
    for n in args.policies:
        result = run_one(n, args.interval, args.history_seconds, args.measure_seconds, console)
        console.print(result)
        runs.append(result)
    targets = {"policies": 1000, "interval_seconds": 15, "latency_p99_seconds_below": 1.0, "cores_below": 1.0}
    out = {
        "benchmark": "operator",
        "command": "nice -n 10 python3 benchmarks/operator.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count()},
        "targets": targets,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
