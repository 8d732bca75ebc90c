"""The two doors of the reconcile loop: metrics in, cluster changes out.

Why ports: :mod:`careplane.operator.reconcile` is the imperative shell around
the pure decision core, and it should be testable without a cluster or a
Prometheus (unit tests use in-memory fakes) and runnable against the real
thing (:mod:`careplane.operator.wiring` adapts the Prometheus reader, the
Kubernetes client and the actuators to these protocols). Errors are raised as
the small exception types below, each with a CamelCase ``reason`` that goes
straight into a status condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from careplane.decision.types import CircuitBreakerSettings
from careplane.policy import RoutingKind, TargetRef


class PortError(Exception):
    """An error with a condition reason (``QueryFailed``, ``TargetNotFound``, ...)."""

    reason = "Error"
    kind = "internal"  # label of careplane_errors_total

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


class MetricsError(PortError):
    """Demand could not be measured: query failed, timed out, returned nothing, NaN or stale data."""

    reason = "QueryFailed"
    kind = "metrics"


class QueryRejected(MetricsError):
    """The query tries to read outside the policy's namespace (tenant confinement)."""

    reason = "QueryRejected"
    kind = "policy"


class TargetMissing(PortError):
    """targetRef does not exist or has no /scale subresource."""

    reason = "TargetNotFound"
    kind = "target"


class ApiFailure(PortError):
    """The Kubernetes API kept failing (5xx, timeouts, conflicts) after retries."""

    reason = "ApiError"
    kind = "kubernetes"


@dataclass(frozen=True)
class Scale:
    """What the target's /scale subresource says."""

    spec_replicas: int
    status_replicas: int | None  # pods that exist (a stand-in for ready when nothing better is known)
    ready_replicas: int | None = None


class MetricsPort(Protocol):
    async def instant(self, namespace: str, query: str, at: float) -> float:
        """One value of ``query`` confined to ``namespace``; raises MetricsError (never returns NaN)."""
        ...

    async def history(
        self, namespace: str, query: str, start: float, end: float, step: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) over [start, end] on ``step``; NaN marks gaps; raises MetricsError."""
        ...

    async def instant_by(self, namespace: str, query: str, label: str, at: float) -> dict[str, float | None]:
        """One value per value of ``label`` (e.g. per routing backend); None where NaN; raises MetricsError."""
        ...


class ClusterPort(Protocol):
    async def get_scale(self, namespace: str, target: TargetRef) -> Scale:
        """Raises TargetMissing or ApiFailure."""
        ...

    async def set_scale(self, namespace: str, target: TargetRef, replicas: int) -> None:
        """Set spec.replicas through /scale (absolute value, so a retry can never double it)."""
        ...

    async def scaling_conflict(self, namespace: str, target: TargetRef) -> str | None:
        """A sentence naming another controller (an HPA) that scales the target, or None."""
        ...

    async def set_circuit_breaker(self, namespace: str, name: str, settings: CircuitBreakerSettings) -> bool:
        """Write only careplane's DestinationRule fields; True when something changed."""
        ...

    async def set_weights(self, namespace: str, kind: RoutingKind, name: str, weights: Mapping[str, int]) -> bool:
        """Write only the route weights; True when something changed."""
        ...

    async def patch_policy(
        self, namespace: str, name: str, *, status: Mapping[str, Any] | None, annotations: Mapping[str, str | None] | None
    ) -> None:
        """Merge-patch the ScalingPolicy's status (via /status) and/or annotations."""
        ...
