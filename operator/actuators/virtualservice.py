"""Istio VirtualService route weights, by destination subset (or host when a route has no subsets).

Every ``spec.http[i].route[j]`` whose ``destination.subset`` (else
``destination.host``) names a policy backend gets that backend's weight;
match conditions, retries, timeouts, headers, other routes: untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from careplane.operator.actuators.weights import Entry, WeightsActuator, weighted


def _backend(route: dict[str, Any]) -> str | None:
    dest = route.get("destination") or {}
    return dest.get("subset") or dest.get("host")


class VirtualServiceActuator(WeightsActuator):
    kind = "VirtualService"

    def entries(self, obj: dict[str, Any]) -> Iterable[Entry]:
        for i, http in enumerate((obj.get("spec") or {}).get("http") or []):
            yield from weighted((http or {}).get("route"), f"/spec/http/{i}/route", _backend)
