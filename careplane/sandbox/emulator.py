"""An emulated Kubernetes API server for tests, benchmarks and the sandbox.

Why this exists: there is no cluster here, and careplane's operator (kopf +
the ``kubernetes`` client) must run against something that speaks the real
HTTP API. kmock 0.8's ``KubernetesEmulator`` is a good base (an aiohttp server
with API discovery and a reaction DSL for fault injection) but it is a
JSON-merge store, not an API server. Running kopf 1.45 and the kubernetes
client against it shows these gaps, each fixed once here (search for "GAP"):

* GAP discovery: kopf waits until ``v1/namespaces`` is discoverable; kmock
  discovers only what it has been told -> we load kmock's bundled builtin
  resource list and register our CRDs on top.
* GAP identity: kmock sets no ``metadata.uid``, ``resourceVersion`` or
  ``creationTimestamp``; kopf keys objects by uid and JSON-patches with a
  ``test`` op on resourceVersion -> the store assigns all three, bumps
  resourceVersion on every real write, answers 409 on a stale one (PUT or
  merge patch carrying ``metadata.resourceVersion``) and 422 on a failed
  JSON-patch ``test`` (what kopf expects), and skips no-op writes (no new
  resourceVersion, no event), like the real server.
* GAP namespaces path: kmock cannot parse ``/api/v1/namespaces[/NAME]``
  (its path parser takes ``namespaces`` as the namespace segment and
  crashes) -> our own request parsing.
* GAP watch events: objects put into ``kmock.objects`` raise no watch
  events -> we keep our own store; every write, through HTTP or the Python
  API, goes through one code path that emits watch events, honours
  ``resourceVersion`` on watch (replay from an event log, 410 when too old),
  ``timeoutSeconds``, and label/field selectors on list and watch.
* GAP subresources: kmock has no ``/scale`` or ``/status`` semantics -> GET
  ``/scale`` returns an ``autoscaling/v1`` Scale, PATCH/PUT sets
  ``spec.replicas`` (Deployment, StatefulSet and any kind registered with a
  ``scale`` subresource, e.g. Argo Rollout); a kind with a ``status``
  subresource ignores status in main writes and everything but status in
  ``/status`` writes; ``metadata.generation`` bumps on spec changes.
* GAP PUT: kmock maps PUT to no action -> PUT is a full replace.

Fault injection uses kmock reactions (a user reaction takes precedence over
our fallback API, so an injected 409/500/timeout leaves the state untouched,
as a failed request on a real server does): see
:meth:`EmulatedCluster.inject_fault`.

What it does NOT model: admission, schema validation, defaulting (other than
the workload status below), strategic-merge list semantics (strategic merge
is treated as a JSON merge patch), server-side apply, garbage collection
(owner references), RBAC, pagination (``limit`` is ignored, no ``continue``).

A tiny workload controller (on by default) mirrors ``spec.replicas`` of
scalable kinds into ``status.replicas/readyReplicas/availableReplicas``,
optionally after a readiness delay, so that readers of the Scale status and
of ready replicas see something plausible.

Use :class:`EmulatedCluster` (a context manager; the server runs on a free
127.0.0.1 port in its own thread with its own event loop, so it works from a
plain pytest test, from async code, and, through ``python -m
careplane.sandbox.emulator``, as a separate process).
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import collections
import copy
import datetime
import functools
import json
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp.web
import jsonpatch  # a dependency of kopf and kmock
import kmock
import requests
import yaml
from kmock._internal import enums, rendering

JSON = dict[str, Any]

SCALABLE_WORKLOADS: tuple[tuple[str, str], ...] = (("apps", "deployments"), ("apps", "statefulsets"))


class ApiError(Exception):
    """An HTTP error from the (emulated) API server, with its status code and Status body."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b=c``)."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def label_selector_matches(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Kubernetes label-selector semantics: ``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``."""
    if not selector:
        return True
    labels = labels or {}
    for req in _split_selector(selector):
        m = _SET_RE.match(req)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            ok = labels.get(key) in values if op == "in" else labels.get(key) not in values
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            ok = labels.get(key) != value
        elif "==" in req or "=" in req:
            key, value = (s.strip() for s in re.split("==|=", req, maxsplit=1))
            ok = labels.get(key) == value
        elif req.startswith("!"):
            ok = req[1:].strip() not in labels
        else:
            ok = req in labels
        if not ok:
            return False
    return True


def _field_value(obj: JSON, path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def field_selector_matches(selector: str | None, obj: JSON) -> bool:
    """Equality field selectors (``metadata.name=x``, ``metadata.namespace!=y``), enough for kopf and kubectl."""
    if not selector:
        return True
    for req in _split_selector(selector):
        if "!=" in req:
            key, value = req.split("!=", 1)
            if str(_field_value(obj, key.strip())) == value.strip():
                return False
        else:
            key, value = re.split("==|=", req, maxsplit=1)
            if str(_field_value(obj, key.strip())) != value.strip():
                return False
    return True


# --------------------------------------------------------------------------------------------
# Request parsing (GAP namespaces path)
# --------------------------------------------------------------------------------------------

_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass(frozen=True)
class ParsedPath:
    group: str | None = None
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_path(path: str) -> ParsedPath:
    """Parse a Kubernetes API path.

    GAP namespaces path: kmock 0.8 treats ``/api/v1/namespaces`` as a namespaced
    path and raises on it; here ``namespaces`` is a resource when nothing or a
    namespace subresource follows the name.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    elif len(parts) == 2 and parts[0] == "apis":
        return ParsedPath(group=parts[1])
    else:
        return ParsedPath()
    namespace: str | None = None
    if rest and rest[0] == "namespaces" and (len(rest) <= 2 or (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES)):
        # /api/v1/namespaces, /api/v1/namespaces/NAME, /api/v1/namespaces/NAME/status
        return ParsedPath(group, version, "namespaces", None, rest[1] if len(rest) > 1 else None,
                          rest[2] if len(rest) > 2 else None)
    if rest and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return ParsedPath(group, version, plural, namespace, name, sub)


async def _parse_request(raw: aiohttp.web.BaseRequest, *, id: int) -> rendering.Request:
    """Build kmock's Request with our path parser (mirrors ``kmock.Request._parse``)."""
    body = await raw.read()
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    parsed = parse_path(raw.path)
    resource = None
    if parsed.group is not None:
        resource = kmock.resource(group=parsed.group, version=parsed.version, plural=parsed.plural)
    method = enums.method(raw.method)
    query = dict(raw.query)
    action: enums.action | None = None
    if parsed.plural is not None:
        if raw.method == "GET":
            is_watch = query.get("watch") in ("true", "1")
            action = enums.action.WATCH if is_watch else enums.action.FETCH if parsed.name else enums.action.LIST
        elif raw.method == "POST" and parsed.name is None:
            action = enums.action.CREATE
        elif raw.method in ("PATCH", "PUT") and parsed.name:  # GAP PUT: kmock maps PUT to nothing
            action = enums.action.UPDATE
        elif raw.method == "DELETE" and parsed.name:
            action = enums.action.DELETE
    return rendering.Request(
        id=id, raw_request=raw, url=raw.url, method=method, params=query,
        headers=dict(raw.headers), cookies=dict(raw.cookies), data=data, body=body, text=text,
        action=action, resource=resource, namespace=parsed.namespace, name=parsed.name,
        subresource=parsed.subresource,
    )


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (None deletes)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _spec_part(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _status(code: int, reason: str, message: str) -> JSON:
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "code": code, "reason": reason, "message": message}


async def _queue_get(queue: asyncio.Queue[JSON | None]) -> JSON | None:
    return await queue.get()


def _error(code: int, reason: str, message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details={})


@dataclass
class _Watcher:
    key: tuple[str, str]
    namespace: str | None
    name: str | None
    labels: str | None
    fields: str | None
    queue: asyncio.Queue[JSON | None] = field(default_factory=asyncio.Queue)

    def wants(self, obj: JSON) -> bool:
        meta = obj.get("metadata", {})
        return (
            (self.namespace is None or meta.get("namespace") == self.namespace)
            and (self.name is None or meta.get("name") == self.name)
            and label_selector_matches(self.labels, meta.get("labels"))
            and field_selector_matches(self.fields, obj)
        )


@dataclass
class ResourceKind:
    """What the store needs to know about a resource (from discovery info)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


class CareplaneEmulator(kmock.KubernetesScaffold):
    """kmock's scaffold (discovery, errors, reactions) + a stateful store with API-server semantics."""

    def __init__(self, *, event_log_size: int = 10_000, ready_delay_seconds: float | None = 0.0,
                 keep_requests: int = 5_000) -> None:
        super().__init__()
        # GAP discovery: kopf waits for v1/namespaces (and we need apps, autoscaling, events...).
        with warnings.catch_warnings():  # kmock uses the deprecated importlib.resources.read_binary
            warnings.simplefilter("ignore", DeprecationWarning)
            self.resources.load_bundled()
        self._objects: dict[tuple[str, str], dict[tuple[str | None, str], JSON]] = collections.defaultdict(dict)
        self._rv = 1
        self._log: collections.deque[tuple[int, tuple[str, str], JSON]] = collections.deque(maxlen=event_log_size)
        self._watchers: list[_Watcher] = []
        self._ready_delay = ready_delay_seconds
        self._keep_requests = keep_requests
        self.writes: collections.Counter[tuple[str, str]] = collections.Counter()  # (plural, "ns/name") -> real writes
        self.fallback[self._is_resource_request] << self._serve
        self._sorted: list[Any] = []
        self._sorted_ids: list[int] = []

    # ---- kmock plumbing ------------------------------------------------------------------

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """kmock's dispatch (reactions by priority, then fallbacks) with O(1) matching per request.

        GAP quadratic dispatch: kmock 0.8 decides whether a reaction sees a request with
        ``request in view``, which re-filters the whole request history for every reaction
        on every request; a few hundred requests in, each one costs tens of milliseconds.
        Here each view is evaluated against a one-request history. Consequence: slicing
        reactions by position (``kmock[...][:2]``) cannot count past requests; count in the
        payload instead, as :meth:`EmulatedCluster.inject_fault` does.
        """
        ids = [id(p) for p in self._payloads]
        if ids != self._sorted_ids:
            self._sorted = sorted(self._payloads, key=lambda p: tuple(-x for x in p.priorities) + (0,) * 8)
            self._sorted_ids = ids
        for payload in self._sorted:
            if payload._disabled.is_set():
                continue
            history = self._requests
            self._requests = [request]  # sync section: no other request can run in between
            try:
                seen = request in payload._source
            finally:
                self._requests = history
            if not seen:
                continue
            if len(payload._requests) > 1000:  # reactions keep what they served: bound it
                del payload._requests[:-100]
            try:
                return await payload(request)
            except rendering.ReactionMismatchError:
                payload._disabled.set()
            except NotImplementedError:
                pass
        raise NotImplementedError("no reaction matches the request")

    @staticmethod
    def _is_resource_request(request: rendering.Request) -> bool:
        return request.resource is not None and request.resource.plural is not None

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Mirror of ``kmock.RawHandler.__call__`` with our request parser (GAP namespaces path)."""
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            # Bound the request log of long runs (sandbox, benchmarks): kmock keeps every request.
            if len(self._requests) > self._keep_requests:
                del self._requests[: len(self._requests) // 2]
            request = await _parse_request(raw_request, id=len(self._requests))
            self._requests.append(request)
            try:
                return await self._handle(request)
            except rendering.StreamingError as e:
                raw_response = e.args[0]
                if e.__cause__ is not None:
                    raise e.__cause__ from None
                raise
        except Exception as e:
            if self._errors and not isinstance(e, kmock.KubernetesError):
                self._errors[-1].append(e)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

    # ---- resources -----------------------------------------------------------------------

    def kind_of(self, group: str, version: str | None, plural: str) -> ResourceKind | None:
        for res in self.resources:
            if res.group == group and res.plural == plural and (version is None or res.version == version):
                info = self.resources[res]
                return ResourceKind(group, res.version or "", plural, info.kind or plural.capitalize(),
                                    bool(info.namespaced), frozenset(info.subresources))
        return None

    def kind_by_name(self, api_version: str, kind: str) -> ResourceKind:
        group, _, version = api_version.rpartition("/")
        for res in self.resources:
            info = self.resources[res]
            if res.group == group and res.version == version and info.kind == kind:
                assert res.plural is not None
                return ResourceKind(group, version, res.plural, kind, bool(info.namespaced), frozenset(info.subresources))
        raise KeyError(f"unknown kind {kind} in {api_version}; register it first")

    def register(self, group: str, version: str, plural: str, kind: str, *, namespaced: bool = True,
                 subresources: Iterable[str] = (), singular: str | None = None,
                 shortnames: Iterable[str] = ()) -> None:
        """Make a resource discoverable and storable (a CRD, or a kind with ``scale``/``status``)."""
        self.resources[f"{group}/{version}/{plural}" if group else f"{version}/{plural}"] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, singular=singular or kind.lower(), shortnames=set(shortnames),
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"}, subresources=set(subresources),
        )

    def register_crd(self, crd: Mapping[str, Any]) -> None:
        spec = crd["spec"]
        names = spec["names"]
        for ver in spec["versions"]:
            self.register(spec["group"], ver["name"], names["plural"], names["kind"],
                          namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                          subresources=(ver.get("subresources") or {}).keys(),
                          singular=names.get("singular"), shortnames=names.get("shortNames", ()))

    # ---- the store (synchronous; only ever called on the emulator's event loop) ------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, key: tuple[str, str], etype: str, obj: JSON) -> None:
        event = {"type": etype, "object": obj}
        self._log.append((int(obj["metadata"]["resourceVersion"]), key, event))
        for w in self._watchers:
            if w.key == key and w.wants(obj):
                w.queue.put_nowait(event)

    def get_object(self, kind: ResourceKind, namespace: str | None, name: str) -> JSON | None:
        return self._objects[(kind.group, kind.plural)].get((namespace if kind.namespaced else None, name))

    def list_objects(self, kind: ResourceKind, namespace: str | None = None, labels: str | None = None,
                     fields: str | None = None) -> list[JSON]:
        out = []
        for (ns, _), obj in self._objects[(kind.group, kind.plural)].items():
            if namespace is not None and ns != namespace:
                continue
            meta = obj.get("metadata", {})
            if label_selector_matches(labels, meta.get("labels")) and field_selector_matches(fields, obj):
                out.append(obj)
        return out

    def _ensure_namespace(self, namespace: str | None) -> None:
        # A convenience, not API-server behaviour: the real server rejects objects in a missing namespace.
        if namespace and (None, namespace) not in self._objects[("", "namespaces")]:
            ns_kind = self.kind_of("", "v1", "namespaces")
            assert ns_kind is not None
            self.create_object(ns_kind, None, {"metadata": {"name": namespace}})

    def create_object(self, kind: ResourceKind, namespace: str | None, body: JSON) -> JSON:
        obj = copy.deepcopy(body) if isinstance(body, dict) else {}
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise _error(422, "Invalid", "metadata.name: Required value")
        if kind.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if meta.get("namespace") not in (None, namespace):
                raise _error(400, "BadRequest", "the namespace of the object does not match the namespace of the request")
            meta["namespace"] = namespace
            self._ensure_namespace(namespace)
        else:
            namespace = None
            meta.pop("namespace", None)
        store = self._objects[(kind.group, kind.plural)]
        if (namespace, meta["name"]) in store:
            raise _error(409, "AlreadyExists", f'{kind.plural} "{meta["name"]}" already exists')
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        # GAP identity: uid, resourceVersion, creationTimestamp, generation.
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv()
        meta.pop("deletionTimestamp", None)
        if (kind.group, kind.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.register_crd(obj)
        store[(namespace, meta["name"])] = obj
        self.writes[(kind.plural, f"{namespace}/{meta['name']}")] += 1
        self._emit((kind.group, kind.plural), "ADDED", obj)
        self._after_write(kind, None, obj)
        return obj

    def write_object(self, kind: ResourceKind, namespace: str | None, name: str, new: JSON, *,
                     subresource: str | None = None, precondition_rv: str | None = None) -> JSON:
        """Store a new version: protect identity, honour subresources, bump rv/generation, emit events."""
        namespace = namespace if kind.namespaced else None
        store = self._objects[(kind.group, kind.plural)]
        old = store.get((namespace, name))
        if old is None:
            raise _error(404, "NotFound", f'{kind.plural} "{name}" not found')
        if precondition_rv is not None and precondition_rv != old["metadata"]["resourceVersion"]:
            raise _error(409, "Conflict", f'Operation cannot be fulfilled on {kind.plural} "{name}": '
                         "the object has been modified; please apply your changes to the latest version and try again")
        new = copy.deepcopy(new)
        if subresource == "status":
            new = {**copy.deepcopy(old), "status": new.get("status")} if "status" in new else copy.deepcopy(old)
            if new.get("status") is None:
                new.pop("status", None)
        elif "status" in kind.subresources:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        meta = new.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "resourceVersion", "generation", "namespace", "name"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        if "deletionTimestamp" in old["metadata"]:
            meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        if new == old:
            return old  # a no-op write: the real server keeps the resourceVersion and sends no event
        if _spec_part(new) != _spec_part(old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = self._next_rv()
        self.writes[(kind.plural, f"{namespace}/{name}")] += 1
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del store[(namespace, name)]
            self._emit((kind.group, kind.plural), "DELETED", new)
            return new
        store[(namespace, name)] = new
        self._emit((kind.group, kind.plural), "MODIFIED", new)
        self._after_write(kind, old, new)
        return new

    def delete_object(self, kind: ResourceKind, namespace: str | None, name: str) -> JSON:
        namespace = namespace if kind.namespaced else None
        store = self._objects[(kind.group, kind.plural)]
        old = store.get((namespace, name))
        if old is None:
            raise _error(404, "NotFound", f'{kind.plural} "{name}" not found')
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["resourceVersion"] = self._next_rv()
            store[(namespace, name)] = new
            self._emit((kind.group, kind.plural), "MODIFIED", new)
            return new
        del store[(namespace, name)]
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self.writes[(kind.plural, f"{namespace}/{name}")] += 1
        self._emit((kind.group, kind.plural), "DELETED", gone)
        return gone

    # ---- workload controller -------------------------------------------------------------

    def _after_write(self, kind: ResourceKind, old: JSON | None, new: JSON) -> None:
        if self._ready_delay is None or "scale" not in kind.subresources:
            return
        want = int(new.get("spec", {}).get("replicas", 1))
        status = new.get("status", {})
        if old is not None and want == status.get("replicas") and want == status.get("readyReplicas"):
            return
        ready_now = min(want, int(status.get("readyReplicas", 0))) if self._ready_delay > 0 else want
        self._set_workload_status(kind, new, want, ready_now)
        if ready_now < want:
            meta = new["metadata"]
            asyncio.get_running_loop().call_later(
                self._ready_delay, self._workload_ready, kind, meta.get("namespace"), meta["name"], want)

    def _set_workload_status(self, kind: ResourceKind, obj: JSON, replicas: int, ready: int) -> None:
        meta = obj["metadata"]
        status = dict(obj.get("status", {}))
        status.update(replicas=replicas, readyReplicas=ready, availableReplicas=ready, updatedReplicas=replicas,
                      observedGeneration=meta.get("generation", 1))
        self.write_object(kind, meta.get("namespace"), meta["name"], {**obj, "status": status}, subresource="status")

    def _workload_ready(self, kind: ResourceKind, namespace: str | None, name: str, want: int) -> None:
        obj = self.get_object(kind, namespace, name)
        if obj is None:
            return
        current = int(obj.get("spec", {}).get("replicas", 1))
        ready = int(obj.get("status", {}).get("readyReplicas", 0))
        target = min(want, current)
        if target > ready:
            self._set_workload_status(kind, obj, current, target)

    # ---- HTTP API ------------------------------------------------------------------------

    async def _serve(self, request: rendering.Request) -> Any:
        assert request.resource is not None and request.resource.plural is not None
        res = request.resource
        kind = self.kind_of(res.group or "", res.version, res.plural or "")
        if kind is None:
            raise kmock.KubernetesResourceNotFoundError()
        method = request.method.value if isinstance(request.method, enums.method) else str(request.method)
        params = request.params
        ns = request.namespace if kind.namespaced else None
        name, sub = request.name, request.subresource
        if method == "GET" and params.get("watch") in ("true", "1"):
            return self._watch_stream(kind, ns, name, params)
        if method == "GET" and name is None:
            items = self.list_objects(kind, ns, params.get("labelSelector"), params.get("fieldSelector"))
            return {"apiVersion": kind.api_version, "kind": f"{kind.kind}List",
                    "metadata": {"resourceVersion": str(self._rv)}, "items": items}
        if method == "POST" and name is None:
            # 200, not 201: returning a kmock Response from a fallback would mutate the shared reaction.
            return self.create_object(kind, ns, request.data or {})
        if name is None:
            raise _error(405, "MethodNotAllowed", f"{method} is not supported on collections here")
        if method == "DELETE":
            return self.delete_object(kind, ns, name)
        if sub is not None and sub not in kind.subresources:
            raise _error(404, "NotFound", f"{kind.plural} has no subresource {sub}")
        obj = self.get_object(kind, ns, name)
        if obj is None:
            raise _error(404, "NotFound", f'{kind.plural}.{kind.group} "{name}" not found')
        if sub == "scale":
            return self._serve_scale(kind, obj, method, request)
        if method == "GET":
            return obj
        if method == "PUT":
            body = request.data or {}
            rv = (body.get("metadata") or {}).get("resourceVersion")
            return self.write_object(kind, ns, name, body, subresource=sub, precondition_rv=rv)
        if method == "PATCH":
            new, rv = self._apply_patch(obj, request)
            return self.write_object(kind, ns, name, new, subresource=sub, precondition_rv=rv)
        raise _error(405, "MethodNotAllowed", f"{method} is not supported")

    @staticmethod
    def _apply_patch(obj: JSON, request: rendering.Request) -> tuple[JSON, str | None]:
        ctype = (request.headers.get("Content-Type") or request.headers.get("content-type") or "").split(";")[0]
        data = request.data
        if ctype == "application/json-patch+json":
            try:
                return jsonpatch.apply_patch(obj, data or []), None
            except jsonpatch.JsonPatchTestFailed as e:
                # kopf expects 422 when its `test` on resourceVersion fails (then it retries later).
                raise _error(422, "Invalid", f"the server rejected our request: test failed: {e}") from None
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                raise _error(422, "Invalid", f"invalid JSON patch: {e}") from None
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            # Strategic merge is treated as a JSON merge patch (lists are replaced, not merged by key).
            if not isinstance(data, dict):
                raise _error(400, "BadRequest", "a merge patch must be a JSON object")
            rv = (data.get("metadata") or {}).get("resourceVersion")
            return _merge_patch(obj, data), rv
        raise _error(415, "UnsupportedMediaType", f"unsupported patch type {ctype!r}")

    def _scale_of(self, obj: JSON) -> JSON:
        meta = obj["metadata"]
        spec, status = obj.get("spec", {}), obj.get("status", {})
        labels = (spec.get("selector") or {}).get("matchLabels") or {}
        selector = status.get("selector") or ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return {
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
            "spec": {"replicas": int(spec.get("replicas", 1))},
            "status": {"replicas": int(status.get("replicas", 0)), "selector": selector},
        }

    def _serve_scale(self, kind: ResourceKind, obj: JSON, method: str, request: rendering.Request) -> JSON:
        scale = self._scale_of(obj)
        if method == "GET":
            return scale
        if method == "PUT":
            new_scale, rv = request.data or {}, (request.data or {}).get("metadata", {}).get("resourceVersion")
        elif method == "PATCH":
            new_scale, rv = self._apply_patch(scale, request)
        else:
            raise _error(405, "MethodNotAllowed", f"{method} on /scale")
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise _error(422, "Invalid", f"spec.replicas: Invalid value: {replicas!r}")
        meta = obj["metadata"]
        new = copy.deepcopy(obj)
        new.setdefault("spec", {})["replicas"] = replicas
        written = self.write_object(kind, meta.get("namespace"), meta["name"], new, precondition_rv=rv)
        return self._scale_of(self.get_object(kind, meta.get("namespace"), meta["name"]) or written)

    async def _watch_stream(self, kind: ResourceKind, namespace: str | None, name: str | None,
                            params: Mapping[str, str]) -> AsyncIterator[Any]:
        key = (kind.group, kind.plural)
        fields = params.get("fieldSelector")
        if name:
            fields = ",".join(filter(None, [fields, f"metadata.name={name}"]))
        watcher = _Watcher(key, namespace, None, params.get("labelSelector"), fields)
        since = params.get("resourceVersion")
        if since is not None and not since.isdigit():
            since = None  # not one of ours (e.g. from another server): start from the current state
        backlog: list[JSON] = []
        if since and since != "0":
            oldest = self._log[0][0] if self._log else self._rv + 1
            if int(since) < oldest - 1 and len(self._log) == self._log.maxlen:
                backlog = [{"type": "ERROR", "object": _status(410, "Expired", f"too old resource version: {since}")}]
            else:
                backlog = [ev for rv, k, ev in self._log if k == key and rv > int(since) and watcher.wants(ev["object"])]
        else:
            backlog = [{"type": "ADDED", "object": o} for o in self.list_objects(kind, namespace, watcher.labels, fields)]
        self._watchers.append(watcher)  # registered before the first await: no event can slip between
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        deadline = time.monotonic() + timeout if timeout else None
        try:
            yield b""  # send the headers now (as kmock does)
            for ev in backlog:
                yield ev
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    event = await asyncio.wait_for(_queue_get(watcher.queue), remaining)
                except TimeoutError:
                    return
                if event is None:
                    return
                yield event
        finally:
            self._watchers.remove(watcher)

    def close_watches(self) -> None:
        for w in self._watchers:
            w.queue.put_nowait(None)


# --------------------------------------------------------------------------------------------
# A client for the emulator over HTTP (also usable against it from another process)
# --------------------------------------------------------------------------------------------


class ClusterClient:
    """A small synchronous client: create/get/patch/list/delete by apiVersion + kind over HTTP."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._plurals: dict[tuple[str, str], tuple[str, bool]] = {}

    def close(self) -> None:
        self._session.close()

    def _resolve(self, api_version: str, kind: str) -> tuple[str, bool]:
        key = (api_version, kind)
        if key not in self._plurals:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            doc = self._request("GET", base)
            for res in doc.get("resources", []):
                if "/" not in res["name"]:
                    self._plurals[(api_version, res["kind"])] = (res["name"], bool(res.get("namespaced")))
        if key not in self._plurals:
            raise ApiError(404, f"unknown kind {kind} in {api_version}")
        return self._plurals[key]

    def path(self, api_version: str, kind: str, name: str | None = None, namespace: str | None = None,
             subresource: str | None = None) -> str:
        plural, namespaced = self._resolve(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base

    def _request(self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None,
                 content_type: str = "application/json") -> Any:
        data = json.dumps(body) if body is not None else None
        resp = self._session.request(method, self.url + path, data=data, params=params, timeout=self.timeout,
                                     headers={"Content-Type": content_type})
        if resp.status_code >= 400:
            try:
                payload = resp.json()
                message = payload.get("message", resp.text)
            except ValueError:
                payload, message = None, resp.text
            raise ApiError(resp.status_code, message, payload)
        return resp.json() if resp.content else None

    def create(self, obj: Mapping[str, Any]) -> JSON:
        meta = obj.get("metadata", {})
        path = self.path(obj["apiVersion"], obj["kind"], namespace=meta.get("namespace") or "default")
        return self._request("POST", path, body=obj)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None,
            subresource: str | None = None) -> JSON:
        return self._request("GET", self.path(api_version, kind, name, namespace, subresource))

    def get_or_none(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        try:
            return self.get(api_version, kind, name, namespace)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> builtins.list[JSON]:
        params = {"labelSelector": label_selector} if label_selector else None
        return self._request("GET", self.path(api_version, kind, namespace=namespace), params=params)["items"]

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, patch: Any, *,
              subresource: str | None = None, patch_type: str = "merge") -> JSON:
        ctype = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                 "strategic": "application/strategic-merge-patch+json"}[patch_type]
        return self._request("PATCH", self.path(api_version, kind, name, namespace, subresource),
                             body=patch, content_type=ctype)

    def replace(self, obj: Mapping[str, Any], *, subresource: str | None = None) -> JSON:
        meta = obj["metadata"]
        return self._request("PUT", self.path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"),
                                              subresource), body=obj)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON:
        return self._request("DELETE", self.path(api_version, kind, name, namespace))

    def scale(self, api_version: str, kind: str, name: str, namespace: str) -> int:
        return int(self.get(api_version, kind, name, namespace, "scale")["spec"]["replicas"])

    def set_scale(self, api_version: str, kind: str, name: str, namespace: str, replicas: int) -> JSON:
        return self.patch(api_version, kind, name, namespace, {"spec": {"replicas": replicas}}, subresource="scale")

    def replace_scale(self, api_version: str, kind: str, name: str, namespace: str, scale: Mapping[str, Any]) -> JSON:
        """PUT a Scale (its metadata.resourceVersion, when set, is a precondition)."""
        return self._request("PUT", self.path(api_version, kind, name, namespace, "scale"), body=scale)

    def events(self, namespace: str | None = None) -> builtins.list[JSON]:
        return self.list("v1", "Event", namespace)


