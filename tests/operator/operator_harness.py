"""Run careplane operators in-process (each in its own thread and event loop) against the emulator.

Used by the integration tests and ``benchmarks/operator.py``. Each operator has
its own kopf registry, settings, telemetry (an in-memory span exporter and a
real ``/metrics`` endpoint on a free port) and real adapters (kubernetes client,
prometheus-api-client) with short timeouts so failure tests stay fast.
"""

from __future__ import annotations

import asyncio
import http.server
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import kubernetes
import yaml
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from careplane.operator import main as opmain
from careplane.operator import wiring
from careplane.operator.handlers import Runtime
from careplane.operator.kube import Kube, RetryPolicy
from careplane.operator.prometheus import PrometheusConfig, PrometheusReader
from careplane.operator.reconcile import TickResult
from careplane.operator.settings import OperatorConfig
from careplane.operator.telemetry import Telemetry
from careplane.sandbox.emulator import EmulatedCluster
from careplane.sandbox.prometheus import LiveExporter

PEERING_KIND = ("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering")

# What the integration tests share: their namespace, the ScalingPolicy kind, and a demand gauge per service
# that a LiveExporter serves to the real Prometheus (each test sets it and the operator reads it back).
NS = "clinical"
SP = ("careplane.io/v1alpha1", "ScalingPolicy")
DEMAND = "careplane_test_demand"


def q(service: str) -> str:
    """The demand query of a test policy: its service's gauge."""
    return f'sum({DEMAND}{{service="{service}"}})'


def set_demand(exporter: LiveExporter, service: str, value: float | None, namespace: str = NS) -> None:
    exporter.set_gauge(DEMAND, {"service": service, "namespace": namespace}, value)


def replicas(cluster: EmulatedCluster, name: str) -> int:
    return cluster.scale("apps/v1", "Deployment", name, NS)


def add_workload(cluster: EmulatedCluster, name: str, **policy: Any) -> None:
    """A Deployment ``api-<name>`` and the ScalingPolicy ``name`` scaling it on its demand gauge (``q(name)``)."""
    cluster.create(deployment(f"api-{name}", NS))
    cluster.create(scaling_policy(name, NS, f"api-{name}", q(name), **policy))


def fast_runtime(core: Any = None) -> Callable[[OperatorConfig, kubernetes.client.Configuration, Telemetry, str], Runtime]:
    """Real adapters with test-sized timeouts and backoffs."""

    def factory(config: OperatorConfig, configuration: kubernetes.client.Configuration, telemetry: Telemetry,
                identity: str) -> Runtime:
        reader = PrometheusReader(PrometheusConfig(url=config.prometheus_url, timeout_seconds=1.0, retries=1,
                                                   backoff_seconds=0.05, backoff_max_seconds=0.1))
        kube = Kube(kubernetes.client.ApiClient(configuration),
                    retry=RetryPolicy(attempts=5, backoff_seconds=0.02, backoff_max_seconds=0.2,
                                      request_timeout_seconds=3.0))
        return Runtime(config=config, telemetry=telemetry, metrics=wiring.PrometheusMetrics(reader),
                       cluster=wiring.KubeCluster(kube), identity=identity, core=core)

    return factory


@dataclass
class OperatorProcess:
    """One operator in a thread; ``ticks`` records every completed reconcile as (policy key, result, time)."""

    config: OperatorConfig
    core: Any = None
    ticks: list[tuple[str, TickResult, float]] = field(default_factory=list)
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.telemetry = Telemetry(span_exporter=self.spans, instance=self.config.identity)
        self.metrics_port = self.telemetry.serve(0, addr="127.0.0.1")
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"operator-{self.config.identity}", daemon=True)
        self._lock = threading.Lock()

    def _on_tick(self, key: str, result: TickResult) -> None:
        with self._lock:
            self.ticks.append((key, result, time.monotonic()))

    def _run(self) -> None:
        try:
            asyncio.run(opmain.serve(self.config, stop_flag=self._stop, ready_flag=self._ready,
                                     telemetry=self.telemetry, runtime_factory=fast_runtime(self.core),
                                     on_tick=self._on_tick))
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> OperatorProcess:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError(f"operator {self.config.identity} did not start: {self.error}")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.telemetry.shutdown()
        if self._thread.is_alive():
            raise RuntimeError(f"operator {self.config.identity} did not stop within {timeout} s")
        if self.error is not None:
            raise self.error

    def keys(self) -> set[str]:
        with self._lock:
            return {k for k, _, _ in self.ticks}

    def results(self, key: str) -> list[TickResult]:
        with self._lock:
            return [r for k, r, _ in self.ticks if k == key]

    def wait_ticks(self, key: str, count: int, timeout: float = 30.0) -> list[TickResult]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.results(key)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise TimeoutError(f"{self.config.identity}: {key} had {len(self.results(key))} ticks, wanted {count}")


