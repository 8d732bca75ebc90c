"""The sandbox's demo healthcare workloads: small HTTP services whose capacity follows the cluster.

What this models (and why it is enough for careplane to be judged on):

* Five services on 127.0.0.1, one port each, named after the example
  ScalingPolicies: a FHIR-style API (``/Patient``, ``/Observation`` reads,
  searches and writes), lab orders (``/ServiceRequest``, ``/DiagnosticReport``),
  vitals ingestion (``POST /vitals`` with a batch of device messages), telehealth
  sessions (create, poll, heartbeat, end) and a billing batch (``POST
  /claims/batch``). Each exports the metrics its policy queries
  (``http_requests_total{service,code}``, ``http_request_duration_seconds``,
  ``vitals_messages_total``/``vitals_messages_failed_total``,
  ``billing_claims_processed_total``) plus ``sandbox_*`` gauges of its state.
* Capacity: ``ready replicas x perReplicaCapacity`` work units per second
  (requests, messages or claims). ``spec.replicas`` of the target is polled
  from the (emulated) API server; a new replica serves after
  ``podStartupSeconds``, a removed one stops at once (the DESIGN.md evaluation
  model). Each replica has a few worker slots; a request's latency is its
  service time plus an M/M/c (Erlang C) queueing wait at the estimated
  arrival rate, plus a fluid backlog while arrivals significantly exceed
  capacity (``CapacityModel.excess_rate`` says why "significantly"). So
  p95 latency is flat at low utilisation and climbs steeply as utilisation
  nears one. The rate comes from the real arrivals (``arrival_rate.py``): a
  window of ~200 of them (1-60 s), restarted when a likelihood-ratio test
  sees the rate change, so its noise does not grow with the sampling weight
  (see Sampling below) while a 9x surge is still read within seconds. Batch requests are queued
  as if their units arrived one by one (M/M/c, not a batch-arrival queue),
  which understates their waits somewhat near saturation.
* The DestinationRule: while ``http1MaxPendingRequests`` requests are queued
  (in work units: times the mean batch size for batch services) a new request
  is refused at once with 503 (Envoy's pending-request overflow);
  ``outlierDetection`` ejects a routing backend after ``consecutive5xxErrors``
  consecutive 5xx for ``baseEjectionTime x ejections``, never more than
  ``maxEjectionPercent`` of the backends.
* The VirtualService/HTTPRoute weights split each request between the routing
  backends (two regions); a scenario can inject faults into one backend
  (``PUT /_sandbox/fault``): a share of its requests fail with 503 and/or gain
  latency.
* Sampling: to keep real traffic within what one shared laptop core can drive,
  one real HTTP request to the FHIR, lab and telehealth services stands for
  ``SAMPLING_WEIGHT`` (20) requests; counters and histograms count it that
  many times and it costs that many work units. Vitals and billing requests
  carry real batches (messages, claims), so they need no weight. The weight
  does not make the latency noisier: the queueing model's rate estimate
  counts real arrivals until it has enough of them (see above); with a
  fixed 5 s window telehealth at 60 % load read a p95 of 0.57 s where
  Erlang C gives 0.14 s (benchmarks/sandbox_latency.py).

What this does NOT model: individual pods (replicas are a pool; outlier
ejection acts on a whole region, where Envoy ejects hosts), TCP connection
limits, per-pod load imbalance, CPU, memory, cold caches, retries inside the
mesh, anything the service would do with the payload (nothing is stored), and
the regions having separate replica pools (both backends share the target's
replicas; a backend is a region's network path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import random
import re
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from careplane.policy import ScalingPolicy
from careplane.sandbox.arrival_rate import ArrivalRateEstimator, RateEstimator
from careplane.sandbox.cluster_view import ApiEndpoint, ClusterWatcher
from careplane.validation import parse_policy

log = logging.getLogger(__name__)

# One real request to a sampled service stands for this many (see the module docstring): it keeps the
# real request rate of a 9x surge within what Locust and the services can do on one shared core.
SAMPLING_WEIGHT = 20
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
UPSTREAM_TIMEOUT_SECONDS = 10.0  # the mesh's route timeout: a request queued longer gets 504
_ID = re.compile(r"^[0-9a-fA-F-]{1,64}$")


@dataclass(frozen=True)
class ServiceBehaviour:
    """How one kind of service spends its time: the parts a ScalingPolicy does not say."""

    unit: str = "request"  # what perReplicaCapacity counts: request, message or claim
    batch_field: str | None = None  # JSON list in the body whose length is the work units (batch services)
    request_weight: int = SAMPLING_WEIGHT  # real request -> this many modeled requests (sampled services only)
    service_seconds: float = 0.04  # latency of one request on an idle replica
    slots_per_replica: int = 2  # concurrent requests one replica works on
    timeout_seconds: float = UPSTREAM_TIMEOUT_SECONDS  # the mesh route's timeout: longer waits get 504


BEHAVIOURS: dict[str, ServiceBehaviour] = {
    "fhir-api": ServiceBehaviour(service_seconds=0.04, slots_per_replica=2),
    "lab-orders": ServiceBehaviour(service_seconds=0.1, slots_per_replica=3),
    "telehealth": ServiceBehaviour(service_seconds=0.03, slots_per_replica=1),
    "vitals-ingestion": ServiceBehaviour(
        unit="message", batch_field="messages", request_weight=1, service_seconds=0.02, slots_per_replica=4
    ),
    "billing-batch": ServiceBehaviour(
        unit="claim", batch_field="claims", request_weight=1, service_seconds=0.3, slots_per_replica=1,
        timeout_seconds=60.0,  # a batch submission: 20 claims at 5 claims/s take 4 s before any queueing
    ),
}


@dataclass(frozen=True)
class WorkloadProfile:
    """One demo workload: its policy's numbers plus its behaviour."""

    name: str  # the `service` label and the target's name
    namespace: str
    target_kind: str
    per_replica_capacity: float  # work units / s one replica serves
    pod_startup_seconds: float
    behaviour: ServiceBehaviour
    initial_replicas: int
    backends: tuple[str, ...] = ("default",)
    default_weights: Mapping[str, int] = field(default_factory=lambda: {"default": 100})
    destination_rule: str | None = None
    route_kind: str | None = None
    route_name: str | None = None

    @classmethod
    def from_policy(cls, policy: ScalingPolicy, initial_replicas: int | None = None) -> WorkloadProfile:
        spec = policy.spec
        behaviour = BEHAVIOURS.get(spec.targetRef.name, ServiceBehaviour())
        backends: tuple[str, ...] = ("default",)
        weights: dict[str, int] = {"default": 100}
        if spec.routing is not None:
            backends = tuple(b.name for b in spec.routing.backends)
            weights = {b.name: b.weight for b in spec.routing.backends}
        return cls(
            name=spec.targetRef.name,
            namespace=policy.metadata.namespace or "default",
            target_kind=spec.targetRef.kind,
            per_replica_capacity=spec.demand.perReplicaCapacity,
            pod_startup_seconds=spec.demand.podStartupSeconds,
            behaviour=behaviour,
            initial_replicas=spec.replicas.min if initial_replicas is None else initial_replicas,
            backends=backends,
            default_weights=weights,
            destination_rule=spec.circuitBreaker.destinationRule if spec.circuitBreaker else None,
            route_kind=spec.routing.kind.value if spec.routing else None,
            route_name=spec.routing.name if spec.routing else None,
        )


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (c servers, offered load a = lambda/mu erlangs)."""
    if servers <= 0:
        return 1.0
    if offered_load >= servers:
        return 1.0
    b = 1.0  # Erlang B by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    return servers * b / (servers - offered_load * (1.0 - b))


@dataclass
class BackendState:
    """Outlier detection and fault injection of one routing backend."""

    consecutive_5xx: int = 0
    ejected_until: float = 0.0
    ejections: int = 0
    fault_error_rate: float = 0.0
    fault_latency_seconds: float = 0.0


class CapacityModel:
    """Arrival rate, queueing wait and backlog of one workload's replica pool.

    Every part reads the same arrival-rate estimate (``ArrivalRateEstimator``: a window of ~200 real
    arrivals that restarts at a detected change), so the Erlang C wait, the mean queue length and
    the fluid backlog agree on the load. ``rate_estimator`` lets a benchmark substitute another
    estimator (the old fixed window, or the true rate) to measure what the estimate costs.
    """

    OVERLOAD_Z = 2.0  # Poisson standard deviations above capacity that start an overload (excess_rate)

    def __init__(self, per_replica_capacity: float, behaviour: ServiceBehaviour, started: float | None = None,
                 rate_estimator: RateEstimator | None = None) -> None:
        self.capacity = per_replica_capacity
        self.behaviour = behaviour
        self.started = time.monotonic() if started is None else started
        self.estimator: RateEstimator = rate_estimator or ArrivalRateEstimator(self.started)
        self.backlog = 0.0  # work units beyond what the pool can serve (fluid queue)
        self.overloaded = False  # the backlog's last reading: is the overload significant (excess_rate)
        self.last_update: float | None = None

    def arrival_rate(self, now: float) -> float:
        return self.estimator.rate(now)

    def _drain(self, now: float, ready: int, limit: float | None) -> None:
        if self.last_update is not None:
            self.backlog = max(0.0, self.backlog + self.excess_rate(now, ready) * (now - self.last_update))
        # The queue never holds more than the pending limit (Envoy refuses the rest) nor more than the
        # route timeout's worth of work (those requests time out and leave the queue).
        cap = ready * self.capacity * self.behaviour.timeout_seconds
        self.backlog = min(self.backlog, cap if limit is None else min(cap, limit))
        self.last_update = now

    def excess_rate(self, now: float, ready: int) -> float:
        """How fast the fluid backlog grows (units/s; negative: drains): only in an overload the arrivals prove.

        Why not simply estimate - capacity: below capacity the queue is stationary and the Erlang C wait
        already is its whole delay; the fluid backlog is for overload. Integrated over time, any estimate
        from the real arrivals reproduces their cumulative count, whose fluctuations are the sampling
        weight (20) times a real service's: just below capacity the backlog became a random walk of
        sampling noise (fhir-api at 95 %: p95 1.6 s where the true rate gives 0.6 s, measured in
        benchmarks/sandbox_latency.py). So the backlog grows (by the whole estimated excess) only while
        the window's arrivals exceed what capacity would bring by ``OVERLOAD_Z`` Poisson standard
        deviations; an estimate above capacity by less holds it; one below capacity drains it. A surge
        of several times capacity is significant within a second or two of the window's restart; a
        steady 120 % load at telehealth's 1.8 real arrivals/s (z ~ 1.9 with 60 s of arrivals) about
        half of the time, so a mild overload piles up more slowly than it would (tested; measured at
        60 s: 0-500 units of a true 500, median ~420). Without the gate, vitals at 95 % read a p95 of
        2.3 s where the true rate gives 0.39 s; with it 0.51 s (the benchmark).
        """
        rate, mu = self.arrival_rate(now), ready * self.capacity
        if rate <= mu:
            self.overloaded = False
            return rate - mu
        error = self.estimator.relative_error(now)  # 1/sqrt(arrivals counted)
        ratio = rate / mu if mu > 0 else math.inf
        # (n - n0) / sqrt(n0) with n = 1/error^2 arrivals seen and n0 = n / ratio expected at capacity
        self.overloaded = error <= 0 or (ratio - 1.0) >= self.OVERLOAD_Z * error * math.sqrt(ratio)
        return rate - mu if self.overloaded else 0.0

    def queued_units(self, now: float, ready: int, limit: float | None = None) -> float:
        """Work units waiting: the fluid backlog plus Erlang C's mean queue length."""
        self._drain(now, ready, limit)
        servers = ready * self.behaviour.slots_per_replica
        mu = ready * self.capacity
        lam = min(self.arrival_rate(now), 0.98 * mu) if mu > 0 else 0.0
        if servers <= 0 or mu <= 0:
            return math.inf
        offered = lam * servers / mu
        lq = erlang_c(servers, offered) * lam / (mu - lam)
        return self.backlog + lq

    def admit(self, now: float, units: float) -> None:
        self.estimator.admit(now, units)

    def sample_latency(self, now: float, ready: int, units: float, rng: random.Random) -> float:
        """One request's latency: its service time, an M/M/c wait at the estimated rate, and the backlog's wait."""
        mu = ready * self.capacity
        servers = ready * self.behaviour.slots_per_replica
        lam = min(self.arrival_rate(now), 0.98 * mu)
        service = self.behaviour.service_seconds * rng.lognormvariate(0.0, 0.25)
        if self.behaviour.batch_field:  # a batch is spread over the slots of one replica
            service *= max(1.0, units / max(1.0, self.capacity * self.behaviour.service_seconds))
        wait = 0.0
        if rng.random() < erlang_c(servers, lam * servers / mu):
            wait = rng.expovariate(mu - lam)
        return service + wait + self.backlog / mu


