"""A real Prometheus server (Debian's binary) for tests, benchmarks and the sandbox.

Why a real one: careplane's reader, its tenant confinement and the dashboards
must be proven against real PromQL evaluation, not canned JSON.

:class:`PrometheusServer` starts ``prometheus`` on a free loopback port with a
temporary storage dir and a generated config, waits until ``/-/ready``, and
stops it (SIGTERM, then SIGKILL) on exit, exceptions included. Scrape targets
live in a ``file_sd`` file, so they can be added while it runs (Prometheus
watches the file). History is loaded with ``promtool tsdb
create-blocks-from openmetrics`` into the storage dir; when the server is
already running, it is restarted on the same port to pick the blocks up.

Prometheus 2.42 (Debian 12) accepts blocks that overlap the head since 2.39
(``--storage.tsdb.allow-overlapping-blocks`` is a deprecated no-op there), so
no flag is needed; retention is raised so that weeks of history survive.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import requests
import yaml

PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL_BIN = shutil.which("promtool") or "/usr/bin/promtool"


class PrometheusError(RuntimeError):
    """Prometheus could not be started, backfilled or queried."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape target: ``address`` is ``host:port``; ``labels`` are attached to every series (e.g. namespace, service)."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    job: str = "careplane"
    metrics_path: str = "/metrics"


@dataclass(frozen=True)
class Series:
    """A series to backfill: metric name, labels, (timestamp seconds, value) samples in time order."""

    name: str
    labels: Mapping[str, str]
    samples: Sequence[tuple[float, float]]
    kind: str = "gauge"  # OpenMetrics type: counter | gauge | unknown
    help: str = ""
    keep_nan: bool = False  # write NaN samples (a NaN value) instead of leaving them out (missing data)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str) -> str:
    return name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name


def render_openmetrics(series: Iterable[Series]) -> str:
    """Render series to OpenMetrics text (families contiguous, ``# EOF`` last); NaN samples skipped unless ``keep_nan``."""
    by_family: dict[tuple[str, str], list[Series]] = {}
    for s in series:
        by_family.setdefault((_family(s.name, s.kind), s.kind), []).append(s)
    lines: list[str] = []
    for (family, kind), members in by_family.items():
        lines.append(f"# TYPE {family} {kind}")
        if members[0].help:
            lines.append(f"# HELP {family} {members[0].help}")
        for s in members:
            name = s.name if kind != "counter" or s.name.endswith("_total") else s.name + "_total"
            label_text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(s.labels.items()))
            head = f"{name}{{{label_text}}}" if label_text else name
            for ts, value in s.samples:
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    if s.keep_nan and value is not None:
                        lines.append(f"{head} NaN {float(ts):.3f}")
                    continue
                lines.append(f"{head} {float(value)!r} {float(ts):.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def demand_history_series(
    times: Sequence[float],
    rates: Sequence[float],
    *,
    labels: Mapping[str, str],
    name: str = "http_requests_total",
    step_seconds: float | None = None,
) -> Series:
    """Turn per-step demand (requests/s, NaN = gap) into a monotone request counter at each time.

    ``rate(name[w])`` over the result gives back the demand. A gap leaves the
    counter out for that step (no sample), so Prometheus sees missing data, not zero.
    """
    if len(times) != len(rates):
        raise ValueError("times and rates differ in length")
    samples: list[tuple[float, float]] = []
    total = 0.0
    for i, (t, r) in enumerate(zip(times, rates, strict=True)):
        step = step_seconds if step_seconds is not None else (times[i] - times[i - 1] if i else 60.0)
        if r is None or math.isnan(r):
            continue
        total += max(0.0, float(r)) * step
        samples.append((float(t), total))
    return Series(name=name, labels=dict(labels), samples=samples, kind="counter")


