"""The demo workloads: queueing model, cluster following, DestinationRule and route semantics, metric names."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from careplane.sandbox.cluster_view import ReplicaTracker, TrafficPolicy, parse_duration, weights_from_route
from careplane.sandbox.demo import EXAMPLES, workload_objects
from careplane.sandbox.emulator import EmulatedCluster
from careplane.sandbox.workloads import (
    BEHAVIOURS,
    CapacityModel,
    ServiceBehaviour,
    WorkloadFleet,
    WorkloadProfile,
    erlang_c,
    load_policies,
)

ISTIO = "networking.istio.io/v1"


# --- pure parts ------------------------------------------------------------------------------------------------------
def test_erlang_c_matches_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)  # textbook: c=2, a=1 -> 1/3
    assert erlang_c(4, 4.0) == 1.0 and erlang_c(0, 0.1) == 1.0


def test_latency_grows_as_utilisation_nears_one() -> None:
    def p95(rate: float) -> float:
        model = CapacityModel(50.0, ServiceBehaviour(service_seconds=0.04, slots_per_replica=2), started=0.0)
        now = 5.0
        for i in range(int(rate * 5)):
            model.admit(now - 5 + i / rate, 1.0)
        assert model.arrival_rate(now) == pytest.approx(rate, rel=0.05)
        rng = random.Random(1)
        samples = sorted(model.sample_latency(now, 2, 1.0, rng) for _ in range(2000))
        return samples[int(0.95 * len(samples))]

    low, mid, high = p95(30.0), p95(70.0), p95(97.0)
    assert low < mid < high
    assert low < 0.1 and high > 3 * low


def test_replica_tracker_readiness_delay_and_immediate_removal() -> None:
    tracker = ReplicaTracker(startup_seconds=10.0, ready_at=[0.0, 0.0])
    tracker.set_desired(5, now=100.0)
    assert (tracker.desired(), tracker.ready(105.0), tracker.ready(110.0)) == (5, 2, 5)
    tracker.set_desired(8, now=120.0)
    tracker.set_desired(6, now=121.0)  # removes two of the pods that are not ready yet
    assert (tracker.ready(121.0), tracker.ready(130.0)) == (5, 6)
    tracker.set_desired(1, now=131.0)
    assert tracker.ready(131.0) == 1


def test_destination_rule_and_route_parsing() -> None:
    pol = next(p for p in load_policies([EXAMPLES]) if p.metadata.name == "fhir-api")
    objs = {o["kind"]: o for o in workload_objects(pol, 4)}
    tp = TrafficPolicy.from_destination_rule(objs["DestinationRule"])
    assert tp.max_pending_requests == 80  # 20 per replica x 4, within [10, 2000]
    assert (tp.consecutive_5xx_errors, tp.base_ejection_seconds, tp.max_ejection_percent) == (10, 30.0, 50.0)
    assert weights_from_route("VirtualService", objs["VirtualService"]) == {"primary": 90, "secondary": 10}
    tele = next(p for p in load_policies([EXAMPLES]) if p.metadata.name == "telehealth")
    route = next(o for o in workload_objects(tele, 2) if o["kind"] == "HTTPRoute")
    assert weights_from_route("HTTPRoute", route) == {"telehealth-east": 50, "telehealth-west": 50}
    assert parse_duration("1m30s", 0) == 90.0 and parse_duration("250ms", 0) == 0.25 and parse_duration(None, 7) == 7


def test_every_metric_the_example_policies_query_is_exported() -> None:
    """The workload for each example policy exports each metric name its queries use."""
    from prometheus_client import generate_latest

    for pol in load_policies([EXAMPLES]):
        queries = [pol.spec.demand.query]
        if pol.spec.slo:
            queries += [q for q in (pol.spec.slo.latencyQuery, pol.spec.slo.errorRateQuery) if q]
        names = {m for q in queries for m in re.findall(r"([a-z_]+)\{", q)}
        fleet = WorkloadFleet([WorkloadProfile.from_policy(pol, 2)])
        wl = fleet.workloads[pol.spec.targetRef.name]
        wl._count("/x", "GET", 200, wl.profile.backends[0], 0.01, 3.0)  # one observation so histograms exist
        if wl.messages is not None:
            wl._count("/vitals", "POST", 201, "default", 0.01, 3.0)
        if wl.claims is not None:
            wl._count("/claims/batch", "POST", 201, "default", 0.01, 3.0)
        text = generate_latest(wl.registry).decode()
        for name in names:
            assert re.search(rf"^{name}\{{[^}}]*service=\"{pol.spec.targetRef.name}\"", text, re.M), (pol.metadata.name, name)


def test_a_route_exposes_its_error_series_at_zero_before_the_first_error() -> None:
    """rate() never counts the increment that creates a series: a fault's first 503s must land on a series
    Prometheus has already seen at 0, on every backend, or the error ratio reads low and late."""
    from prometheus_client import generate_latest

    pol = next(p for p in load_policies([EXAMPLES]) if p.metadata.name == "fhir-api")
    wl = WorkloadFleet([WorkloadProfile.from_policy(pol, 2)]).workloads["fhir-api"]
    wl._count("/Patient/{id}", "GET", 200, "primary", 0.01, 20.0)
    series = {}
    for line in generate_latest(wl.registry).decode().splitlines():
        if line.startswith("http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit("} ", 1)[0]))
            series[(labels["route"], labels["code"], labels["backend"])] = float(line.rsplit(" ", 1)[1])
    for backend in ("primary", "secondary"):
        for code in ("503", "504"):
            assert series.get(("/Patient/{id}", code, backend)) == 0.0, (backend, code)
    assert series[("/Patient/{id}", "200", "primary")] == 20.0


def test_the_modeled_requests_a_sampled_request_stands_for_fail_independently() -> None:
    """A fault at 60 % on a region that sees a few real requests must read as ~60 % from the first ones."""
    pol = next(p for p in load_policies([EXAMPLES]) if p.metadata.name == "fhir-api")
    wl = WorkloadFleet([WorkloadProfile.from_policy(pol, 2)]).workloads["fhir-api"]
    wl.rng = random.Random(1)
    for _ in range(5):  # five real requests, each standing for 20; the real one itself succeeded
        wl._count("/Patient/{id}", "GET", 200, "secondary", 0.01, 20.0, wl._modeled_failures(0.6), 200)
    # a real request that failed: the others the fault spared still succeeded
    wl._count("/Patient/{id}", "GET", 503, "primary", 0.01, 20.0, 0, 200)
    assert wl.requests.labels("fhir-api", "/Patient/{id}", "GET", "503", "primary")._value.get() == 1
    ok = wl.requests.labels("fhir-api", "/Patient/{id}", "GET", "200", "secondary")._value.get()
    failed = wl.requests.labels("fhir-api", "/Patient/{id}", "GET", "503", "secondary")._value.get()
    assert ok + failed == 100  # every modeled request counted once
    assert 0.45 < failed / 100 < 0.75  # Binomial(95, 0.6): 57 +- 5; all-or-nothing counting would read 0 here
    assert wl._modeled_failures(0.0) == 0


def test_the_pending_limit_counts_requests_not_the_messages_a_batch_carries() -> None:
    """Envoy's http1MaxPendingRequests counts requests; a vitals request carries a batch of ~40 messages."""
    pol = next(p for p in load_policies([EXAMPLES]) if p.metadata.name == "vitals-ingestion")
    wl = WorkloadFleet([WorkloadProfile.from_policy(pol, 3)]).workloads["vitals-ingestion"]
    wl.max_pending = lambda: 150  # type: ignore[method-assign]
    wl.units_per_batch = 40.0
    assert wl.pending_limit_units() == 150 * 40.0
    fhir = next(p for p in load_policies([EXAMPLES]) if p.metadata.name == "fhir-api")
    sampled = WorkloadFleet([WorkloadProfile.from_policy(fhir, 2)]).workloads["fhir-api"]
    sampled.max_pending = lambda: 40  # type: ignore[method-assign]
    assert sampled.pending_limit_units() == 40.0  # one unit per modeled request


