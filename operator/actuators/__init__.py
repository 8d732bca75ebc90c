"""Actuators: one file per kind behind one interface (:class:`~careplane.operator.actuators.base.Actuator`).

``ScaleActuator`` (replicas via ``/scale``), ``DestinationRuleActuator`` (Istio
circuit breaker), ``VirtualServiceActuator`` (Istio route weights),
``HTTPRouteActuator`` (Gateway API weights). :func:`routing_actuator` picks the
routing one from a policy's ``routing.kind``.
"""

from careplane.operator.actuators.base import ActuationResult, Actuator
from careplane.operator.actuators.destinationrule import DestinationRuleActuator
from careplane.operator.actuators.httproute import HTTPRouteActuator
from careplane.operator.actuators.scale import ScaleActuator, WorkloadState
from careplane.operator.actuators.virtualservice import VirtualServiceActuator
from careplane.operator.actuators.weights import WeightsActuator
from careplane.operator.kube import Kube, ObjectRef

ROUTING_API_VERSIONS = {
    "VirtualService": "networking.istio.io/v1beta1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
}
DESTINATION_RULE_API_VERSION = "networking.istio.io/v1beta1"


def routing_actuator(kind: object, kube: Kube) -> WeightsActuator:
    """The routing actuator for a policy's ``routing.kind`` (VirtualService or HTTPRoute; str or enum)."""
    kind = str(getattr(kind, "value", kind))
    if kind == "VirtualService":
        return VirtualServiceActuator(kube)
    if kind == "HTTPRoute":
        return HTTPRouteActuator(kube)
    raise ValueError(f"unsupported routing kind {kind!r} (VirtualService or HTTPRoute)")


__all__ = [
    "DESTINATION_RULE_API_VERSION",
    "ROUTING_API_VERSIONS",
    "ActuationResult",
    "Actuator",
    "DestinationRuleActuator",
    "HTTPRouteActuator",
    "Kube",
    "ObjectRef",
    "ScaleActuator",
    "VirtualServiceActuator",
    "WeightsActuator",
    "WorkloadState",
    "routing_actuator",
]