def operator_config(cluster: Any, prometheus_url: str, identity: str, **over: Any) -> OperatorConfig:
    base = OperatorConfig(prometheus_url=prometheus_url, kubeconfig=str(cluster.kubeconfig_path), standalone=True,
                          metrics_port=-1, identity=identity, peering_lifetime=5)
    return replace(base, **over)


def install_peering(cluster: Any, *names: str) -> None:
    """kopf's ClusterKopfPeering kind and objects (deploy/base/peering.yaml creates the same)."""
    group, version, plural, kind = PEERING_KIND
    cluster.register(group, version, plural, kind, namespaced=False, subresources=[])
    for name in names:
        cluster.create({"apiVersion": f"{group}/{version}", "kind": kind, "metadata": {"name": name}})


def deployment(name: str, namespace: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}}}}


def scaling_policy(name: str, namespace: str, target: str, query: str, *, labels: dict[str, str] | None = None,
                   **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "intervalSeconds": 5,
        "replicas": {"min": 1, "max": 20, "maxScaleUpStep": 10, "maxScaleDownStep": 2,
                     "scaleDownStabilizationSeconds": 10},
        "demand": {"query": query, "perReplicaCapacity": 50, "targetUtilization": 1.0, "podStartupSeconds": 0},
        "forecast": {"enabled": False, "historySeconds": 3600, "horizonSeconds": 0},
        "anomaly": {"enabled": False},
    }
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return {"apiVersion": "careplane.io/v1alpha1", "kind": "ScalingPolicy",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": body}


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return {}


# --- RBAC: which (apiGroup, resource, verb) calls the operator made ---------------------------
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
# kopf's aiohttp client, the kubernetes client and careplane's own async client (kube_async.USER_AGENT)
OPERATOR_AGENTS = ("kopf/", "OpenAPI-Generator/", "careplane-operator/")


def api_call(method: str, path: str, params: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) of one request, or None for discovery (/api, /apis/g/v)."""
    m = _PATH.match(path)
    if m is None:
        return None
    group = "" if m.group("core") else m.group("group")
    resource = m.group("resource")
    if m.group("ns") is None and resource == "namespaces" and m.group("name"):
        return None if m.group("sub") is None else (group, f"namespaces/{m.group('sub')}", method.lower())
    name, sub = m.group("name"), m.group("sub")
    if sub:
        resource = f"{resource}/{sub}"
    method = method.upper()
    if method == "GET":
        verb = "watch" if params.get("watch") in ("true", "1") else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return group, resource, verb


def operator_calls(requests: Any) -> set[tuple[str, str, str]]:
    calls = set()
    for r in requests:
        agent = r.headers.get("User-Agent", "")
        if not agent.startswith(OPERATOR_AGENTS):
            continue
        method = r.method.value if hasattr(r.method, "value") else str(r.method)
        call = api_call(method, r.url.path, r.params)
        if call is not None:
            calls.add(call)
    return calls


def clusterrole_permissions(rbac_yaml: str) -> set[tuple[str, str, str]]:
    allowed = set()
    for doc in yaml.safe_load_all(rbac_yaml):
        if doc and doc["kind"] == "ClusterRole":
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            allowed.add((group, resource, verb))
    return allowed


# --- a slow Prometheus: a real HTTP proxy on loopback that delays chosen queries ----------------
class SlowProxy:
    """Forwards every request to ``upstream``; while ``slow`` is set, requests whose decoded path or body
    contain ``marker`` wait ``delay`` seconds first (a Prometheus too slow for the operator's timeout).

    Threaded, so a delayed request never holds up the others (the operator's other queries stay fast).
    """

    def __init__(self, upstream: str, marker: str, delay: float) -> None:
        self.upstream, self.marker, self.delay = upstream.rstrip("/"), marker, delay
        self.slow = threading.Event()
        self.delayed = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = urllib.parse.unquote_plus(self.path + "?" + body.decode(errors="replace"))
                if proxy.slow.is_set() and proxy.marker in seen:
                    proxy.delayed += 1
                    time.sleep(proxy.delay)
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None, method=self.command)
                if self.headers.get("Content-Type"):
                    request.add_header("Content-Type", self.headers["Content-Type"])
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        status, payload, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
                except urllib.error.HTTPError as err:
                    status, payload, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: that is the point
                    pass

            do_GET = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="slow-proxy", daemon=True)

    def __enter__(self) -> SlowProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