class Workload:
    """One service: an aiohttp app, its metrics, its capacity model and its view of the cluster."""

    def __init__(self, profile: WorkloadProfile, watcher: ClusterWatcher | None, seed: int = 0) -> None:
        self.profile = profile
        self.watcher = watcher
        self.rng = random.Random(seed)
        self.model = CapacityModel(profile.per_replica_capacity, profile.behaviour)
        self.backends = {name: BackendState() for name in profile.backends}
        self.registry = CollectorRegistry()
        self.port: int | None = None
        self._ids = 100000
        self._exposed: set[tuple[str, str]] = set()  # (route, method) whose series exist (see _expose)
        self.units_per_batch = 1.0  # mean work units per request of a batch service
        self._batches = 0
        svc = {"service": profile.name}
        self.requests = Counter(
            "http_requests_total", "HTTP requests served, by response code and routing backend.",
            ["service", "route", "method", "code", "backend"], registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "Request latency seen at the mesh sidecar.",
            ["service", "route", "backend"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.ready_gauge = Gauge("sandbox_ready_replicas", "Replicas serving traffic.", ["service"],
                                 registry=self.registry)
        self.desired_gauge = Gauge("sandbox_desired_replicas", "spec.replicas of the target.", ["service"],
                                   registry=self.registry)
        self.capacity_gauge = Gauge("sandbox_capacity", "Work units/s the ready replicas serve.", ["service"],
                                    registry=self.registry)
        self.pending_gauge = Gauge("sandbox_pending_requests", "Work units queued.", ["service"],
                                   registry=self.registry)
        self.max_pending_gauge = Gauge("sandbox_max_pending_requests", "http1MaxPendingRequests in force (-1: none).",
                                       ["service"], registry=self.registry)
        self.weight_gauge = Gauge("sandbox_routing_weight", "Route weight in force.", ["service", "backend"],
                                  registry=self.registry)
        self.ejected_gauge = Gauge("sandbox_backend_ejected", "1 while outlier detection ejects the backend.",
                                   ["service", "backend"], registry=self.registry)
        self.fault_gauge = Gauge("sandbox_backend_fault_error_rate", "Injected error rate.", ["service", "backend"],
                                 registry=self.registry)
        self.messages = self.failed_messages = self.claims = None
        if profile.behaviour.unit == "message":
            self.messages = Counter("vitals_messages", "Device messages received.", ["service"],
                                    registry=self.registry)
            self.failed_messages = Counter("vitals_messages_failed", "Device messages not stored.", ["service"],
                                           registry=self.registry)
            self.messages.labels(**svc)
            self.failed_messages.labels(**svc)
        if profile.behaviour.unit == "claim":
            self.claims = Counter("billing_claims_processed", "Claims adjudicated.", ["service"],
                                  registry=self.registry)
            self.claims.labels(**svc)
        # Pre-create the series the policies' error-rate queries divide by, so a healthy service reads 0, not "no data".
        for backend in profile.backends:
            for code in ("200", "503"):
                self.requests.labels(service=profile.name, route="/", method="GET", code=code, backend=backend)

    # --- the cluster ---------------------------------------------------------------------------------------------
    def continue_history(self, value: float) -> float:
        """Make the demand counter read ``value`` now: the live series continues the backfilled history.

        The sandbox backfills days of history for this very series (same labels) and then calls this
        with the history's last value. Without it the live counter would start at 0, and rate() over
        a counter that starts mid-window reads the first minute as much lower demand than there is (a
        dip the forecaster and the anomaly detector would see at every demo start). Returns the amount
        added (never negative: a counter only goes up).
        """
        from careplane.sandbox.history import DEMAND_SERIES

        name, labels = DEMAND_SERIES.get(self.profile.name, ("http_requests_total", {}))
        if name == "http_requests_total":
            child = self.requests.labels(service=self.profile.name, backend=self.profile.backends[0],
                                         **(labels or {"route": "/", "method": "GET", "code": "200"}))
        elif self.messages is not None:
            child = self.messages.labels(self.profile.name)
        elif self.claims is not None:
            child = self.claims.labels(self.profile.name)
        else:
            return 0.0
        current = child._value.get()  # prometheus_client has no public read of a child's value
        add = max(0.0, value - current)
        child.inc(add)
        return add

    async def put_counter(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"added": self.continue_history(float(body["value"]))})

    def ready_replicas(self, now: float) -> int:
        if self.watcher is None:
            return self.profile.initial_replicas
        return self.watcher.tracker.ready(now)

    def weights(self) -> dict[str, int]:
        if self.watcher is not None and self.watcher.state.weights:
            known = {k: v for k, v in self.watcher.state.weights.items() if k in self.backends}
            if known:
                return known
        return dict(self.profile.default_weights)

    def max_pending(self) -> int | None:
        return self.watcher.state.traffic.max_pending_requests if self.watcher else None

    def pending_limit_units(self) -> float | None:
        """``http1MaxPendingRequests`` in work units: the queue is modelled in units, Envoy counts requests.

        A sampled request's units are the modeled requests it stands for (one unit each); a batch
        request carries ``units_per_batch`` units (device messages, claims). Comparing the queue's
        units with a limit in requests would make a vitals queue of 150 requests hold under 4
        batches of ~40 messages: a far smaller queue than the DestinationRule declares.
        """
        limit = self.max_pending()
        if limit is None:
            return None
        return limit * (self.units_per_batch if self.profile.behaviour.batch_field else 1.0)

    def _pick_backend(self, now: float) -> str:
        weights = self.weights()
        healthy = {b: w for b, w in weights.items() if self.backends[b].ejected_until <= now}
        pool = healthy if sum(healthy.values()) > 0 else weights
        if sum(pool.values()) <= 0:
            pool = {b: 1 for b in self.backends}
        names = list(pool)
        return self.rng.choices(names, weights=[pool[n] for n in names])[0]

    def _record_upstream_result(self, backend: str, failed: bool, now: float) -> None:
        """Envoy's outlier detection, per backend region, on upstream (not locally refused) results."""
        state = self.backends[backend]
        if not failed:
            state.consecutive_5xx = 0
            return
        state.consecutive_5xx += 1
        traffic = self.watcher.state.traffic if self.watcher else None
        if traffic is None or traffic.consecutive_5xx_errors is None:
            return
        if state.consecutive_5xx < traffic.consecutive_5xx_errors or state.ejected_until > now:
            return
        ejected = sum(1 for b in self.backends.values() if b.ejected_until > now)
        if (ejected + 1) * 100 > traffic.max_ejection_percent * len(self.backends):
            return
        state.ejections += 1
        state.ejected_until = now + traffic.base_ejection_seconds * state.ejections
        state.consecutive_5xx = 0

    # --- requests ------------------------------------------------------------------------------------------------
    @staticmethod
    def route_of(path: str) -> str:
        parts = [("{id}" if _ID.match(p) and any(c.isdigit() for c in p) else p) for p in path.split("/") if p]
        return "/" + "/".join(parts)

    async def handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        beh = self.profile.behaviour
        units: float = float(beh.request_weight)
        payload: Any = None
        if request.method in ("POST", "PUT"):
            try:
                payload = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return web.json_response({"resourceType": "OperationOutcome", "issue": "body is not JSON"}, status=400)
            if beh.batch_field:
                batch = payload.get(beh.batch_field) if isinstance(payload, dict) else None
                if not isinstance(batch, list) or not batch:
                    return web.json_response({"error": f"'{beh.batch_field}' must be a non-empty list"}, status=400)
                units = float(len(batch))
        elif beh.batch_field:
            units = 1.0
        route = self.route_of(request.path)
        now = time.monotonic()
        ready = self.ready_replicas(now)
        backend = self._pick_backend(now)
        code, latency = 200 if request.method != "POST" else 201, 0.0
        also_failed = 0  # of the other modeled requests this one stands for, how many the fault failed
        others_code: int | None = None  # their code when the fault spared them (None: all share ``code``)
        if beh.batch_field:  # running mean batch size (see pending_limit_units)
            self.units_per_batch += (units - self.units_per_batch) * (1.0 if self._batches == 0 else 0.02)
            self._batches += 1
        max_pending = self.pending_limit_units()
        headers: dict[str, str] = {}  # what Envoy would add: the overflow flag or the upstream's time
        if ready <= 0:
            code, latency = 503, 0.001  # no healthy upstream
        elif max_pending is not None and self.model.queued_units(now, ready, max_pending) >= max_pending:
            code, latency = 503, 0.001  # Envoy's pending-request overflow: refused before reaching the service
            headers["x-envoy-overloaded"] = "true"
        else:
            self.model.queued_units(now, ready, max_pending)
            self.model.admit(now, units)
            fault = self.backends[backend]
            latency = self.model.sample_latency(now, ready, units, self.rng) + fault.fault_latency_seconds
            failed = self.rng.random() < fault.fault_error_rate
            also_failed = self._modeled_failures(fault.fault_error_rate)
            if latency > beh.timeout_seconds:
                code, latency = 504, beh.timeout_seconds
            others_code = code  # what the modeled requests the fault spared got
            if failed:
                code, latency = 503, min(latency, 0.005 + fault.fault_latency_seconds)
            self._record_upstream_result(backend, code >= 500, now)
            headers["x-envoy-upstream-service-time"] = str(round(latency * 1000))
        await asyncio.sleep(max(0.0, latency - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
        self._count(route, request.method, code, backend, elapsed, units, also_failed, others_code)
        if code >= 500:
            return web.json_response({"resourceType": "OperationOutcome", "issue": "unavailable"}, status=code,
                                     headers=headers)
        return web.json_response(self._body(route, request.method, payload, units), status=code, headers=headers)

    def _expose(self, route: str, method: str) -> None:
        """Create every series a (route, method) can produce, at 0, the first time it is seen.

        Why: Prometheus' rate() takes a series' first scraped sample as its
        starting point, so the increment that *creates* a series is never
        counted. Errors create new series (code 503 on the failing backend):
        the first error of each route on each backend would be lost to every
        error-rate query. Only the first request of a (route, method) is lost
        this way, at start-up, as on a real service.
        """
        key = (route, method)
        if key in self._exposed:
            return
        self._exposed.add(key)
        ok = "201" if method == "POST" else "200"
        for backend in self.profile.backends:
            for code in (ok, "503", "504"):
                self.requests.labels(self.profile.name, route, method, code, backend)
            self.latency.labels(self.profile.name, route, backend)

    def _modeled_failures(self, error_rate: float) -> int:
        """How many of the *other* modeled requests a sampled request stands for the fault fails.

        Why: one real request stands for ``request_weight`` (20) modeled ones.
        Counting all 20 with the real request's single outcome made a fault's
        error ratio a handful of coin flips: the FHIR API's secondary region
        gets ~0.3 real requests/s at weight 10 %, and a 34 s fault at 60 %
        read as 12-20 % errors on that region, first seen 20 s after the
        fault began (measured in two demo runs). Each modeled request fails
        independently with the fault's probability, as real ones would.
        """
        others = self.profile.behaviour.request_weight - 1
        if error_rate <= 0.0 or others <= 0:
            return 0
        return sum(1 for _ in range(others) if self.rng.random() < error_rate)

    def _count(self, route: str, method: str, code: int, backend: str, elapsed: float, units: float,
               also_failed: int = 0, others_code: int | None = None) -> None:
        """Count the modeled requests a real one stands for: with ``others_code`` the real request is one of
        them, ``also_failed`` of the others failed (503) and the rest got ``others_code``; without it, all
        share ``code`` (a refusal, a batch)."""
        self._expose(route, method)
        weight = self.profile.behaviour.request_weight
        if others_code is None or weight <= 1:
            self.requests.labels(self.profile.name, route, method, str(code), backend).inc(weight)
        else:
            also_failed = min(max(0, also_failed), weight - 1)
            counts = {str(code): 1.0}
            counts[str(others_code)] = counts.get(str(others_code), 0.0) + weight - 1 - also_failed
            counts["503"] = counts.get("503", 0.0) + also_failed
            for c, n in counts.items():
                if n:
                    self.requests.labels(self.profile.name, route, method, c, backend).inc(n)
        hist = self.latency.labels(self.profile.name, route, backend)
        for _ in range(weight):
            hist.observe(elapsed)
        if self.messages is not None and self.failed_messages is not None and route.startswith("/vitals"):
            self.messages.labels(self.profile.name).inc(units)
            if code >= 500:
                self.failed_messages.labels(self.profile.name).inc(units)
        if self.claims is not None and code < 500 and route.startswith("/claims/batch"):
            self.claims.labels(self.profile.name).inc(units)

    def _body(self, route: str, method: str, payload: Any, units: float) -> dict[str, Any]:
        self._ids += 1
        if method == "POST":
            return {"id": str(self._ids), "status": "created", "units": units}
        resource = route.strip("/").split("/")[0] or "Resource"
        if "{id}" in route:
            return {"resourceType": resource, "id": str(self._ids), "meta": {"versionId": "1"},
                    "text": {"status": "generated", "div": "x" * 600}}
        count = self.rng.randint(1, 20)
        return {"resourceType": "Bundle", "type": "searchset", "total": count,
                "entry": [{"resource": {"resourceType": resource, "id": str(self._ids + i)}} for i in range(count)]}

    # --- sandbox control and metrics -----------------------------------------------------------------------------
    async def put_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        backend = str(body.get("backend", self.profile.backends[-1]))
        if backend not in self.backends:
            return web.json_response({"error": f"unknown backend {backend!r}", "backends": list(self.backends)},
                                     status=400)
        state = self.backends[backend]
        state.fault_error_rate = float(body.get("errorRate", 0.0))
        state.fault_latency_seconds = float(body.get("latencySeconds", 0.0))
        return web.json_response(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        ready = self.ready_replicas(now)
        return {
            "service": self.profile.name,
            "namespace": self.profile.namespace,
            "readyReplicas": ready,
            "desiredReplicas": self.watcher.tracker.desired() if self.watcher else self.profile.initial_replicas,
            "arrivalRate": self.model.arrival_rate(now),
            "capacity": ready * self.profile.per_replica_capacity,
            "maxPending": self.max_pending(),
            "weights": self.weights(),
            "backends": {n: {"ejected": b.ejected_until > now, "ejections": b.ejections,
                             "faultErrorRate": b.fault_error_rate} for n, b in self.backends.items()},
        }

    async def get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def metrics(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        ready = self.ready_replicas(now)
        name = self.profile.name
        self.ready_gauge.labels(name).set(ready)
        self.desired_gauge.labels(name).set(self.watcher.tracker.desired() if self.watcher else ready)
        self.capacity_gauge.labels(name).set(ready * self.profile.per_replica_capacity)
        mp = self.max_pending()
        queued = self.model.queued_units(now, ready, self.pending_limit_units()) if ready > 0 else 0.0
        self.pending_gauge.labels(name).set(queued)
        self.max_pending_gauge.labels(name).set(-1 if mp is None else mp)
        weights = self.weights()
        for backend, state in self.backends.items():
            self.weight_gauge.labels(name, backend).set(weights.get(backend, 0))
            self.ejected_gauge.labels(name, backend).set(1 if state.ejected_until > now else 0)
            self.fault_gauge.labels(name, backend).set(state.fault_error_rate)
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/_sandbox/state", self.get_state)
        app.router.add_put("/_sandbox/fault", self.put_fault)
        app.router.add_put("/_sandbox/counter", self.put_counter)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def load_policies(paths: Iterable[str | Path]) -> list[ScalingPolicy]:
    """Every ScalingPolicy in the given files or directories (*.yaml), in name order."""
    import yaml

    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    policies = [parse_policy(doc) for f in files for doc in yaml.safe_load_all(f.read_text()) if doc]
    return sorted(policies, key=lambda pol: pol.metadata.name)


class WorkloadFleet:
    """Runs a set of workloads on loopback ports in the current event loop."""

    def __init__(self, profiles: Iterable[WorkloadProfile], kubeconfig: str | Path | None = None,
                 host: str = "127.0.0.1", poll_seconds: float = 1.0) -> None:
        endpoint = ApiEndpoint.from_kubeconfig(kubeconfig) if kubeconfig else None
        self.host = host
        self.workloads: dict[str, Workload] = {}
        for i, prof in enumerate(profiles):
            watcher = None
            if endpoint is not None:
                watcher = ClusterWatcher(
                    endpoint, prof.namespace, prof.target_kind, prof.name, prof.pod_startup_seconds,
                    prof.initial_replicas, prof.destination_rule, prof.route_kind, prof.route_name, poll_seconds,
                )
            self.workloads[prof.name] = Workload(prof, watcher, seed=i)
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    async def start(self, ports: Mapping[str, int] | None = None) -> dict[str, int]:
        for name, wl in self.workloads.items():
            runner = web.AppRunner(wl.app(), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, (ports or {}).get(name, 0))
            await site.start()
            server = cast(asyncio.Server | None, site._server)  # aiohttp exposes the bound port only here
            sockets = server.sockets if server else ()
            wl.port = int(sockets[0].getsockname()[1])
            self._runners.append(runner)
            if wl.watcher is not None:
                self._tasks.append(asyncio.create_task(wl.watcher.run(self._stop)))
        return self.ports()

    def ports(self) -> dict[str, int]:
        return {name: wl.port for name, wl in self.workloads.items() if wl.port is not None}

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=3)
        for runner in self._runners:
            await runner.cleanup()


async def _serve(args: argparse.Namespace) -> None:
    initial = dict(kv.split("=", 1) for kv in args.initial_replicas)
    profiles = [
        WorkloadProfile.from_policy(p, int(initial[p.metadata.name]) if p.metadata.name in initial else None)
        for p in load_policies(args.policies)
    ]
    fleet = WorkloadFleet(profiles, args.kubeconfig, poll_seconds=args.poll_seconds)
    ports = await fleet.start({k: int(v) for k, v in (kv.split("=", 1) for kv in args.ports)})
    info = {name: {"port": port, "namespace": fleet.workloads[name].profile.namespace} for name, port in ports.items()}
    if args.ports_file:
        tmp = Path(args.ports_file + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(args.ports_file)  # atomic: the parent polls for the file
    else:
        print(json.dumps(info), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fleet.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m careplane.sandbox.workloads``: serve the workloads in their own process (the demo does this)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--policies", nargs="+", default=["crds/examples"], help="policy files or directories")
    parser.add_argument("--kubeconfig", default=None, help="follow this cluster (omit: fixed replicas)")
    parser.add_argument("--initial-replicas", nargs="*", default=[], help="name=N for the starting replicas")
    parser.add_argument("--ports", nargs="*", default=[], help="name=PORT to listen on (default: free ports)")
    parser.add_argument("--ports-file", default=None, help="write {name: {port, namespace}} JSON here when serving")
    parser.add_argument("--poll-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s workloads %(levelname)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