# --------------------------------------------------------------------------------------------
# The friendly wrapper
# --------------------------------------------------------------------------------------------

ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
GATEWAY_VERSIONS = ("v1", "v1beta1")


def install_standard_kinds(emulator: CareplaneEmulator) -> None:
    """Register the kinds careplane works with (builtins are bundled; these are CRDs)."""
    from careplane.crd import crd as scalingpolicy_crd

    emulator.register_crd(scalingpolicy_crd())
    for v in ISTIO_VERSIONS:
        emulator.register("networking.istio.io", v, "destinationrules", "DestinationRule", shortnames=["dr"])
        emulator.register("networking.istio.io", v, "virtualservices", "VirtualService", shortnames=["vs"])
    for v in GATEWAY_VERSIONS:
        emulator.register("gateway.networking.k8s.io", v, "httproutes", "HTTPRoute", subresources=["status"])
    emulator.register("argoproj.io", "v1alpha1", "rollouts", "Rollout", subresources=["scale", "status"], shortnames=["ro"])
    # kopf's peering (one active operator, others standby): its CRDs have no subresources.
    emulator.register("kopf.dev", "v1", "kopfpeerings", "KopfPeering")
    emulator.register("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False)


@dataclass
class Fault:
    """A handle on an injected fault: how many requests it answered so far."""

    hits: list[rendering.Request] = field(default_factory=list)


class EmulatedCluster:
    """A running emulated API server: a thread with its own event loop, a kubeconfig, a client.

    ``with EmulatedCluster() as cluster:`` (or ``async with``) starts it on a free
    127.0.0.1 port; ``cluster.kubeconfig_path`` points kopf / the kubernetes client
    at it; ``create/get/patch/list/delete`` talk to it over HTTP.
    """

    def __init__(self, *, port: int = 0, install_crds: bool = True, namespaces: Iterable[str] = ("default",),
                 ready_delay_seconds: float | None = 0.0, kubeconfig_path: str | Path | None = None) -> None:
        self._port = port
        self._install = install_crds
        self._namespaces = list(namespaces)
        self._ready_delay = ready_delay_seconds
        self._kubeconfig_arg = Path(kubeconfig_path) if kubeconfig_path else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.emulator = CareplaneEmulator(ready_delay_seconds=ready_delay_seconds)
        self.url = ""
        self.kubeconfig_path = Path()
        self.client: ClusterClient | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="careplane-emulator", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._startup_error is not None:
            raise RuntimeError(f"the emulator failed to start: {self._startup_error}") from self._startup_error
        if not self.url:
            raise RuntimeError("the emulator did not start within 30 s")
        if self._kubeconfig_arg is not None:
            self.kubeconfig_path = self._kubeconfig_arg
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="careplane-emulator-")
            self.kubeconfig_path = Path(self._tmp.name) / "kubeconfig"
        self.write_kubeconfig(self.kubeconfig_path)
        self.client = ClusterClient(self.url)
        if self._install:
            self.install_crds()
        for ns in self._namespaces:
            self.call(functools.partial(self.emulator._ensure_namespace, ns))
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # surfaced to start()
            self._startup_error = e
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.emulator, kmock.Server(self.emulator, port=self._port or None) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
            self.emulator.close_watches()
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.get_running_loop().run_in_executor(None, self.start)

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    # ---- helpers -----------------------------------------------------------------------

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's event loop (the store is single-threaded) and return its result."""
        assert self._loop is not None

        async def _wrapped() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(_wrapped(), self._loop).result(timeout=10)

    def write_kubeconfig(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator", "preferences": {},
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulated"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator",
                                                         "namespace": "default"}}],
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    def install_crds(self) -> None:
        """Register ScalingPolicy, Istio DestinationRule/VirtualService, HTTPRoute, Argo Rollout and kopf peerings."""
        self.call(lambda: install_standard_kinds(self.emulator))

    def register(self, group: str, version: str, plural: str, kind: str, **kwargs: Any) -> None:
        """Register any kind, e.g. a scalable CRD: ``register('x.io', 'v1', 'widgets', 'Widget', subresources=['scale'])``."""
        self.call(lambda: self.emulator.register(group, version, plural, kind, **kwargs))

    @property
    def _client(self) -> ClusterClient:
        if self.client is None:
            raise RuntimeError("the cluster is not running")
        return self.client

    def create(self, obj: Mapping[str, Any]) -> JSON:
        return self._client.create(obj)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None,
            subresource: str | None = None) -> JSON:
        return self._client.get(api_version, kind, name, namespace, subresource)

    def get_or_none(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        return self._client.get_or_none(api_version, kind, name, namespace)

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> builtins.list[JSON]:
        return self._client.list(api_version, kind, namespace, label_selector)

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, patch: Any, *,
              subresource: str | None = None, patch_type: str = "merge") -> JSON:
        return self._client.patch(api_version, kind, name, namespace, patch, subresource=subresource,
                                  patch_type=patch_type)

    def replace(self, obj: Mapping[str, Any], *, subresource: str | None = None) -> JSON:
        return self._client.replace(obj, subresource=subresource)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON:
        return self._client.delete(api_version, kind, name, namespace)

    def scale(self, api_version: str, kind: str, name: str, namespace: str) -> int:
        return self._client.scale(api_version, kind, name, namespace)

    def set_scale(self, api_version: str, kind: str, name: str, namespace: str, replicas: int) -> JSON:
        return self._client.set_scale(api_version, kind, name, namespace, replicas)

    def replace_scale(self, api_version: str, kind: str, name: str, namespace: str, scale: Mapping[str, Any]) -> JSON:
        return self._client.replace_scale(api_version, kind, name, namespace, scale)

    def events(self, namespace: str | None = None) -> builtins.list[JSON]:
        return self._client.events(namespace)

    def writes(self, plural: str, namespace: str | None, name: str) -> int:
        """How many real (state-changing) writes an object has had, creation included."""
        return int(self.call(lambda: self.emulator.writes[(plural, f"{namespace}/{name}")]))

    def requests(self, method: str | None = None, path_contains: str | None = None) -> builtins.list[rendering.Request]:
        """Requests the server received (for assertions), optionally filtered."""
        def pick() -> builtins.list[rendering.Request]:
            out = []
            for r in list(self.emulator._requests):
                m = r.method.value if isinstance(r.method, enums.method) else str(r.method)
                if method is not None and m != method.upper():
                    continue
                if path_contains is not None and path_contains not in r.url.path:
                    continue
                out.append(r)
            return out
        return builtins.list(self.call(pick))

    def inject_fault(self, *, method: str | None = None, path_contains: str | None = None,
                     status: int = 500, times: int = 1, delay_seconds: float = 0.0,
                     message: str = "injected fault", apply_first: bool = False) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` (after ``delay_seconds``) via a kmock reaction.

        ``status=0`` means no answer at all within ``delay_seconds`` followed by a 504
        (a client with a shorter timeout sees a timeout). The state is not changed,
        unless ``apply_first``: then the request is served (the write lands) and the
        client still gets the error, as when a response is lost.
        """
        fault = Fault()

        def matches(request: rendering.Request) -> bool:
            m = request.method.value if isinstance(request.method, enums.method) else str(request.method)
            return ((method is None or m == method.upper())
                    and (path_contains is None or path_contains in request.url.path)
                    and request.params.get("watch") not in ("true", "1"))

        async def respond(request: rendering.Request) -> Any:
            if len(fault.hits) >= times:
                return NotImplemented  # depleted: kmock disables the reaction and falls through to the API
            fault.hits.append(request)
            if apply_first:
                await self.emulator._serve(request)
            if delay_seconds:
                await asyncio.sleep(delay_seconds)
            code = status or 504
            reason = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
                      429: "TooManyRequests"}.get(code, "Failure")
            raise kmock.KubernetesError(status=code, reason=reason, message=message, details={})

        def register() -> None:
            # Not kmock's slicing (`[:times]`): a view slices the whole request history, past requests included.
            self.emulator[matches] << respond

        self.call(register)
        return fault

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll ``predicate`` until it returns something truthy; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    """Run an emulated cluster as its own process: ``python -m careplane.sandbox.emulator --kubeconfig PATH``."""
    parser = argparse.ArgumentParser(prog="careplane-emulator", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-delay", type=float, default=0.0, help="seconds until scaled-up replicas are ready")
    parser.add_argument("--apply", action="append", default=[], help="YAML file of objects to create (repeatable)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with EmulatedCluster(port=args.port, kubeconfig_path=args.kubeconfig, ready_delay_seconds=args.ready_delay) as cluster:
        for path in args.apply:
            for doc in yaml.safe_load_all(Path(path).read_text()):
                if doc:
                    cluster.create(doc)
        print(json.dumps({"url": cluster.url, "kubeconfig": str(cluster.kubeconfig_path)}), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
