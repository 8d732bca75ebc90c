"""Gateway API HTTPRoute ``spec.rules[i].backendRefs[j].weight``, by backendRef name.

Matches, filters, other rules and parentRefs are untouched. A backendRef
without a weight counts as weight 1 in the Gateway API; when careplane first
sets weights it adds them explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from careplane.operator.actuators.weights import Entry, WeightsActuator, weighted


class HTTPRouteActuator(WeightsActuator):
    kind = "HTTPRoute"
    default_weight = 1

    def entries(self, obj: dict[str, Any]) -> Iterable[Entry]:
        for i, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
            yield from weighted((rule or {}).get("backendRefs"), f"/spec/rules/{i}/backendRefs",
                                lambda ref: ref.get("name"))
