"""The one interface every actuator implements (one file per kind, as Flagger does with its routers).

An actuator owns a few fields of one object. ``apply`` sets them to what the
decision core asked for in :class:`~careplane.decision.types.Actions` and
nothing else: it reads the object, computes the owned fields' current values,
does no write when they already match, and otherwise writes only those fields
with a resourceVersion precondition, retrying from the read on 409
(:meth:`careplane.operator.kube.Kube.retry_write`). ``current`` reports the
owned fields as they are (for Observations and status).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from careplane.decision.types import Actions
from careplane.operator.kube import Kube, ObjectRef


@dataclass(frozen=True)
class ActuationResult:
    """What an actuator did: whether it wrote, the owned values before and after, a sentence for events."""

    changed: bool
    before: Any
    after: Any
    message: str
    target: str = ""


class Actuator(Protocol):
    """Sets the fields careplane owns on one kind of object."""

    kind: str

    def current(self, ref: ObjectRef) -> Any:
        """The owned fields as they are now (raises NotFound when the object is missing)."""
        ...

    def apply(self, ref: ObjectRef, actions: Actions) -> ActuationResult:
        """Make the owned fields match ``actions`` (a None field in ``actions`` means leave it)."""
        ...


def unchanged(ref: ObjectRef, value: Any, why: str) -> ActuationResult:
    return ActuationResult(False, value, value, why, str(ref))


class BaseActuator:
    """Holds the Kube handle; subclasses implement ``current`` and ``apply``."""

    kind = ""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
