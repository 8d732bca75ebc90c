"""What the demo workloads read from (and report to) the Kubernetes API they run under.

In a real cluster a pod does not read its own Deployment: the Deployment
controller starts pods, the kubelet marks them ready, and Envoy applies the
DestinationRule and route weights. The sandbox has no kubelet and no Envoy, so
the workloads play those parts themselves: they poll the target's
``spec.replicas``, the DestinationRule and the VirtualService/HTTPRoute through
the kubeconfig, turn replica changes into *ready* capacity after
``podStartupSeconds``, and write ``status.replicas``/``readyReplicas`` back so
that anything reading the scale subresource or the status sees what a real
cluster would show.

Plain HTTP through aiohttp instead of the kubernetes client: the workloads
already run an aiohttp event loop, the client is synchronous, and we read four
objects per workload once a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import re
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

log = logging.getLogger(__name__)

WORKLOAD_API = {"Deployment": "deployments", "StatefulSet": "statefulsets", "ReplicaSet": "replicasets"}
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
GATEWAY_VERSIONS = ("v1", "v1beta1")


@dataclass(frozen=True)
class ApiEndpoint:
    """Where the API server is and how to authenticate, read from a kubeconfig's current context."""

    server: str
    headers: Mapping[str, str]
    ssl_context: ssl.SSLContext | bool

    @classmethod
    def from_kubeconfig(cls, path: str | Path) -> ApiEndpoint:
        doc = yaml.safe_load(Path(path).read_text())
        contexts = {c["name"]: c["context"] for c in doc.get("contexts", [])}
        current = doc.get("current-context") or next(iter(contexts), None)
        ctx = contexts.get(current, {}) if current else {}
        clusters = {c["name"]: c["cluster"] for c in doc.get("clusters", [])}
        users = {u["name"]: u.get("user") or {} for u in doc.get("users", [])}
        cluster = clusters.get(ctx.get("cluster"), next(iter(clusters.values()), {}))
        user = users.get(ctx.get("user"), {})
        headers: dict[str, str] = {}
        if user.get("token"):
            headers["Authorization"] = f"Bearer {user['token']}"
        elif user.get("username"):
            raw = f"{user['username']}:{user.get('password', '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        server = str(cluster["server"]).rstrip("/")
        ssl_context: ssl.SSLContext | bool = False
        if server.startswith("https"):
            if cluster.get("insecure-skip-tls-verify"):
                ssl_context = False
            else:
                ssl_context = ssl.create_default_context()
                ca = cluster.get("certificate-authority-data")
                if ca:
                    ssl_context.load_verify_locations(cadata=base64.b64decode(ca).decode())
                elif cluster.get("certificate-authority"):
                    ssl_context.load_verify_locations(cafile=cluster["certificate-authority"])
            cert, key = user.get("client-certificate-data"), user.get("client-key-data")
            if cert and key and isinstance(ssl_context, ssl.SSLContext):
                # ssl wants files; the kubeconfig holds the PEM inline.
                with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as fh:
                    fh.write(base64.b64decode(cert) + b"\n" + base64.b64decode(key))
                ssl_context.load_cert_chain(fh.name)
        return cls(server=server, headers=headers, ssl_context=ssl_context)


def parse_duration(value: Any, default: float) -> float:
    """Istio durations ("30s", "1m", "500ms") or plain numbers, in seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", str(value)):
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total or default


@dataclass
class TrafficPolicy:
    """The DestinationRule fields the sandbox's stand-in for Envoy honours."""

    max_pending_requests: int | None = None  # connectionPool.http.http1MaxPendingRequests
    consecutive_5xx_errors: int | None = None  # outlierDetection.consecutive5xxErrors
    base_ejection_seconds: float = 30.0  # outlierDetection.baseEjectionTime
    max_ejection_percent: float = 10.0  # outlierDetection.maxEjectionPercent (Istio's default)

    @classmethod
    def from_destination_rule(cls, obj: Mapping[str, Any]) -> TrafficPolicy:
        tp = (obj.get("spec") or {}).get("trafficPolicy") or {}
        http = (tp.get("connectionPool") or {}).get("http") or {}
        outlier = tp.get("outlierDetection") or {}
        pending = http.get("http1MaxPendingRequests")
        c5xx = outlier.get("consecutive5xxErrors", outlier.get("consecutiveErrors"))
        return cls(
            max_pending_requests=int(pending) if pending is not None else None,
            consecutive_5xx_errors=int(c5xx) if c5xx is not None else None,
            base_ejection_seconds=parse_duration(outlier.get("baseEjectionTime"), 30.0),
            max_ejection_percent=float(outlier.get("maxEjectionPercent", 10.0)),
        )


def weights_from_route(kind: str, obj: Mapping[str, Any]) -> dict[str, int]:
    """Backend name -> weight from the first HTTP route of a VirtualService or HTTPRoute."""
    spec = obj.get("spec") or {}
    weights: dict[str, int] = {}
    if kind == "VirtualService":
        for route in (spec.get("http") or [{}])[0].get("route") or []:
            dest = route.get("destination") or {}
            name = dest.get("subset") or dest.get("host")
            if name:
                weights[str(name)] = int(route.get("weight", 0 if len(weights) else 100))
    else:
        for ref in (spec.get("rules") or [{}])[0].get("backendRefs") or []:
            if ref.get("name"):
                weights[str(ref["name"])] = int(ref.get("weight", 1))
    return weights


