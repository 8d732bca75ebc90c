"""Validate ScalingPolicy documents the way the API server does, and the way the model does.

Two independent checks, each reporting :class:`Problem` s with a dotted field
path (``spec.routing.backends[1].weight``):

* :func:`schema_problems` – the generated CRD's OpenAPI v3.0 schema (types,
  ranges, enums, patterns, required fields), after applying the schema's
  defaults as the API server does, then every ``x-kubernetes-validations`` CEL
  rule evaluated by a real CEL interpreter (cel-python). Unknown fields are
  reported too, as ``kubectl apply --validate=strict`` does.
* :func:`model_problems` – the pydantic model in :mod:`careplane.policy`.

``careplane validate`` runs both; a test proves they agree on many invalid
specs (the model is stricter in two places the CRD cannot express: cron
expressions and time-zone names are parsed, not only pattern-matched).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from openapi_schema_validator import OAS30Validator
from pydantic import ValidationError

from careplane import policy
from careplane.crd import crd
from careplane.rules import RuleViolation


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a document: where, what, and what would be accepted."""

    path: str
    message: str
    allowed: str = ""

    def __str__(self) -> str:
        hint = f" (allowed: {self.allowed})" if self.allowed else ""
        return f"{self.path or '<document>'}: {self.message}{hint}"


def format_path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@functools.cache
def _root_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Copy of ``schema`` that rejects unknown fields wherever properties are declared."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("type") == "object":
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    out["properties"]["metadata"] = {"type": "object"}
    return out


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill defaults as the API server does: absent fields get their default, recursively."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        out = dict(value)
        for name, sub in props.items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def describe_allowed(schema: dict[str, Any]) -> str:
    """What a schema node accepts, in words, for error messages."""
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type", "")
    parts = [kind] if kind else []
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None or hi is not None:
        left = "(" if schema.get("exclusiveMinimum") else "["
        right = ")" if schema.get("exclusiveMaximum") else "]"
        parts.append(f"in {left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{right}")
    if "minLength" in schema or "maxLength" in schema:
        parts.append(f"length {schema.get('minLength', 0)}..{schema.get('maxLength', 'any')}")
    if "pattern" in schema:
        parts.append(f"matching {schema['pattern']}")
    if "minItems" in schema or "maxItems" in schema:
        parts.append(f"{schema.get('minItems', 0)}..{schema.get('maxItems', 'any')} items")
    return " ".join(parts)


def _cel_sum(values: Sequence[Any]) -> Any:
    """Kubernetes' CEL list library has ``sum()``; cel-python does not, so we add it."""
    total = sum(values)
    return celtypes.IntType(total) if isinstance(total, int) else celtypes.DoubleType(total)


@functools.cache
def _cel_program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions={"sum": _cel_sum})


def _cel_problems(schema: dict[str, Any], value: Any, path: list[str | int]) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(value, dict) and schema.get("type") == "object":
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                problems += _cel_problems(sub, value[name], [*path, name])
        for rule in schema.get("x-kubernetes-validations", []):
            try:
                ok = bool(_cel_program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)}))
            except celpy.CELEvalError as exc:  # a rule over a malformed object: report, don't crash
                ok, rule = False, {**rule, "message": f"{rule['message']} ({exc})"}
            if not ok:
                field = rule.get("fieldPath", "").lstrip(".")
                problems.append(Problem(format_path([*path, *field.split(".")] if field else path), rule["message"]))
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += _cel_problems(schema["items"], item, [*path, i])
    return problems


def _schema_node(schema: dict[str, Any], path: Sequence[str | int]) -> dict[str, Any]:
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return node


def schema_problems(document: Any) -> list[Problem]:
    """Problems the API server (with strict field validation) would report."""
    if not isinstance(document, dict):
        return [Problem("", f"a ScalingPolicy must be a mapping, got {type(document).__name__}")]
    root = _root_schema()
    strict = _strict(root)
    problems: list[Problem] = []
    for error in OAS30Validator(strict).iter_errors(document):
        path = list(error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1]
            problems.append(Problem(format_path([*path, missing]), "is required"))
        elif error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            for name in extra:
                known = ", ".join(error.schema.get("properties", {}))
                problems.append(Problem(format_path([*path, name]), "unknown field", f"fields: {known}"))
        else:
            problems.append(Problem(format_path(path), error.message, describe_allowed(error.schema)))
    if problems:
        return sorted(set(problems))
    defaulted = apply_defaults(root, document)
    return sorted(set(_cel_problems(root, defaulted, [])))


def model_problems(document: Any) -> list[Problem]:
    """Problems the pydantic policy model reports."""
    try:
        policy.ScalingPolicy.model_validate(document)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc: list[str | int] = [p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper())]
            cause = err.get("ctx", {}).get("error")
            message = err["msg"].removeprefix("Value error, ")
            if isinstance(cause, RuleViolation):
                loc = [*loc, *cause.field.split(".")] if cause.field else loc
                message = cause.message
            if err["type"] == "missing":
                message = "is required"
            elif err["type"] == "extra_forbidden":
                message = "unknown field"
            allowed = describe_allowed(_schema_node(_root_schema(), loc)) if err["type"] != "missing" else ""
            problems.append(Problem(format_path(loc), message, allowed))
        return sorted(set(problems))
    return []


def validate_document(document: Any) -> list[Problem]:
    """Every problem either check finds, one per field path (schema wording first)."""
    seen: dict[str, Problem] = {}
    for problem in [*schema_problems(document), *model_problems(document)]:
        seen.setdefault(problem.path, problem)
    return sorted(seen.values())


def parse_policy(document: Any) -> policy.ScalingPolicy:
    """Validate and return the model, raising :class:`PolicyError` naming every bad field."""
    problems = validate_document(document)
    if problems:
        raise PolicyError(problems)
    return policy.ScalingPolicy.model_validate(document)


class PolicyError(ValueError):
    """A ScalingPolicy that fails validation; ``str()`` names each field and what is allowed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))