# --- against the emulated cluster ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(namespaces=("clinical",), ready_delay_seconds=None) as c:
        yield c


def _profile(name: str, startup: float, backends: tuple[str, ...] = ("primary", "secondary")) -> WorkloadProfile:
    return WorkloadProfile(
        name=name, namespace="clinical", target_kind="Deployment", per_replica_capacity=50.0,
        pod_startup_seconds=startup, behaviour=BEHAVIOURS["fhir-api"], initial_replicas=2, backends=backends,
        default_weights={b: 100 // len(backends) for b in backends}, destination_rule=name,
        route_kind="VirtualService", route_name=name,
    )


def _objects(name: str, replicas: int, pending: int, c5xx: int, weights: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "clinical"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
        {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": name, "namespace": "clinical"},
         "spec": {"host": name, "trafficPolicy": {
             "connectionPool": {"http": {"http1MaxPendingRequests": pending}},
             "outlierDetection": {"consecutive5xxErrors": c5xx, "baseEjectionTime": "30s", "maxEjectionPercent": 50}}}},
        {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name, "namespace": "clinical"},
         "spec": {"hosts": [name], "http": [{"route": [
             {"destination": {"host": name, "subset": b}, "weight": w} for b, w in weights.items()]}]}},
    ]


async def _hit(session: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> list[tuple[int, float]]:
    """(status, server-side time): Envoy's x-envoy-upstream-service-time in s, or -1 for a request it refused."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> tuple[int, float]:
        async with sem, session.get(url) as resp:
            await resp.read()
            if resp.headers.get("x-envoy-overloaded") == "true":
                return resp.status, -1.0
            return resp.status, float(resp.headers.get("x-envoy-upstream-service-time", "nan")) / 1000

    return await asyncio.gather(*(one() for _ in range(n)))


async def _metric(session: aiohttp.ClientSession, base: str, pattern: str) -> float:
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if re.match(pattern, line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_capacity_follows_spec_replicas_after_startup_delay(cluster: EmulatedCluster) -> None:
    for obj in _objects("scaled", 2, 1000, 10, {"primary": 100, "secondary": 0}):
        cluster.create(obj)

    async def scenario() -> tuple[float, float, float]:
        fleet = WorkloadFleet([_profile("scaled", startup=1.5)], cluster.kubeconfig_path, poll_seconds=0.2)
        ports = await fleet.start()
        base = f"http://127.0.0.1:{ports['scaled']}"
        try:
            async with aiohttp.ClientSession() as s:
                before = await _metric(s, base, r'sandbox_ready_replicas\{service="scaled"\}')
                cluster.set_scale("apps/v1", "Deployment", "scaled", "clinical", 6)
                await asyncio.sleep(0.8)
                early = await _metric(s, base, r'sandbox_ready_replicas\{service="scaled"\}')
                await asyncio.sleep(1.6)
                late = await _metric(s, base, r'sandbox_ready_replicas\{service="scaled"\}')
                return before, early, late
        finally:
            await fleet.stop()

    before, early, late = asyncio.run(scenario())
    assert (before, early, late) == (2, 2, 6)
    status = cluster.get("apps/v1", "Deployment", "scaled", "clinical")["status"]
    assert status["readyReplicas"] == 6 and status["replicas"] == 6  # the workloads play the kubelet


def test_pending_limit_gives_fast_503_and_routing_follows_weights(cluster: EmulatedCluster) -> None:
    for obj in _objects("limited", 1, 5, 100, {"primary": 0, "secondary": 100}):
        cluster.create(obj)

    async def scenario() -> tuple[list[tuple[int, float]], float, float]:
        prof = _profile("limited", startup=0.0)
        prof = WorkloadProfile(**{**prof.__dict__, "initial_replicas": 1})
        fleet = WorkloadFleet([prof], cluster.kubeconfig_path, poll_seconds=0.2)
        ports = await fleet.start()
        base = f"http://127.0.0.1:{ports['limited']}"
        try:
            await asyncio.sleep(0.6)  # first poll reads the DestinationRule and the route
            async with aiohttp.ClientSession() as s:
                # 1 replica serves 50 units/s = 5 sampled requests/s; 150 requests at once overload it.
                results = await _hit(s, base + "/Patient/1", 150, 150)
                primary = await _metric(s, base, r'http_requests_total\{.*backend="primary".*code="200"')
                secondary = await _metric(s, base, r'http_requests_total\{.*backend="secondary".*code="200"')
                return results, primary, secondary
        finally:
            await fleet.stop()

    results, primary, secondary = asyncio.run(scenario())
    refused = [t for code, t in results if code == 503]
    served = [t for code, t in results if code == 200]
    assert refused and served
    assert set(refused) == {-1.0}  # every 503 is the pending-limit overflow (refused before the upstream)
    assert max(served) > 0.15  # the admitted ones queued (an idle replica answers in ~0.04 s)
    assert primary == 0 and secondary > 0  # weight 0/100 sends everything to secondary


def test_outlier_detection_ejects_a_failing_backend(cluster: EmulatedCluster) -> None:
    for obj in _objects("ejecting", 4, 1000, 3, {"primary": 50, "secondary": 50}):
        cluster.create(obj)

    async def scenario() -> tuple[int, int, dict[str, Any]]:
        prof = WorkloadProfile(**{**_profile("ejecting", startup=0.0).__dict__, "initial_replicas": 4})
        fleet = WorkloadFleet([prof], cluster.kubeconfig_path, poll_seconds=0.2)
        ports = await fleet.start()
        base = f"http://127.0.0.1:{ports['ejecting']}"
        try:
            await asyncio.sleep(0.6)
            async with aiohttp.ClientSession() as s:
                async with s.put(base + "/_sandbox/fault", json={"backend": "secondary", "errorRate": 1.0}) as r:
                    assert r.status == 200
                first = await _hit(s, base + "/Patient/1", 40, 2)
                second = await _hit(s, base + "/Patient/1", 40, 2)
                async with s.get(base + "/_sandbox/state") as r:
                    state = await r.json()
                return sum(c == 503 for c, _ in first), sum(c == 503 for c, _ in second), state
        finally:
            await fleet.stop()

    failed_first, failed_second, state = asyncio.run(scenario())
    assert failed_first >= 3  # until 3 consecutive 5xx eject the region
    assert failed_second == 0  # ejected for 30 s: everything goes to primary
    assert state["backends"]["secondary"]["ejected"] and state["backends"]["secondary"]["ejections"] == 1


def test_workloads_module_serves_all_example_services(tmp_path: Path) -> None:
    """``python -m careplane.sandbox.workloads`` without a cluster: every example service answers its routes."""
    import json
    import subprocess
    import sys

    ports_file = tmp_path / "ports.json"
    proc = subprocess.Popen([sys.executable, "-m", "careplane.sandbox.workloads", "--policies", str(EXAMPLES),
                             "--ports-file", str(ports_file), "--initial-replicas", "billing-batch=2"],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ports_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        info = json.loads(ports_file.read_text())
        assert set(info) == {"fhir-api", "lab-orders", "telehealth", "vitals-ingestion", "billing-batch"}
        assert info["vitals-ingestion"]["namespace"] == "devices"

        async def calls() -> dict[str, int]:
            u = {k: f"http://127.0.0.1:{v['port']}" for k, v in info.items()}
            async with aiohttp.ClientSession() as s:
                out = {}
                for key, method, url, body in (
                    ("patient", "GET", u["fhir-api"] + "/Patient/123", None),
                    ("observation", "POST", u["fhir-api"] + "/Observation", {"resourceType": "Observation"}),
                    ("bad-json", "POST", u["fhir-api"] + "/Observation", None),
                    ("vitals", "POST", u["vitals-ingestion"] + "/vitals", {"messages": [{"v": 1}] * 5}),
                    ("vitals-empty", "POST", u["vitals-ingestion"] + "/vitals", {"messages": []}),
                    ("claims", "POST", u["billing-batch"] + "/claims/batch", {"claims": [{}] * 3}),
                ):
                    async with s.request(method, url, json=body) as r:
                        out[key] = r.status
                async with s.get(u["vitals-ingestion"] + "/metrics") as r:
                    text = await r.text()
                out["messages"] = int(float(re.search(r'^vitals_messages_total\{service="vitals-ingestion"\} (\S+)',
                                                      text, re.M).group(1)))  # type: ignore[union-attr]
                return out

        out = asyncio.run(calls())
        assert out == {"patient": 200, "observation": 201, "bad-json": 400, "vitals": 201, "vitals-empty": 400,
                       "claims": 201, "messages": 5}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