@dataclass
class ReplicaTracker:
    """spec.replicas over time -> ready replicas: a new pod serves after the startup delay, removal is immediate.

    This is the evaluation model of DESIGN.md (ready at t + L, removal
    immediate), so the sandbox and the backtest agree on what "capacity" means.
    """

    startup_seconds: float
    ready_at: list[float] = field(default_factory=list)  # one entry per pod, time it became (becomes) ready

    def set_desired(self, replicas: int, now: float) -> None:
        replicas = max(0, replicas)
        if replicas > len(self.ready_at):
            self.ready_at.extend([now + self.startup_seconds] * (replicas - len(self.ready_at)))
        elif replicas < len(self.ready_at):
            # Scale-down removes the pods that are not ready yet first (as the ReplicaSet controller does).
            self.ready_at.sort()
            del self.ready_at[replicas:]

    def desired(self) -> int:
        return len(self.ready_at)

    def ready(self, now: float) -> int:
        return sum(1 for t in self.ready_at if t <= now)


@dataclass
class ClusterState:
    """The latest view of one workload's objects; None when the object was never read."""

    desired_replicas: int | None = None
    traffic: TrafficPolicy = field(default_factory=TrafficPolicy)
    weights: dict[str, int] = field(default_factory=dict)
    last_ok: float = 0.0
    errors: int = 0


class ClusterWatcher:
    """Polls one workload's target, DestinationRule and route; keeps a ReplicaTracker in step."""

    def __init__(
        self,
        endpoint: ApiEndpoint,
        namespace: str,
        target_kind: str,
        target_name: str,
        startup_seconds: float,
        initial_replicas: int,
        destination_rule: str | None = None,
        route_kind: str | None = None,
        route_name: str | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.target_kind = target_kind
        self.target_name = target_name
        self.destination_rule = destination_rule
        self.route_kind = route_kind
        self.route_name = route_name
        self.poll_seconds = poll_seconds
        self.tracker = ReplicaTracker(startup_seconds)
        # The pods that exist when the sandbox starts are ready (the demo starts from a settled cluster).
        self.tracker.ready_at = [-math.inf] * max(0, initial_replicas)
        self.state = ClusterState(desired_replicas=initial_replicas)
        self._istio_version: str | None = None
        self._gateway_version: str | None = None
        self._last_status: tuple[int, int] | None = None

    def _target_path(self) -> str:
        plural = WORKLOAD_API.get(self.target_kind, self.target_kind.lower() + "s")
        return f"/apis/apps/v1/namespaces/{self.namespace}/{plural}/{self.target_name}"

    async def _get(self, session: aiohttp.ClientSession, path: str) -> dict[str, Any] | None:
        async with session.get(self.endpoint.server + path, ssl=self.endpoint.ssl_context) as resp:
            if resp.status == 404:
                return None
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json(content_type=None)
            return data

    async def _get_versioned(
        self, session: aiohttp.ClientSession, group: str, versions: tuple[str, ...], cached: str | None, tail: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        for version in (cached,) if cached else versions:
            obj = await self._get(session, f"/apis/{group}/{version}/namespaces/{self.namespace}/{tail}")
            if obj is not None:
                return obj, version
        return None, cached

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        now = time.monotonic()
        target = await self._get(session, self._target_path())
        if target is not None:
            replicas = int((target.get("spec") or {}).get("replicas", 1))
            if replicas != self.tracker.desired():
                self.tracker.set_desired(replicas, now)
            self.state.desired_replicas = replicas
        if self.destination_rule:
            dr, self._istio_version = await self._get_versioned(
                session, "networking.istio.io", ISTIO_VERSIONS, self._istio_version,
                f"destinationrules/{self.destination_rule}",
            )
            if dr is not None:
                self.state.traffic = TrafficPolicy.from_destination_rule(dr)
        if self.route_kind and self.route_name:
            if self.route_kind == "VirtualService":
                route, self._istio_version = await self._get_versioned(
                    session, "networking.istio.io", ISTIO_VERSIONS, self._istio_version,
                    f"virtualservices/{self.route_name}",
                )
            else:
                route, self._gateway_version = await self._get_versioned(
                    session, "gateway.networking.k8s.io", GATEWAY_VERSIONS, self._gateway_version,
                    f"httproutes/{self.route_name}",
                )
            if route is not None:
                weights = weights_from_route(self.route_kind, route)
                if weights:
                    self.state.weights = weights
        await self._report_status(session, now)
        self.state.last_ok = now

    async def _report_status(self, session: aiohttp.ClientSession, now: float) -> None:
        """Play the Deployment controller: status.replicas / readyReplicas follow the simulated pods."""
        desired, ready = self.tracker.desired(), self.tracker.ready(now)
        if self._last_status == (desired, ready):
            return
        body = {"status": {"replicas": desired, "readyReplicas": ready, "availableReplicas": ready,
                           "updatedReplicas": desired}}
        for suffix in ("/status", ""):
            async with session.patch(
                self.endpoint.server + self._target_path() + suffix,
                json=body,
                headers={"Content-Type": "application/merge-patch+json"},
                ssl=self.endpoint.ssl_context,
            ) as resp:
                if resp.status < 300:
                    self._last_status = (desired, ready)
                    return

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession(headers=dict(self.endpoint.headers)) as session:
            while not stop.is_set():
                try:
                    await self.poll_once(session)
                except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                    self.state.errors += 1
                    if self.state.errors in (1, 10, 100):
                        log.warning("%s/%s: cannot read the cluster (%s)", self.namespace, self.target_name, exc)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
