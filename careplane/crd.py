"""Generate the ScalingPolicy CRD from the pydantic models.

Why generate: the CRD schema and the policy model must accept and reject the
same documents. Deriving one from the other (as controller-gen does for Go
operators) removes a whole class of drift; the cross-field rules come from
:mod:`careplane.rules`, where each is written once as CEL and once in Python.

The output is a *structural* schema (every node typed, no ``$ref``, no
``anyOf`` with null) in OpenAPI v3.0 form, which is what
``apiextensions.k8s.io/v1`` requires.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

from careplane import policy
from careplane.status import ScalingPolicyStatus

CRD_PATH = Path(__file__).resolve().parent.parent / "crds" / "scalingpolicy.yaml"


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also emit defaults that come from ``default_factory`` (pydantic skips them)."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                return value.model_dump(mode="json", exclude_none=True)
            return value
        return schema.get("default", NoDefault)


def _model_classes(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model class reachable from ``root``, by the name pydantic uses in ``$defs``."""
    found: dict[str, type[BaseModel]] = {}
    stack: list[type[BaseModel]] = [root]
    while stack:
        cls = stack.pop()
        if cls.__name__ in found:
            continue
        found[cls.__name__] = cls
        for field in cls.model_fields.values():
            for arg in _flatten_annotation(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    stack.append(arg)
    return found


def _flatten_annotation(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    out: list[Any] = []
    for arg in args:
        out.extend(_flatten_annotation(arg))
    return out


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Inline refs, unwrap Optional, drop titles, and convert to OpenAPI v3.0 forms."""
    if isinstance(node, list):
        return [_structural(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)
        return _structural(target, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union {node['anyOf']} structurally")
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        merged.update(options[0])
        if merged.get("default", "absent") is None:
            merged.pop("default")
        return _structural(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "exclusiveMinimum":
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum":
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        elif key in ("properties",):
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _structural(value, defs)
    if out.get("additionalProperties") is False:
        # Structural schemas forbid additionalProperties beside properties; the API server
        # prunes unknown fields instead, and `careplane validate` reports them (strict mode).
        del out["additionalProperties"]
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "const" in out:
        out["enum"] = [out.pop("const")]
    first = [k for k in ("type", "description") if k in out]
    return {**{k: out[k] for k in first}, **{k: v for k, v in out.items() if k not in first}}


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Structural OpenAPI v3.0 schema of ``model``, CEL rules attached."""
    raw = model.model_json_schema(schema_generator=_WithFactoryDefaults, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    classes = _model_classes(model)
    for name, cls in classes.items():
        rules = getattr(cls, "rules", ())
        target = defs.get(name) if name != model.__name__ else raw
        if target is not None and rules:
            target["x-kubernetes-validations"] = [r.as_cel() for r in rules]
    return _structural(raw, defs)


def crd() -> dict[str, Any]:
    """The full CustomResourceDefinition object."""
    spec_schema = model_schema(policy.ScalingPolicySpec)
    status_schema = model_schema(ScalingPolicyStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{policy.PLURAL}.{policy.API_GROUP}"},
        "spec": {
            "group": policy.API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": policy.KIND,
                "listKind": f"{policy.KIND}List",
                "plural": policy.PLURAL,
                "singular": policy.KIND.lower(),
                "shortNames": ["sp"],
                "categories": ["careplane"],
            },
            "versions": [
                {
                    "name": policy.API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Target", "type": "string", "jsonPath": ".spec.targetRef.name"},
                        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
                        {"name": "Current", "type": "integer", "jsonPath": ".status.currentReplicas"},
                        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
                        {"name": "Forecast", "type": "number", "jsonPath": ".status.demand.forecastUpper"},
                        {"name": "Anomaly", "type": "number", "jsonPath": ".status.anomaly.score"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A ScalingPolicy tells careplane how to scale, protect and route one "
                            "workload.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "careplane.io/v1alpha1"},
                                "kind": {"type": "string", "description": "ScalingPolicy"},
                                "metadata": {"type": "object", "description": "Standard object metadata."},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated by `careplane crd` from careplane/policy.py; do not edit by hand.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)


def load_committed(path: Path = CRD_PATH) -> dict[str, Any]:
    """The CRD as committed (what users apply)."""
    return yaml.safe_load(path.read_text())
