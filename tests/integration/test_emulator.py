"""The emulated API server behaves like a Kubernetes API server where careplane and kopf depend on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from careplane.sandbox.emulator import ApiError, ClusterClient, EmulatedCluster, label_selector_matches, parse_path

SP = "careplane.io/v1alpha1"


def deployment(name: str, ns: str = "clinical", replicas: int = 2, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def policy(name: str = "fhir-api", ns: str = "clinical") -> dict[str, Any]:
    return {"apiVersion": SP, "kind": "ScalingPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}}}


def test_parse_path_handles_namespaces_and_subresources() -> None:
    assert parse_path("/api/v1/namespaces").plural == "namespaces"
    p = parse_path("/api/v1/namespaces/clinical")
    assert (p.plural, p.name, p.namespace) == ("namespaces", "clinical", None)
    p = parse_path("/api/v1/namespaces/clinical/events/e1")
    assert (p.plural, p.namespace, p.name) == ("events", "clinical", "e1")
    p = parse_path("/apis/apps/v1/namespaces/ns/deployments/web/scale")
    assert (p.group, p.version, p.plural, p.namespace, p.name, p.subresource) == ("apps", "v1", "deployments", "ns", "web", "scale")


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=web", {"app": "web"}, True),
    ("app==web,tier!=db", {"app": "web", "tier": "fe"}, True),
    ("app in (web, api)", {"app": "api"}, True),
    ("app notin (web,api)", {"app": "api"}, False),
    ("tier", {"app": "web"}, False),
    ("!tier", {"app": "web"}, True),
    ("app=web,tier=db", {"app": "web"}, False),
])
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert label_selector_matches(selector, labels) is expected


def test_identity_resource_version_and_noop_writes(cluster: EmulatedCluster) -> None:
    created = cluster.create(deployment("web"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"]
    rv = cluster.get("apps/v1", "Deployment", "web", "clinical")["metadata"]["resourceVersion"]
    patched = cluster.patch("apps/v1", "Deployment", "web", "clinical", {"metadata": {"labels": {"tier": "fe"}}})
    assert int(patched["metadata"]["resourceVersion"]) > int(rv)
    assert patched["metadata"]["uid"] == meta["uid"]
    assert patched["metadata"]["generation"] == 1  # metadata-only change: no new generation
    same = cluster.patch("apps/v1", "Deployment", "web", "clinical", {"metadata": {"labels": {"tier": "fe"}}})
    assert same["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]  # no-op write
    respec = cluster.patch("apps/v1", "Deployment", "web", "clinical", {"spec": {"paused": True}})
    assert respec["metadata"]["generation"] == 2
    with pytest.raises(ApiError) as err:
        cluster.create(deployment("web"))
    assert err.value.status == 409


def test_stale_resource_version_is_a_conflict(cluster: EmulatedCluster) -> None:
    obj = cluster.create(deployment("web"))
    stale = obj["metadata"]["resourceVersion"]
    cluster.patch("apps/v1", "Deployment", "web", "clinical", {"metadata": {"annotations": {"a": "1"}}})
    with pytest.raises(ApiError) as err:
        cluster.patch("apps/v1", "Deployment", "web", "clinical",
                      {"metadata": {"resourceVersion": stale}, "spec": {"paused": True}})
    assert err.value.status == 409
    with pytest.raises(ApiError) as err:
        cluster.replace({**obj, "metadata": {**obj["metadata"], "resourceVersion": stale}})
    assert err.value.status == 409
    with pytest.raises(ApiError) as err:  # kopf's JSON patch with a failed test gets 422
        cluster.patch("apps/v1", "Deployment", "web", "clinical",
                      [{"op": "test", "path": "/metadata/resourceVersion", "value": stale},
                       {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}], patch_type="json")
    assert err.value.status == 422
    assert "paused" not in cluster.get("apps/v1", "Deployment", "web", "clinical")["spec"]


@pytest.mark.parametrize(("api_version", "kind"), [
    ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("argoproj.io/v1alpha1", "Rollout"),
    ("example.com/v1", "Widget"),
])
def test_scale_subresource_for_every_scalable_kind(cluster: EmulatedCluster, api_version: str, kind: str) -> None:
    if kind == "Widget":
        cluster.register("example.com", "v1", "widgets", "Widget", subresources=["scale", "status"])
    obj = deployment("w")
    obj.update(apiVersion=api_version, kind=kind)
    cluster.create(obj)
    scale = cluster.get(api_version, kind, "w", "clinical", "scale")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=w"
    cluster.set_scale(api_version, kind, "w", "clinical", 7)
    after = cluster.get(api_version, kind, "w", "clinical")
    assert after["spec"]["replicas"] == 7
    assert after["metadata"]["generation"] == 2
    assert after["spec"]["template"] == obj["spec"]["template"]  # nothing else touched
    assert after["status"]["readyReplicas"] == 7  # the emulator's workload controller
    fresh = cluster.get(api_version, kind, "w", "clinical", "scale")
    put = cluster.replace_scale(api_version, kind, "w", "clinical", {**fresh, "spec": {"replicas": 3}})
    assert put["spec"]["replicas"] == 3
    with pytest.raises(ApiError) as err:  # a stale Scale is a conflict too
        cluster.replace_scale(api_version, kind, "w", "clinical", {**scale, "spec": {"replicas": 4}})
    assert err.value.status == 409


def test_typed_kubernetes_client_reads_and_patches_scale(cluster: EmulatedCluster, api_client: k8s.ApiClient) -> None:
    cluster.create(deployment("web", replicas=3))
    apps = k8s.AppsV1Api(api_client)
    scale = apps.read_namespaced_deployment_scale("web", "clinical")
    assert scale.spec is not None and scale.spec.replicas == 3
    apps.patch_namespaced_deployment_scale("web", "clinical", {"spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment("web", "clinical").spec.replicas == 5
    core = k8s.CoreV1Api(api_client)
    assert {"default", "clinical", "billing"} <= {ns.metadata.name for ns in core.list_namespace().items if ns.metadata}
    meta = core.read_namespace("clinical").metadata
    assert meta is not None and meta.uid
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("nope", "clinical")
    assert err.value.status == 404


def test_status_subresource_separates_spec_and_status(cluster: EmulatedCluster) -> None:
    cluster.create(policy())
    cluster.patch(SP, "ScalingPolicy", "fhir-api", "clinical", {"status": {"desiredReplicas": 4}})
    assert "status" not in cluster.get(SP, "ScalingPolicy", "fhir-api", "clinical")  # main write ignores status
    cluster.patch(SP, "ScalingPolicy", "fhir-api", "clinical",
                  {"status": {"desiredReplicas": 4}, "spec": {"mode": "Paused"}}, subresource="status")
    obj = cluster.get(SP, "ScalingPolicy", "fhir-api", "clinical")
    assert obj["status"] == {"desiredReplicas": 4}
    assert "mode" not in obj["spec"]  # status write ignores spec
    assert obj["metadata"]["generation"] == 1


def test_events_core_and_events_k8s_io(cluster: EmulatedCluster, api_client: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api_client)
    core.create_namespaced_event("clinical", {  # type: ignore[arg-type]
        "metadata": {"generateName": "fhir-api."}, "reason": "Scaled", "message": "2 -> 4", "type": "Normal",
        "involvedObject": {"apiVersion": SP, "kind": "ScalingPolicy", "name": "fhir-api", "namespace": "clinical"}})
    events = cluster.events("clinical")
    assert [e["reason"] for e in events] == ["Scaled"]
    assert events[0]["metadata"]["name"].startswith("fhir-api.")
    k8s.EventsV1Api(api_client).create_namespaced_event("clinical", {  # type: ignore[arg-type]
        "metadata": {"name": "e2"}, "reason": "Scaled", "action": "Scale", "type": "Normal",
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "careplane", "reportingInstance": "x"})
    assert len(cluster.list("events.k8s.io/v1", "Event", "clinical")) == 1


def _watch(url: str, params: dict[str, str], out: list[dict[str, Any]], stop_after: int) -> None:
    with requests.get(url, params={"watch": "true", **params}, stream=True, timeout=10) as resp:
        for line in resp.iter_lines():
            if line:
                out.append(json.loads(line))
                if len(out) >= stop_after:
                    return


def test_watch_selectors_replay_and_timeout(cluster: EmulatedCluster) -> None:
    cluster.create(deployment("a", labels={"tier": "fe"}))
    url = cluster.url + "/apis/apps/v1/namespaces/clinical/deployments"
    rv = requests.get(url).json()["metadata"]["resourceVersion"]
    seen: list[dict[str, Any]] = []
    t = threading.Thread(target=_watch, args=(url, {"labelSelector": "tier=be", "resourceVersion": rv}, seen, 2))
    t.start()
    time.sleep(0.2)
    cluster.create(deployment("b", labels={"tier": "fe"}))  # filtered out
    cluster.create(deployment("c", labels={"tier": "be"}))
    cluster.set_scale("apps/v1", "Deployment", "c", "clinical", 3)
    t.join(timeout=5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen][:2] == [("ADDED", "c"), ("MODIFIED", "c")]
    replay: list[dict[str, Any]] = []  # from an old resourceVersion: the missed events, in order
    _watch(url, {"resourceVersion": rv, "timeoutSeconds": "1"}, replay, 100)
    assert [e["object"]["metadata"]["name"] for e in replay if e["type"] == "ADDED"] == ["b", "c"]
    started = time.monotonic()
    fresh: list[dict[str, Any]] = []
    _watch(url, {"timeoutSeconds": "1", "fieldSelector": "metadata.name=a"}, fresh, 100)
    assert time.monotonic() - started < 5  # the server ended the stream
    assert [e["object"]["metadata"]["name"] for e in fresh] == ["a"]


def test_fault_injection_conflict_error_and_timeout(cluster: EmulatedCluster) -> None:
    cluster.create(deployment("web"))
    fault = cluster.inject_fault(method="PATCH", path_contains="/deployments/web/scale", status=409, times=1)
    with pytest.raises(ApiError) as err:
        cluster.set_scale("apps/v1", "Deployment", "web", "clinical", 5)
    assert err.value.status == 409 and len(fault.hits) == 1
    assert cluster.scale("apps/v1", "Deployment", "web", "clinical") == 2  # the failed write changed nothing
    cluster.set_scale("apps/v1", "Deployment", "web", "clinical", 5)  # the next one goes through
    assert cluster.scale("apps/v1", "Deployment", "web", "clinical") == 5
    cluster.inject_fault(method="GET", path_contains="/deployments/web", status=500, times=2)
    for _ in range(2):
        with pytest.raises(ApiError) as err:
            cluster.get("apps/v1", "Deployment", "web", "clinical")
        assert err.value.status == 500
    assert cluster.get("apps/v1", "Deployment", "web", "clinical")["spec"]["replicas"] == 5
    cluster.inject_fault(method="GET", path_contains="/deployments/web", status=0, delay_seconds=1.0)
    slow = ClusterClient(cluster.url, timeout=0.3)
    with pytest.raises(requests.Timeout):
        slow.get("apps/v1", "Deployment", "web", "clinical")
    slow.close()


def test_workload_readiness_delay() -> None:
    with EmulatedCluster(ready_delay_seconds=0.3) as c:
        c.create(deployment("web", replicas=2))
        c.set_scale("apps/v1", "Deployment", "web", "clinical", 5)
        status = c.get("apps/v1", "Deployment", "web", "clinical")["status"]
        assert status["replicas"] == 5 and status["readyReplicas"] < 5
        c.wait_for(lambda: c.get("apps/v1", "Deployment", "web", "clinical")["status"]["readyReplicas"] == 5, 3)
        c.set_scale("apps/v1", "Deployment", "web", "clinical", 1)  # removal is immediate
        assert c.get("apps/v1", "Deployment", "web", "clinical")["status"]["readyReplicas"] == 1


TINY_OPERATOR = '''
import kopf

@kopf.on.login()
def login(**kwargs):
    return kopf.login_with_kubeconfig(**kwargs)

@kopf.on.create("careplane.io", "v1alpha1", "scalingpolicies")
def on_create(spec, patch, **_):
    patch.status["seenTarget"] = spec["targetRef"]["name"]
'''


def test_kopf_operator_sees_object_and_patches_status(cluster: EmulatedCluster, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from kopf.testing import KopfRunner

    path = tmp_path / "tiny.py"
    path.write_text(textwrap.dedent(TINY_OPERATOR))
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig_path))
    with KopfRunner(["run", "--standalone", "--namespace", "clinical", str(path)], timeout=30) as runner:
        cluster.create(policy())
        status = cluster.wait_for(
            lambda: cluster.get(SP, "ScalingPolicy", "fhir-api", "clinical").get("status"), timeout=15)
    assert runner.exception is None, runner.output[-2000:]
    assert status == {"seenTarget": "fhir-api"}
    # kopf's bookkeeping landed too (it JSON/merge-patches with our resourceVersions)
    annotations = cluster.get(SP, "ScalingPolicy", "fhir-api", "clinical")["metadata"].get("annotations", {})
    assert any(k.startswith("kopf.zalando.org/") for k in annotations)


def test_runs_as_a_separate_process(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    manifest = tmp_path / "objs.yaml"
    manifest.write_text(json.dumps(deployment("web", replicas=4)))
    proc = subprocess.Popen([sys.executable, "-m", "careplane.sandbox.emulator", "--kubeconfig", str(kubeconfig),
                             "--apply", str(manifest)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert Path(info["kubeconfig"]) == kubeconfig and kubeconfig.exists()
        client = ClusterClient(info["url"])
        assert client.scale("apps/v1", "Deployment", "web", "clinical") == 4
        client.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_kopf_peering_objects_work(cluster: EmulatedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf's peering (HA: one active, others standby) keeps its state in KopfPeering objects here."""
    from kopf.testing import KopfRunner

    path = tmp_path / "tiny.py"
    path.write_text(textwrap.dedent(TINY_OPERATOR))
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig_path))
    cluster.create({"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "default", "namespace": "clinical"}})
    with KopfRunner(["run", "--namespace", "clinical", "--peering", "default", str(path)], timeout=30) as runner:
        peers = cluster.wait_for(
            lambda: cluster.get("kopf.dev/v1", "KopfPeering", "default", "clinical").get("status"), timeout=15)
        cluster.create(policy())
        cluster.wait_for(lambda: cluster.get(SP, "ScalingPolicy", "fhir-api", "clinical").get("status"), timeout=15)
    assert runner.exception is None, runner.output[-2000:]
    assert len(peers) == 1 and all("lifetime" in p for p in peers.values())
    assert not cluster.get("kopf.dev/v1", "KopfPeering", "default", "clinical").get("status")  # it left cleanly


def test_finalizers_block_deletion_until_removed(cluster: EmulatedCluster) -> None:
    obj = policy()
    obj["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    cluster.create(obj)
    cluster.delete(SP, "ScalingPolicy", "fhir-api", "clinical")
    marked = cluster.get(SP, "ScalingPolicy", "fhir-api", "clinical")
    assert marked["metadata"]["deletionTimestamp"]
    cluster.patch(SP, "ScalingPolicy", "fhir-api", "clinical", {"metadata": {"finalizers": None}})
    assert cluster.get_or_none(SP, "ScalingPolicy", "fhir-api", "clinical") is None
    with pytest.raises(ApiError) as err:
        cluster.delete(SP, "ScalingPolicy", "fhir-api", "clinical")
    assert err.value.status == 404


@pytest.mark.asyncio
async def test_async_context_manager() -> None:
    import asyncio

    async with EmulatedCluster(namespaces=("clinical",)) as c:
        created = await asyncio.to_thread(c.create, deployment("web"))
        assert created["metadata"]["uid"]
        assert await asyncio.to_thread(c.scale, "apps/v1", "Deployment", "web", "clinical") == 2
    assert c.client is None  # stopped
