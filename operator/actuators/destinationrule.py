"""Istio DestinationRule circuit breaker: the connection pool and outlier detection fields careplane owns.

Owned: ``spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests``,
``...connectionPool.tcp.maxConnections`` and ``...outlierDetection.{consecutive5xxErrors,
baseEjectionTime, maxEjectionPercent}``. Everything else (other pool and
outlier fields, TLS, load balancer, subsets, port-level settings) is left as
it was: the write is a JSON merge patch of just these keys, with the read's
resourceVersion as precondition.
"""

from __future__ import annotations

import re
from typing import Any

from careplane.decision.types import Actions, CircuitBreakerSettings
from careplane.operator.actuators.base import ActuationResult, BaseActuator, unchanged
from careplane.operator.kube import ObjectRef

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def parse_duration(text: Any) -> int | None:
    """Seconds of an Istio/protobuf duration such as ``30s``, ``1m30s``, ``500ms`` (rounded), or None."""
    if text is None:
        return None
    m = _DURATION.match(str(text).strip())
    if not m or not any(m.groups()):
        return None
    h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return round(h * 3600 + mi * 60 + s + ms / 1000)


def read_settings(obj: dict[str, Any]) -> dict[str, Any]:
    tp = (obj.get("spec") or {}).get("trafficPolicy") or {}
    pool = tp.get("connectionPool") or {}
    od = tp.get("outlierDetection") or {}
    return {
        "max_pending_requests": (pool.get("http") or {}).get("http1MaxPendingRequests"),
        "max_connections": (pool.get("tcp") or {}).get("maxConnections"),
        "consecutive_5xx_errors": od.get("consecutive5xxErrors"),
        "base_ejection_seconds": parse_duration(od.get("baseEjectionTime")),
        "max_ejection_percent": od.get("maxEjectionPercent"),
    }


def desired_settings(cb: CircuitBreakerSettings) -> dict[str, Any]:
    return {
        "max_pending_requests": cb.max_pending_requests,
        "max_connections": cb.max_connections,
        "consecutive_5xx_errors": cb.consecutive_5xx_errors,
        "base_ejection_seconds": cb.base_ejection_seconds,
        "max_ejection_percent": cb.max_ejection_percent,
    }


class DestinationRuleActuator(BaseActuator):
    kind = "DestinationRule"

    def current(self, ref: ObjectRef) -> dict[str, Any]:
        return read_settings(self.kube.get(ref))

    def apply(self, ref: ObjectRef, actions: Actions) -> ActuationResult:
        cb = actions.circuit_breaker
        if cb is None:
            return unchanged(ref, None, "no circuit-breaker change asked for")
        want = desired_settings(cb)

        def step() -> ActuationResult:
            obj = self.kube.get(ref)
            have = read_settings(obj)
            if have == want:
                return unchanged(ref, have, f"{ref} circuit breaker already as asked")
            patch = {
                "metadata": {"resourceVersion": obj["metadata"].get("resourceVersion")},
                "spec": {"trafficPolicy": {
                    "connectionPool": {
                        "http": {"http1MaxPendingRequests": cb.max_pending_requests},
                        "tcp": {"maxConnections": cb.max_connections},
                    },
                    "outlierDetection": {
                        "consecutive5xxErrors": cb.consecutive_5xx_errors,
                        "baseEjectionTime": f"{cb.base_ejection_seconds}s",
                        "maxEjectionPercent": cb.max_ejection_percent,
                    },
                }},
            }
            self.kube.patch(ref, patch)
            changed = ", ".join(f"{k} {have[k]} -> {want[k]}" for k in want if have[k] != want[k])
            return ActuationResult(True, have, want, f"circuit breaker of {ref}: {changed}", str(ref))

        return self.kube.retry_write(f"circuit breaker {ref}", step)
