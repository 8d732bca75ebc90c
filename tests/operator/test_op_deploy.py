"""The deployment manifests: valid against the Kubernetes schemas, hardened, consistent with the CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from openapi_schema_validator import OAS30Validator

from careplane.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.31.0"  # oldest Kubernetes the manifests target (all their APIs are GA there)


def render(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` when kubectl is there; else the base's resource list read directly."""
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True)
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    if directory != DEPLOY / "base":
        pytest.skip("overlays need kubectl kustomize")
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kust["resources"]:
        docs += [d for d in yaml.safe_load_all((directory / name).read_text()) if d]
    return docs


@pytest.fixture(scope="module", params=["base", "overlays/shards"])
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(DEPLOY / request.param)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_every_object_is_valid_for_kubernetes(manifests: list[dict[str, Any]]) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (offline k8s schemas)")
    crds = {(c["spec"]["group"], c["spec"]["names"]["kind"]): c for c in by_kind(manifests, "CustomResourceDefinition")}
    checked = 0
    for doc in manifests:
        group = doc["apiVersion"].rsplit("/", 1)[0] if "/" in doc["apiVersion"] else ""
        if (group, doc["kind"]) in crds:  # a custom object: its own CRD's schema
            schema = crds[(group, doc["kind"])]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            OAS30Validator(schema).validate(doc)
        else:
            kv.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked == len(manifests) >= 11


def test_schema_validation_catches_a_broken_manifest() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    deployment = by_kind(render(DEPLOY / "base"), "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [8080]
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, K8S_VERSION, strict=True)


def test_crd_copy_matches_the_generated_crd() -> None:
    assert yaml.safe_load((DEPLOY / "base/crd-scalingpolicy.yaml").read_text()) == yaml.safe_load(
        (ROOT / "crds/scalingpolicy.yaml").read_text()
    )


def _operator_args(container: dict[str, Any]) -> dict[str, Any]:
    """Parse the container's args with the real CLI (so a renamed option breaks this test)."""
    command = typer.main.get_command(app)
    args = container["args"]
    assert args[0] == "operator"
    sub = command.commands["operator"]  # type: ignore[attr-defined]
    ctx = sub.make_context("operator", list(args[1:]), resilient_parsing=True)
    return dict(ctx.params)


def test_deployments_are_hardened_and_probed(manifests: list[dict[str, Any]]) -> None:
    deployments = by_kind(manifests, "Deployment")
    assert deployments
    services = by_kind(manifests, "Service")
    for dep in deployments:
        spec = dep["spec"]
        assert spec["replicas"] == 2
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        params = _operator_args(container)
        assert params["standalone"] is False  # peering on: one active replica, one standby
        liveness = params["liveness"]
        port = int(liveness.rsplit(":", 1)[1].split("/")[0])
        path = "/" + liveness.rsplit(":", 1)[1].split("/", 1)[1]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] == path and ports[get["port"]] == port
        assert ports["metrics"] == params["metrics_port"]
        env = {e["name"] for e in container["env"]}
        assert {"POD_NAME", "POD_ID", "PROMETHEUS_URL"} <= env
        labels = spec["template"]["metadata"]["labels"]
        assert any(
            all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
            and s["spec"]["ports"][0]["targetPort"] == "metrics"
            for s in services
        )
        assert dep["metadata"]["namespace"] == by_kind(manifests, "ServiceAccount")[0]["metadata"]["namespace"]
        assert pod["serviceAccountName"] == by_kind(manifests, "ServiceAccount")[0]["metadata"]["name"]


def test_shards_are_disjoint_and_peer_apart() -> None:
    docs = render(DEPLOY / "overlays/shards")
    params = [_operator_args(d["spec"]["template"]["spec"]["containers"][0]) for d in by_kind(docs, "Deployment")]
    assert sorted(p["selector"] for p in params) == ["careplane.io/shard=a", "careplane.io/shard=b"]
    names = {p["peering_name"] for p in params}
    assert len(names) == 2
    peerings = {d["metadata"]["name"] for d in by_kind(docs, "ClusterKopfPeering")}
    assert names <= peerings
    selectors = [d["spec"]["selector"]["matchLabels"] for d in by_kind(docs, "Deployment")]
    assert selectors[0] != selectors[1]


def test_dockerfile_runs_non_root_careplane() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and not users[-1].startswith(("0", "root"))
    assert 'ENTRYPOINT ["careplane"]' in text
