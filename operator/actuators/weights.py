"""Shared logic of the routing actuators: set integer weights on list entries with a JSON patch.

A JSON patch (``test`` on resourceVersion, then ``replace``/``add`` of each
changed ``weight``) touches exactly the weights and nothing else in the lists,
which a merge patch cannot do (it replaces whole lists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from careplane.decision.types import Actions
from careplane.operator.actuators.base import ActuationResult, BaseActuator, unchanged
from careplane.operator.kube import KubeError, ObjectRef

# (JSON pointer of the entry, backend name, current weight or None)
Entry = tuple[str, str, int | None]


class WeightsActuator(BaseActuator):
    """Subclasses say where the weighted entries are (``entries``) and what a missing weight means."""

    def entries(self, obj: dict[str, Any]) -> Iterable[Entry]:
        raise NotImplementedError

    def current(self, ref: ObjectRef) -> dict[str, int]:
        return self._current(list(self.entries(self.kube.get(ref))))

    # What an absent weight means: Istio gives a lone destination everything (and 0 otherwise);
    # the Gateway API defaults every backendRef to 1.
    default_weight: int | None = None

    def _current(self, entries: list[Entry]) -> dict[str, int]:
        per_list: dict[str, int] = {}
        for pointer, _, _ in entries:
            parent = pointer.rsplit("/", 1)[0]
            per_list[parent] = per_list.get(parent, 0) + 1
        out: dict[str, int] = {}
        for pointer, name, weight in entries:
            if weight is None:
                alone = per_list[pointer.rsplit("/", 1)[0]] == 1
                weight = self.default_weight if self.default_weight is not None else (100 if alone else 0)
            out.setdefault(name, weight)
        return out

    def apply(self, ref: ObjectRef, actions: Actions) -> ActuationResult:
        want: Mapping[str, int] | None = actions.weights
        if want is None:
            return unchanged(ref, None, "no routing change asked for")
        if sum(want.values()) != 100 or any(w < 0 for w in want.values()):
            raise ValueError(f"weights must be non-negative and sum to 100, got {dict(want)}")

        def step() -> ActuationResult:
            obj = self.kube.get(ref)
            entries = list(self.entries(obj))
            known = {name for _, name, _ in entries}
            missing = sorted(set(want) - known)
            if missing:
                raise KubeError(f"{ref} has no route to backend(s) {', '.join(missing)}", 422)
            have = self._current(entries)
            ops: list[dict[str, Any]] = []
            for pointer, name, weight in entries:
                if name in want and weight != want[name]:
                    ops.append({"op": "replace" if weight is not None else "add",
                                "path": f"{pointer}/weight", "value": int(want[name])})
            if not ops:
                return unchanged(ref, have, f"{ref} weights already {dict(want)}")
            rv = obj["metadata"].get("resourceVersion")
            self.kube.patch(ref, [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, *ops],
                            patch_type="json")
            after = {**have, **dict(want)}
            moved = ", ".join(f"{k} {have.get(k)} -> {v}" for k, v in want.items() if have.get(k) != v)
            return ActuationResult(True, have, after, f"routing weights of {ref}: {moved}", str(ref))

        return self.kube.retry_write(f"weights {ref}", step)


def weighted(items: Any, base: str, name_of: Callable[[dict[str, Any]], str | None]) -> Iterable[Entry]:
    """The weighted entries of one destination list.

    A list with a single destination is not a split: that destination takes all of the
    traffic whatever its weight says (an admin path pinned to one subset, say), so it is
    skipped; writing a policy weight there would only make its weights stop summing to 100.
    """
    if not isinstance(items, list) or sum(isinstance(item, dict) for item in items) < 2:
        return
    for j, item in enumerate(items):
        if isinstance(item, dict):
            name = name_of(item)
            if name is not None:
                w = item.get("weight")
                yield f"{base}/{j}", name, int(w) if w is not None else None