class PrometheusServer:
    """A Prometheus process on 127.0.0.1 (context manager; see the module docstring)."""

    def __init__(
        self,
        targets: Iterable[ScrapeTarget] = (),
        *,
        scrape_interval: float = 1.0,
        evaluation_interval: float | None = None,
        port: int = 0,
        retention: str = "400d",
        data_dir: str | Path | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        log_path: str | Path | None = None,
    ) -> None:
        self._targets: list[ScrapeTarget] = list(targets)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.port = port or free_port()
        self.retention = retention
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="careplane-prometheus-")
            self.root = Path(self._tmp.name)
        else:
            self.root = Path(data_dir)
            self.root.mkdir(parents=True, exist_ok=True)
        self.storage = self.root / "data"
        self.storage.mkdir(exist_ok=True)
        self.config_path = self.root / "prometheus.yml"
        self.targets_path = self.root / "targets.json"
        self.log_path = Path(log_path) if log_path else self.root / "prometheus.log"
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._write_targets()
        self._write_config()

    # ---- configuration -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        def dur(seconds: float) -> str:
            return f"{int(seconds * 1000)}ms"

        config = {
            "global": {"scrape_interval": dur(self.scrape_interval), "evaluation_interval": dur(self.evaluation_interval),
                       "scrape_timeout": dur(min(self.scrape_interval, 10.0))},
            "scrape_configs": [{
                "job_name": "careplane",
                "honor_labels": True,
                "file_sd_configs": [{"files": [str(self.targets_path)], "refresh_interval": "1s"}],
            }],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _write_targets(self) -> None:
        groups = [{"targets": [t.address],
                   "labels": {**dict(t.labels), "job": t.job, "__metrics_path__": t.metrics_path}}
                  for t in self._targets]
        tmp = self.targets_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        os.replace(tmp, self.targets_path)  # atomic: Prometheus never reads half a file

    def add_target(self, target: ScrapeTarget) -> None:
        """Scrape one more target (picked up by the running server within about a second)."""
        self._targets.append(target)
        self._write_targets()

    @property
    def targets(self) -> list[ScrapeTarget]:
        return list(self._targets)

    # ---- history -------------------------------------------------------------------------

    def backfill(self, data: str | Iterable[Series]) -> None:
        """Load history (OpenMetrics text or :class:`Series`) with promtool; restarts a running server."""
        text = data if isinstance(data, str) else render_openmetrics(data)
        was_running = self.running
        if was_running:
            self.stop_process()
        with tempfile.NamedTemporaryFile("w", suffix=".om", dir=self.root, delete=False) as f:
            f.write(text)
            source = f.name
        try:
            proc = subprocess.run([PROMTOOL_BIN, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                                   source, str(self.storage)], capture_output=True, text=True, timeout=600)
        finally:
            os.unlink(source)
        if proc.returncode != 0:
            raise PrometheusError(f"promtool backfill failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
        if was_running:
            self.start()

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        if self.running:
            return self
        cmd = [
            PROMETHEUS_BIN,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.storage}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--log.level=warn",
            *self.extra_args,
        ]
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop_process()
        # start_new_session: Ctrl-C in a terminal goes to us, and we stop Prometheus ourselves.
        self._proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop_process()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise PrometheusError(f"prometheus exited at startup; log: {self._tail_log()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready within {self.startup_timeout} s; log: {self._tail_log()}")

    def _tail_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1000:]
        except OSError:
            return "(no log)"

    def stop_process(self, timeout: float = 3.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout``) but keep the storage."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """Kill it hard (an outage for reliability tests); :meth:`start` brings it back on the same port."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self.stop_process()

    def stop(self) -> None:
        """Stop the process and remove the temporary storage."""
        self.stop_process()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- small query helpers (tests, the sandbox report) ----------------------------------

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query through the HTTP API; returns ``data.result``."""
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        resp = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = resp.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query failed: {body.get('error')}")
        return list(body["data"]["result"])

    def wait_for_series(self, promql: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until ``promql`` returns at least one series (e.g. after adding a target)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.2)
        raise PrometheusError(f"no series for {promql!r} within {timeout} s")


class LiveExporter:
    """A tiny live exporter for tests and drills: counters that grow at a set rate, and gauges.

    ``set_rate("http_requests_total", {"service": "fhir-api"}, 120)`` makes the
    counter grow by 120/s (ticked ``tick_seconds`` apart), so ``rate()`` over it
    reads 120. ``set_gauge(..., None)`` removes a series (missing data);
    ``float('nan')`` exposes NaN. Labels may include ``namespace``; the scrape
    config honours exporter labels.
    """

    def __init__(self, *, port: int = 0, tick_seconds: float = 0.1) -> None:
        import threading

        from prometheus_client import CollectorRegistry

        self.port = port or free_port()
        self.tick_seconds = tick_seconds
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._rates: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._stop = threading.Event()
        self._registry = CollectorRegistry()
        self._registry.register(self)
        self._server: Any = None
        self._threads: list[Any] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def _key(name: str, labels: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted((str(k), str(v)) for k, v in labels.items()))

    def set_rate(self, name: str, labels: Mapping[str, str], per_second: float) -> None:
        with self._lock:
            key = self._key(name, labels)
            self._rates[key] = float(per_second)
            self._counters.setdefault(key, 0.0)

    def add(self, name: str, labels: Mapping[str, str], amount: float) -> None:
        with self._lock:
            key = self._key(name, labels)
            self._counters[key] = self._counters.get(key, 0.0) + float(amount)

    def set_gauge(self, name: str, labels: Mapping[str, str], value: float | None) -> None:
        with self._lock:
            key = self._key(name, labels)
            if value is None:
                self._gauges.pop(key, None)
            else:
                self._gauges[key] = float(value)

    def collect(self) -> Iterable[Any]:
        """prometheus_client collector protocol."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self._lock:
            counters, gauges = dict(self._counters), dict(self._gauges)
        families: dict[str, Any] = {}
        for (name, labels), value in counters.items():
            family = _family(name, "counter")
            fam = families.setdefault("c:" + family, CounterMetricFamily(family, family, labels=[k for k, _ in labels]))
            fam.add_metric([v for _, v in labels], value)
        for (name, labels), value in gauges.items():
            fam = families.setdefault("g:" + name, GaugeMetricFamily(name, name, labels=[k for k, _ in labels]))
            fam.add_metric([v for _, v in labels], value)
        return list(families.values())

    def _tick(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_seconds):
            now = time.monotonic()
            with self._lock:
                for key, rate in self._rates.items():
                    self._counters[key] = self._counters.get(key, 0.0) + rate * (now - last)
            last = now

    def start(self) -> Self:
        import threading

        from prometheus_client import start_http_server

        self._server, thread = start_http_server(self.port, addr="127.0.0.1", registry=self._registry)
        ticker = threading.Thread(target=self._tick, name="live-exporter-tick", daemon=True)
        ticker.start()
        self._threads = [thread, ticker]
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
