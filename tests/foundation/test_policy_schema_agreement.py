"""The CRD schema (with CEL) and the pydantic model accept and reject the same specs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from careplane import policy
from careplane.validation import model_problems, schema_problems, validate_document

from .conftest import EXAMPLES, load_examples

Doc = dict[str, Any]


def test_there_are_five_examples() -> None:
    names = {d["metadata"]["name"] for d in load_examples()}
    assert names == {"fhir-api", "lab-orders", "vitals-ingestion", "telehealth", "billing-batch"}
    assert len(EXAMPLES) == 5


@pytest.mark.parametrize("doc", load_examples(), ids=lambda d: d["metadata"]["name"])
def test_examples_pass_both(doc: Doc) -> None:
    assert schema_problems(doc) == []
    assert model_problems(doc) == []


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        node: Any = doc
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        node: Any = doc
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[part]
        del node[parts[-1]]

    return mutate


# (id, mutation of the fhir-api example, field path both checks must name)
INVALID: list[tuple[str, Callable[[Doc], None], str]] = [
    ("min>max", _set("spec.replicas.min", 60), "spec.replicas.min"),
    ("negative-min", _set("spec.replicas.min", -1), "spec.replicas.min"),
    ("max-zero", _set("spec.replicas.max", 0), "spec.replicas.max"),
    ("max-missing", _delete("spec.replicas.max"), "spec.replicas.max"),
    ("step-zero", _set("spec.replicas.maxScaleUpStep", 0), "spec.replicas.maxScaleUpStep"),
    (
        "stabilization-negative",
        _set("spec.replicas.scaleDownStabilizationSeconds", -5),
        "spec.replicas.scaleDownStabilizationSeconds",
    ),
    ("mode-unknown", _set("spec.mode", "Aggressive"), "spec.mode"),
    ("criticality-unknown", _set("spec.criticality", "urgent"), "spec.criticality"),
    ("interval-too-short", _set("spec.intervalSeconds", 1), "spec.intervalSeconds"),
    ("interval-string", _set("spec.intervalSeconds", "fast"), "spec.intervalSeconds"),
    ("target-missing", _delete("spec.targetRef"), "spec.targetRef"),
    ("target-name-uppercase", _set("spec.targetRef.name", "FHIR_API"), "spec.targetRef.name"),
    ("target-kind-lowercase", _set("spec.targetRef.kind", "deployment"), "spec.targetRef.kind"),
    ("query-empty", _set("spec.demand.query", ""), "spec.demand.query"),
    ("capacity-zero", _set("spec.demand.perReplicaCapacity", 0), "spec.demand.perReplicaCapacity"),
    ("utilization-above-one", _set("spec.demand.targetUtilization", 1.5), "spec.demand.targetUtilization"),
    ("startup-negative", _set("spec.demand.podStartupSeconds", -1), "spec.demand.podStartupSeconds"),
    ("latency-target-missing", _delete("spec.slo.latencyTargetSeconds"), "spec.slo.latencyTargetSeconds"),
    ("error-rate-above-one", _set("spec.slo.maxErrorRate", 2), "spec.slo.maxErrorRate"),
    ("quantile-below-half", _set("spec.forecast.quantile", 0.3), "spec.forecast.quantile"),
    ("model-unknown", _set("spec.forecast.model", "prophet"), "spec.forecast.model"),
    ("season-too-short", _set("spec.forecast.seasonalitySeconds", [10]), "spec.forecast.seasonalitySeconds[0]"),
    (
        "too-many-seasons",
        _set("spec.forecast.seasonalitySeconds", [3600, 7200, 86400, 604800, 31536000]),
        "spec.forecast.seasonalitySeconds",
    ),
    ("history-too-short", _set("spec.forecast.historySeconds", 60), "spec.forecast.historySeconds"),
    ("detector-unknown", _set("spec.anomaly.detector", "isolation_forest"), "spec.anomaly.detector"),
    ("sensitivity-one", _set("spec.anomaly.sensitivity", 1.0), "spec.anomaly.sensitivity"),
    (
        "pending-bounds-inverted",
        _set("spec.circuitBreaker.maxPendingRequests", {"min": 500, "max": 10}),
        "spec.circuitBreaker.maxPendingRequests.min",
    ),
    (
        "5xx-default-outside",
        _set("spec.circuitBreaker.consecutive5xxErrors", {"min": 3, "max": 20, "default": 50}),
        "spec.circuitBreaker.consecutive5xxErrors.default",
    ),
    (
        "ejection-percent-over-100",
        _set("spec.circuitBreaker.maxEjectionPercent", 150),
        "spec.circuitBreaker.maxEjectionPercent",
    ),
    ("routing-kind-unknown", _set("spec.routing.kind", "Ingress"), "spec.routing.kind"),
    ("weights-not-100", _set("spec.routing.backends.1.weight", 20), "spec.routing.backends"),
    (
        "weight-below-min",
        _set("spec.routing.backends.0", {"name": "primary", "weight": 40, "minWeight": 50}),
        "spec.routing.backends[0].weight",
    ),
    ("one-backend", _set("spec.routing.backends", [{"name": "primary", "weight": 100}]), "spec.routing.backends"),
    (
        "duplicate-backends",
        _set("spec.routing.backends", [{"name": "a", "weight": 50}, {"name": "a", "weight": 50}]),
        "spec.routing.backends",
    ),
    ("shift-zero", _set("spec.routing.maxShiftPerStep", 0), "spec.routing.maxShiftPerStep"),
    (
        "schedule-over-max",
        _set("spec.schedules", [{"cron": "0 7 * * 1-5", "durationSeconds": 3600, "minReplicas": 80}]),
        "spec.schedules",
    ),
    (
        "schedule-cron-three-fields",
        _set("spec.schedules", [{"cron": "0 7 *", "durationSeconds": 3600, "minReplicas": 5}]),
        "spec.schedules[0].cron",
    ),
    (
        "fallback-replicas-missing",
        _set("spec.fallback", {"onMetricsUnavailable": "replicas"}),
        "spec.fallback.replicas",
    ),
    (
        "fallback-outside-bounds",
        _set("spec.fallback", {"onMetricsUnavailable": "replicas", "replicas": 99}),
        "spec.fallback.replicas",
    ),
    ("unknown-field", _set("spec.replicaCount", 3), "spec.replicaCount"),
    ("unknown-nested-field", _set("spec.demand.capacity", 3), "spec.demand.capacity"),
]


def test_at_least_25_distinct_invalid_specs() -> None:
    assert len({path for _, _, path in INVALID}) >= 25


@pytest.mark.parametrize(("mutate", "field"), [(m, f) for _, m, f in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_spec_rejected_by_both_naming_the_field(fhir: Doc, mutate: Callable[[Doc], None], field: str) -> None:
    mutate(fhir)
    schema_paths = {p.path for p in schema_problems(fhir)}
    model_paths = {p.path for p in model_problems(fhir)}
    assert field in schema_paths, f"CRD schema did not name {field}: {schema_paths}"
    assert field in model_paths, f"model did not name {field}: {model_paths}"


def test_model_is_stricter_on_cron_and_timezone(fhir: Doc) -> None:
    """What CEL cannot express: the model parses cron and time zones; the CRD only checks shape."""
    fhir["spec"]["schedules"] = [
        {"cron": "99 7 * * *", "durationSeconds": 3600, "minReplicas": 5, "timezone": "Mars/Olympus"}
    ]
    assert schema_problems(fhir) == []
    paths = {p.path for p in model_problems(fhir)}
    assert paths == {"spec.schedules[0].cron", "spec.schedules[0].timezone"}


def test_defaults_match() -> None:
    """A minimal spec gets the same defaults from the model and from the CRD schema."""
    from careplane.validation import _root_schema, apply_defaults

    minimal: Doc = {
        "apiVersion": "careplane.io/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": "m"},
        "spec": {
            "targetRef": {"name": "api"},
            "replicas": {"max": 10},
            "demand": {"query": "sum(rate(x[1m]))", "perReplicaCapacity": 5},
            "circuitBreaker": {"destinationRule": "api"},
        },
    }
    defaulted = apply_defaults(_root_schema(), copy.deepcopy(minimal))
    model = policy.ScalingPolicy.model_validate(minimal).spec.model_dump(mode="json", exclude_none=True)
    assert defaulted["spec"] == model


def test_problems_name_what_is_allowed(fhir: Doc) -> None:
    fhir["spec"]["mode"] = "Sometimes"
    (problem,) = validate_document(fhir)
    assert problem.path == "spec.mode"
    assert "Active" in problem.allowed and "ForecastOnly" in problem.allowed and "Paused" in problem.allowed
