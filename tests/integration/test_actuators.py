"""Actuators against the emulated API server over HTTP with the kubernetes client: owned fields only, no
write when nothing changed, conflicts and server errors retried from a fresh read."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from careplane.decision.types import Actions, CircuitBreakerSettings
from careplane.operator.actuators import (
    DestinationRuleActuator,
    HTTPRouteActuator,
    ScaleActuator,
    VirtualServiceActuator,
    routing_actuator,
)
from careplane.operator.actuators.destinationrule import parse_duration
from careplane.operator.kube import Kube, KubeError, NotFound, ObjectRef, RetryPolicy, find_hpa_conflict
from careplane.sandbox.emulator import EmulatedCluster

pytestmark = pytest.mark.integration

NS = "clinical"


def workload(api_version: str, kind: str, name: str = "fhir-api", replicas: int = 2) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": NS,
                                                                 "annotations": {"owner": "team-a"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "fhir:1"}]}}}}


def patches(cluster: EmulatedCluster, fragment: str) -> int:
    return len(cluster.requests("PATCH", fragment))


@pytest.mark.parametrize(("api_version", "kind"), [
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("argoproj.io/v1alpha1", "Rollout"),
    ("example.com/v1", "Widget"),
])
def test_scale_sets_replicas_only_and_skips_noops(cluster: EmulatedCluster, kube: Kube, api_version: str, kind: str) -> None:
    if kind == "Widget":  # any kind with a scale subresource, found through discovery
        cluster.register("example.com", "v1", "widgets", "Widget", subresources=["scale", "status"])
    original = cluster.create(workload(api_version, kind))
    ref = ObjectRef(api_version, kind, "fhir-api", NS)
    act = ScaleActuator(kube)
    state = act.current(ref)
    assert (state.replicas, state.ready_replicas, state.selector) == (2, 2, "app=fhir-api")
    result = act.apply(ref, Actions(replicas=6))
    assert result.changed and (result.before, result.after) == (2, 6)
    after = cluster.get(api_version, kind, "fhir-api", NS)
    assert after["spec"]["replicas"] == 6
    assert after["spec"]["template"] == original["spec"]["template"]
    assert after["metadata"]["annotations"] == {"owner": "team-a"}
    writes = patches(cluster, "/scale")
    again = act.apply(ref, Actions(replicas=6))
    assert not again.changed and patches(cluster, "/scale") == writes  # no write when nothing changed
    assert not act.apply(ref, Actions(replicas=None)).changed


def test_scale_retries_conflicts_and_errors_without_duplicates(cluster: EmulatedCluster, kube: Kube) -> None:
    cluster.create(workload("apps/v1", "Deployment"))
    ref = ObjectRef("apps/v1", "Deployment", "fhir-api", NS)
    conflict = cluster.inject_fault(method="PATCH", path_contains="/fhir-api/scale", status=409, times=2)
    outage = cluster.inject_fault(method="GET", path_contains="/fhir-api/scale", status=503, times=1)
    result = ScaleActuator(kube).apply(ref, Actions(replicas=9))
    assert result.changed and len(conflict.hits) == 2 and len(outage.hits) == 1
    assert cluster.scale("apps/v1", "Deployment", "fhir-api", NS) == 9
    assert cluster.get("apps/v1", "Deployment", "fhir-api", NS)["metadata"]["generation"] == 2  # one spec write


def test_scale_write_that_landed_before_an_error_is_not_repeated(cluster: EmulatedCluster, kube: Kube) -> None:
    cluster.create(workload("apps/v1", "Deployment"))
    ref = ObjectRef("apps/v1", "Deployment", "fhir-api", NS)
    # The write lands but the answer is lost (504): the retry re-reads, sees 5 and writes nothing more.
    lost = cluster.inject_fault(method="PATCH", path_contains="/fhir-api/scale", status=504, apply_first=True)
    result = ScaleActuator(kube).apply(ref, Actions(replicas=5))
    assert len(lost.hits) == 1
    assert not result.changed and result.after == 5  # the retry found it done
    assert len(cluster.requests("PATCH", "/fhir-api/scale")) == 1
    assert cluster.get("apps/v1", "Deployment", "fhir-api", NS)["metadata"]["generation"] == 2


def test_scale_gives_up_with_a_clear_error_and_reports_missing_targets(cluster: EmulatedCluster, kube: Kube) -> None:
    cluster.create(workload("apps/v1", "Deployment"))
    ref = ObjectRef("apps/v1", "Deployment", "fhir-api", NS)
    cluster.inject_fault(method="PATCH", path_contains="/fhir-api/scale", status=500, times=50)
    with pytest.raises(KubeError, match="gave up after 5 attempts"):
        ScaleActuator(kube).apply(ref, Actions(replicas=4))
    assert cluster.scale("apps/v1", "Deployment", "fhir-api", NS) == 2
    with pytest.raises(NotFound):
        ScaleActuator(kube).apply(ObjectRef("apps/v1", "Deployment", "gone", NS), Actions(replicas=4))
    with pytest.raises(NotFound):
        ScaleActuator(kube).current(ObjectRef("example.com/v1", "Gadget", "x", NS))


DR: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
    "metadata": {"name": "fhir-api", "namespace": NS, "labels": {"team": "ehr"}},
    "spec": {
        "host": "fhir-api.clinical.svc.cluster.local",
        "trafficPolicy": {
            "loadBalancer": {"simple": "LEAST_REQUEST"},
            "tls": {"mode": "ISTIO_MUTUAL"},
            "connectionPool": {"http": {"http1MaxPendingRequests": 100, "idleTimeout": "30s"},
                               "tcp": {"maxConnections": 50, "connectTimeout": "2s"}},
            "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "1m"},
        },
        "subsets": [{"name": "primary", "labels": {"region": "a"}}, {"name": "secondary", "labels": {"region": "b"}}],
    },
}
CB = CircuitBreakerSettings(max_pending_requests=40, max_connections=80, consecutive_5xx_errors=3,
                            base_ejection_seconds=30, max_ejection_percent=50)


def test_destinationrule_owns_only_circuit_breaker_fields(cluster: EmulatedCluster, kube: Kube) -> None:
    cluster.create(DR)
    ref = ObjectRef("networking.istio.io/v1beta1", "DestinationRule", "fhir-api", NS)
    act = DestinationRuleActuator(kube)
    assert act.current(ref) == {"max_pending_requests": 100, "max_connections": 50, "consecutive_5xx_errors": 5,
                                "base_ejection_seconds": 60, "max_ejection_percent": None}
    result = act.apply(ref, Actions(circuit_breaker=CB))
    assert result.changed and "max_pending_requests 100 -> 40" in result.message
    obj = cluster.get("networking.istio.io/v1", "DestinationRule", "fhir-api", NS)  # same object, other version
    expected = copy.deepcopy(DR["spec"])
    tp = expected["trafficPolicy"]
    tp["connectionPool"]["http"]["http1MaxPendingRequests"] = 40
    tp["connectionPool"]["tcp"]["maxConnections"] = 80
    tp["outlierDetection"].update(consecutive5xxErrors=3, baseEjectionTime="30s", maxEjectionPercent=50)
    assert obj["spec"] == expected  # idleTimeout, connectTimeout, interval, tls, lb, subsets untouched
    assert obj["metadata"]["labels"] == {"team": "ehr"}
    writes = patches(cluster, "/destinationrules/")
    assert not act.apply(ref, Actions(circuit_breaker=CB)).changed
    assert patches(cluster, "/destinationrules/") == writes


def test_destinationrule_created_without_traffic_policy_and_conflict_retry(cluster: EmulatedCluster, kube: Kube) -> None:
    cluster.create({**DR, "spec": {"host": "fhir-api"}})
    ref = ObjectRef("networking.istio.io/v1beta1", "DestinationRule", "fhir-api", NS)
    fault = cluster.inject_fault(method="PATCH", path_contains="/destinationrules/fhir-api", status=409, times=1)
    assert DestinationRuleActuator(kube).apply(ref, Actions(circuit_breaker=CB)).changed
    assert len(fault.hits) == 1
    tp = cluster.get("networking.istio.io/v1beta1", "DestinationRule", "fhir-api", NS)["spec"]["trafficPolicy"]
    assert tp["connectionPool"] == {"http": {"http1MaxPendingRequests": 40}, "tcp": {"maxConnections": 80}}


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1m", 60), ("1m30s", 90), ("1h", 3600), ("1500ms", 2),
                                               ("bogus", None), (None, None)])
def test_parse_duration(text: str | None, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


VS: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
    "metadata": {"name": "fhir-api", "namespace": NS},
    "spec": {
        "hosts": ["fhir-api"],
        "http": [
            # a path pinned to one policy backend: not a split, so its (absent) weight stays absent
            {"name": "admin", "match": [{"uri": {"prefix": "/admin"}}],
             "route": [{"destination": {"host": "fhir-api", "subset": "primary"}}]},
            {"name": "main", "retries": {"attempts": 3}, "timeout": "5s",
             "route": [{"destination": {"host": "fhir-api", "subset": "primary"}, "weight": 90},
                       {"destination": {"host": "fhir-api", "subset": "secondary"}, "weight": 10,
                        "headers": {"request": {"set": {"x-region": "b"}}}}]},
        ],
    },
}


def test_virtualservice_weights_by_subset(cluster: EmulatedCluster, kube: Kube) -> None:
    cluster.create(VS)
    ref = ObjectRef("networking.istio.io/v1beta1", "VirtualService", "fhir-api", NS)
    act = routing_actuator("VirtualService", kube)
    assert isinstance(act, VirtualServiceActuator)
    assert act.current(ref) == {"primary": 90, "secondary": 10}
    result = act.apply(ref, Actions(weights={"primary": 70, "secondary": 30}))
    assert result.changed and result.after["secondary"] == 30
    obj = cluster.get("networking.istio.io/v1beta1", "VirtualService", "fhir-api", NS)
    expected = copy.deepcopy(VS["spec"])
    expected["http"][1]["route"][0]["weight"] = 70
    expected["http"][1]["route"][1]["weight"] = 30
    assert obj["spec"] == expected
    writes = patches(cluster, "/virtualservices/")
    assert not act.apply(ref, Actions(weights={"primary": 70, "secondary": 30})).changed
    assert patches(cluster, "/virtualservices/") == writes
    with pytest.raises(KubeError, match="no route to backend"):
        act.apply(ref, Actions(weights={"primary": 50, "tertiary": 50}))
    with pytest.raises(ValueError, match="sum to 100"):
        act.apply(ref, Actions(weights={"primary": 50, "secondary": 30}))


HTTPROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
    "metadata": {"name": "fhir-api", "namespace": NS},
    "spec": {
        "parentRefs": [{"name": "gw"}],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                   "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x", "value": "y"}]}}],
                   "backendRefs": [{"name": "fhir-api-a", "port": 8080, "weight": 100},
                                   {"name": "fhir-api-b", "port": 8080}]}],
    },
}


def test_httproute_backendref_weights_with_concurrent_writer(cluster: EmulatedCluster, kube: Kube) -> None:
    cluster.create(HTTPROUTE)
    ref = ObjectRef("gateway.networking.k8s.io/v1", "HTTPRoute", "fhir-api", NS)
    act = HTTPRouteActuator(kube)
    assert act.current(ref) == {"fhir-api-a": 100, "fhir-api-b": 1}  # the Gateway API default weight is 1
    # Someone else edits the route between our read and our write: the JSON-patch `test` fails (422),
    # we re-read and apply on top of their change.
    original_get = kube.get
    calls = {"n": 0}

    def get_then_interfere(r: ObjectRef, subresource: str | None = None) -> dict[str, Any]:
        obj = original_get(r, subresource)
        calls["n"] += 1
        if calls["n"] == 1:
            cluster.patch("gateway.networking.k8s.io/v1", "HTTPRoute", "fhir-api", NS,
                          {"metadata": {"labels": {"edited": "yes"}}})
        return obj

    kube.get = get_then_interfere  # type: ignore[method-assign,unused-ignore]
    result = act.apply(ref, Actions(weights={"fhir-api-a": 80, "fhir-api-b": 20}))
    kube.get = original_get  # type: ignore[method-assign,unused-ignore]
    assert result.changed and calls["n"] == 2
    obj = cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", "fhir-api", NS)
    assert obj["metadata"]["labels"] == {"edited": "yes"}
    expected = copy.deepcopy(HTTPROUTE["spec"])
    expected["rules"][0]["backendRefs"][0]["weight"] = 80
    expected["rules"][0]["backendRefs"][1]["weight"] = 20  # added where it was missing
    assert obj["spec"] == expected
    assert act.current(ref) == {"fhir-api-a": 80, "fhir-api-b": 20}


def test_hpa_on_the_same_target_is_a_conflict(cluster: EmulatedCluster, kube: Kube) -> None:
    target = ObjectRef("apps/v1", "Deployment", "fhir-api", NS)
    assert find_hpa_conflict(kube, target) is None
    cluster.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "other-hpa", "namespace": NS},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "lab-orders"},
                             "minReplicas": 1, "maxReplicas": 3}})
    assert find_hpa_conflict(kube, target) is None
    cluster.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "fhir-hpa", "namespace": NS},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fhir-api"},
                             "minReplicas": 1, "maxReplicas": 3}})
    assert find_hpa_conflict(kube, target) == "fhir-hpa"
    assert find_hpa_conflict(kube, ObjectRef("apps/v1", "Deployment", "fhir-api", "billing")) is None


def test_scale_retries_after_a_client_timeout(cluster: EmulatedCluster, api_client: Any) -> None:
    cluster.create(workload("apps/v1", "Deployment"))
    ref = ObjectRef("apps/v1", "Deployment", "fhir-api", NS)
    kube = Kube(api_client, retry=RetryPolicy(attempts=4, backoff_seconds=0.01, request_timeout_seconds=0.3))
    slow = cluster.inject_fault(method="GET", path_contains="/fhir-api/scale", status=0, delay_seconds=1.0)
    result = ScaleActuator(kube).apply(ref, Actions(replicas=4))
    assert len(slow.hits) == 1 and result.changed
    assert cluster.scale("apps/v1", "Deployment", "fhir-api", NS) == 4
