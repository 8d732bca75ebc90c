"""Replicas through the ``/scale`` subresource of the policy's targetRef.

The scale subresource is what HPA and KEDA use: it works for Deployment,
StatefulSet, Argo Rollout and any kind that declares it, and it touches
nothing but ``spec.replicas``.
"""

from __future__ import annotations

from dataclasses import dataclass

from careplane.decision.types import Actions
from careplane.operator.actuators.base import ActuationResult, BaseActuator, unchanged
from careplane.operator.kube import KubeError, ObjectRef


@dataclass(frozen=True)
class WorkloadState:
    replicas: int  # spec.replicas (asked for)
    status_replicas: int | None  # status.replicas from the Scale
    ready_replicas: int | None  # status.readyReplicas of the object, when it reports one
    selector: str | None


class ScaleActuator(BaseActuator):
    kind = "Scale"

    def current(self, ref: ObjectRef) -> WorkloadState:
        scale = self.kube.get(ref, "scale")
        try:
            obj_status = self.kube.get(ref).get("status") or {}
        except KubeError:  # a kind whose object cannot be read (RBAC: scale only) still scales
            obj_status = {}
        ready = obj_status.get("readyReplicas")
        status = scale.get("status") or {}
        return WorkloadState(
            replicas=int((scale.get("spec") or {}).get("replicas", 0)),
            status_replicas=int(status["replicas"]) if status.get("replicas") is not None else None,
            ready_replicas=int(ready) if ready is not None else (0 if obj_status else None),
            selector=status.get("selector"),
        )

    def apply(self, ref: ObjectRef, actions: Actions) -> ActuationResult:
        want = actions.replicas
        if want is None:
            return unchanged(ref, None, "no replica change asked for")
        if want < 0:
            raise ValueError(f"replicas must be >= 0, got {want}")

        def step() -> ActuationResult:
            scale = self.kube.get(ref, "scale")
            have = int((scale.get("spec") or {}).get("replicas", 0))
            if have == want:
                return unchanged(ref, have, f"{ref} already has {want} replicas")
            rv = scale["metadata"].get("resourceVersion")
            self.kube.patch(ref, {"metadata": {"resourceVersion": rv}, "spec": {"replicas": want}}, subresource="scale")
            return ActuationResult(True, have, want, f"scaled {ref} from {have} to {want} replicas", str(ref))

        return self.kube.retry_write(f"scale {ref}", step)
