"""The committed CRD is generated from the model, structural, and complete."""

from __future__ import annotations

from typing import Any

from careplane.crd import CRD_PATH, crd, load_committed, render


def test_committed_crd_is_in_sync_with_the_model() -> None:
    assert CRD_PATH.read_text() == render(), "run `careplane crd --out crds/scalingpolicy.yaml`"


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _nodes(schema["additionalProperties"], f"{path}{{}}")
    return out


def _schema() -> dict[str, Any]:
    return load_committed()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_schema_is_structural() -> None:
    """apiextensions.k8s.io/v1 rules: every node typed, no refs, no unions, no additionalProperties beside properties."""
    for path, node in _nodes(_schema()):
        assert "type" in node, f"{path or '<root>'} has no type"
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "definitions", "$defs", "title"):
            assert forbidden not in node, f"{path} uses {forbidden}"
        assert not ("properties" in node and "additionalProperties" in node), path
        if "default" in node:
            assert node["type"] != "object" or isinstance(node["default"], dict), path


def test_every_spec_field_is_described() -> None:
    spec = _schema()["properties"]["spec"]
    for path, node in _nodes(spec, "spec"):
        if path.endswith("[]"):
            continue  # list items are described by their list
        assert node.get("description"), f"{path} has no description"


def test_crd_names_and_columns() -> None:
    obj = crd()
    assert obj["metadata"]["name"] == "scalingpolicies.careplane.io"
    names = obj["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("ScalingPolicy", "scalingpolicies", ["sp"])
    assert obj["spec"]["scope"] == "Namespaced"
    version = obj["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Target", "Mode", "Current", "Desired", "Forecast", "Anomaly", "Age"]


def test_cross_field_rules_are_cel() -> None:
    rules = [rule["rule"] for _, node in _nodes(_schema()) for rule in node.get("x-kubernetes-validations", [])]
    assert "self.min <= self.max" in rules
    assert any("sum() == 100" in r for r in rules)
    assert len(rules) >= 10
