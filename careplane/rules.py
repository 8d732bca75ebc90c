"""Cross-field rules declared once, enforced twice.

A Kubernetes CRD expresses cross-field rules (``min <= max``) as CEL
``x-kubernetes-validations``; the pydantic policy model needs the same rules as
Python checks. Writing each rule twice invites drift, so a :class:`Rule` holds
both spellings side by side and :func:`cel_rules` / :func:`check_rules` hand
them to the CRD generator and to the model validators. A test evaluates the CEL
text with a real CEL interpreter against the Python check on many specs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """One cross-field rule of an object in the ScalingPolicy schema.

    ``cel`` is evaluated by the Kubernetes API server with ``self`` bound to
    the object; ``check`` is the same predicate over the validated pydantic
    object. ``field`` is the path (relative to the object, dot separated) that
    the error is reported on, so that the API server and ``careplane
    validate`` name the same field.
    """

    cel: str
    check: Callable[[Any], bool]
    message: str
    field: str = ""

    def as_cel(self) -> dict[str, str]:
        rule = {"rule": self.cel, "message": self.message}
        if self.field:
            rule["fieldPath"] = "." + self.field
        return rule


class RuleViolation(ValueError):
    """Raised by :func:`check_rules`; carries the field the rule names."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def cel_rules(rules: Sequence[Rule]) -> list[dict[str, str]]:
    return [r.as_cel() for r in rules]


def check_rules(obj: Any, rules: Sequence[Rule]) -> None:
    """Raise :class:`RuleViolation` for the first rule ``obj`` breaks."""
    for rule in rules:
        if not rule.check(obj):
            raise RuleViolation(rule.field, rule.message)
