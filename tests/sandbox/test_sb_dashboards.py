"""The Grafana dashboards: generated from code, current schema, datasource by variable, and every query live."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("careplane_dashboards_build", DASHBOARDS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) of every panel target and annotation."""
    out = []
    for panel in model.get("panels", []):
        for target in panel.get("targets", []):
            out.append((f"{model['uid']}/{panel['title']}/{target.get('refId')}", target["expr"]))
    for ann in model.get("annotations", {}).get("list", []):
        if ann.get("expr"):
            out.append((f"{model['uid']}/annotation {ann['name']}", ann["expr"]))
    return out


def test_committed_json_is_what_the_code_generates() -> None:
    assert committed() == _load_builder().build_all(), "run: python dashboards/build.py"


def test_three_dashboards_current_schema_stable_uids_and_datasource_variable() -> None:
    models = committed()
    assert set(models) == {"fleet-overview.json", "workload-detail.json", "operator-health.json"}
    uids = [m["uid"] for m in models.values()]
    assert len(set(uids)) == 3 and all(u.startswith("careplane-") for u in uids)
    for name, model in models.items():
        assert model["schemaVersion"] >= 39, name  # Grafana 10.4+ schema
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)) and ids == sorted(ids)
        for node in walk(model):
            if "datasource" in node and isinstance(node["datasource"], dict):
                assert node["datasource"].get("uid") == "${datasource}", (name, node.get("title"))
        assert queries(model), name


def test_operator_metric_names_are_all_on_a_dashboard() -> None:
    text = " ".join(expr for m in committed().values() for _, expr in queries(m))
    for metric in ("careplane_desired_replicas", "careplane_current_replicas", "careplane_forecast_demand",
                   "careplane_demand", "careplane_anomaly_score", "careplane_circuit_breaker_max_pending",
                   "careplane_routing_weight", "careplane_decisions_total", "careplane_reconcile_seconds_bucket",
                   "careplane_errors_total"):
        assert metric in text, metric
