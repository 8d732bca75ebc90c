"""Kubernetes I/O for the actuators: a thin, retrying layer over the ``kubernetes`` client.

Why the synchronous ``kubernetes`` client and not kopf's aiohttp: it loads a
kubeconfig or the in-cluster service account with every auth flavour and TLS
option, raises typed errors with the HTTP status, and reaches any group,
version and subresource through ``CustomObjectsApi`` (which works for every
non-core group, ``apps`` included). Calls block, so the operator runs an
actuation in a worker thread (``await asyncio.to_thread(...)``; kopf runs sync
handlers in its executor anyway). The per-interval reads and status writes of
every policy do not come here: they take the thread-free path of
:mod:`careplane.operator.kube_async`. The clients are built from an explicit
config (``new_client_from_config``), never from the module-global default,
because ``kubernetes.config`` reads ``$KUBECONFIG`` once at import time.

:func:`retry_write` is the one place where a write is retried: on 409
(someone wrote in between) and 422 from a failed JSON-patch ``test`` it
re-reads and recomputes; on 429/5xx/timeouts it backs off exponentially and
re-reads too, so a write that did land before the error is seen on the next
read and not repeated (no duplicate, no lost action).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")
JSON = dict[str, Any]

# Plural names of the kinds careplane touches (no discovery round trip needed for these).
KNOWN_PLURALS: dict[tuple[str, str], str] = {
    ("apps", "Deployment"): "deployments",
    ("apps", "StatefulSet"): "statefulsets",
    ("apps", "ReplicaSet"): "replicasets",
    ("argoproj.io", "Rollout"): "rollouts",
    ("networking.istio.io", "DestinationRule"): "destinationrules",
    ("networking.istio.io", "VirtualService"): "virtualservices",
    ("gateway.networking.k8s.io", "HTTPRoute"): "httproutes",
    ("autoscaling", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("careplane.io", "ScalingPolicy"): "scalingpolicies",
}


class KubeError(Exception):
    """A Kubernetes call failed for good (after the retries), with the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeError):
    """The object (or its kind) does not exist."""


def _as_dict(value: object) -> JSON:
    if not isinstance(value, dict):
        raise KubeError(f"unexpected answer from the API server: {type(value).__name__}")
    return value


def make_api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """An ApiClient from a kubeconfig file, or from the in-cluster service account when none is given."""
    if kubeconfig:
        return k8s_config.new_client_from_config(config_file=kubeconfig, context=context, persist_config=False)
    configuration = k8s.Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


@dataclass(frozen=True)
class ObjectRef:
    """Which object: ``apiVersion`` (``group/version``), ``kind``, ``name``, ``namespace``."""

    api_version: str
    kind: str
    name: str
    namespace: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    backoff_seconds: float = 0.05
    backoff_max_seconds: float = 2.0
    request_timeout_seconds: float = 10.0


def _retryable(e: Exception) -> bool:
    if isinstance(e, ApiException):
        return e.status in (409, 422, 429) or (e.status is not None and e.status >= 500)
    return isinstance(e, urllib3.exceptions.HTTPError | TimeoutError | ConnectionError)


class Kube:
    """Generic get/list/patch of namespaced objects of any non-core group, with retries on transient errors."""

    def __init__(self, api_client: k8s.ApiClient, *, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api_client = api_client
        self.custom = k8s.CustomObjectsApi(api_client)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._plurals: dict[tuple[str, str, str], str] = {}
        self.write_attempts = 0  # PATCH calls sent (for tests and telemetry)

    # ---- discovery ----------------------------------------------------------------------

    def plural(self, api_version: str, kind: str) -> str:
        group, _, version = api_version.rpartition("/")
        if not group:
            raise KubeError(f"core-group kind {kind} is not supported here (careplane acts on non-core kinds)")
        if (group, kind) in KNOWN_PLURALS:
            return KNOWN_PLURALS[(group, kind)]
        key = (group, version, kind)
        if key not in self._plurals:
            resources = self._with_retries(f"discover {api_version}", lambda: self.custom.get_api_resources(
                group, version, _request_timeout=self.retry.request_timeout_seconds))
            for res in resources.resources or []:
                if "/" not in res.name:
                    self._plurals[(group, version, res.kind)] = res.name
        if key not in self._plurals:
            raise NotFound(f"kind {kind} is not served in {api_version}", 404)
        return self._plurals[key]

    # ---- calls --------------------------------------------------------------------------

    def _with_retries(self, what: str, fn: Callable[[], T], *, retry_conflicts: bool = False) -> T:
        delay = self.retry.backoff_seconds
        last: Exception | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                self._sleep(min(delay, self.retry.backoff_max_seconds))
                delay *= 2
            try:
                return fn()
            except ApiException as e:
                if e.status == 404:
                    raise NotFound(f"{what}: not found", 404) from None
                if not _retryable(e) or (e.status in (409, 422) and not retry_conflicts):
                    raise KubeError(f"{what}: HTTP {e.status} {e.reason}", e.status) from None
                last = e
            except Exception as e:
                if not _retryable(e):
                    raise
                last = e
        status = last.status if isinstance(last, ApiException) else None
        raise KubeError(f"{what}: gave up after {self.retry.attempts} attempts: {last}", status)

    def get(self, ref: ObjectRef, subresource: str | None = None) -> JSON:
        plural = self.plural(ref.api_version, ref.kind)
        t = self.retry.request_timeout_seconds
        if subresource == "scale":
            fn: Callable[[], Any] = lambda: self.custom.get_namespaced_custom_object_scale(  # noqa: E731
                ref.group, ref.version, ref.namespace, plural, ref.name, _request_timeout=t)
        elif subresource == "status":
            fn = lambda: self.custom.get_namespaced_custom_object_status(  # noqa: E731
                ref.group, ref.version, ref.namespace, plural, ref.name, _request_timeout=t)
        else:
            fn = lambda: self.custom.get_namespaced_custom_object(  # noqa: E731
                ref.group, ref.version, ref.namespace, plural, ref.name, _request_timeout=t)
        return _as_dict(self._with_retries(f"get {ref}", fn))

    def get_or_none(self, ref: ObjectRef, subresource: str | None = None) -> JSON | None:
        try:
            return self.get(ref, subresource)
        except NotFound:
            return None

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str | None = None) -> list[JSON]:
        group, _, version = api_version.rpartition("/")
        plural = self.plural(api_version, kind)
        kwargs: dict[str, Any] = {"_request_timeout": self.retry.request_timeout_seconds}
        if label_selector:
            kwargs["label_selector"] = label_selector
        result = self._with_retries(f"list {kind} in {namespace}", lambda: self.custom.list_namespaced_custom_object(
            group, version, namespace, plural, **kwargs))
        return list(_as_dict(result).get("items", []))

    def patch(self, ref: ObjectRef, body: Any, *, patch_type: str = "merge", subresource: str | None = None) -> JSON:
        """One PATCH (no retry: the caller's :func:`retry_write` loop re-reads and recomputes)."""
        plural = self.plural(ref.api_version, ref.kind)
        ctype = {"merge": "application/merge-patch+json", "json": "application/json-patch+json"}[patch_type]
        t = self.retry.request_timeout_seconds
        self.write_attempts += 1
        if subresource == "scale":
            return _as_dict(self.custom.patch_namespaced_custom_object_scale(
                ref.group, ref.version, ref.namespace, plural, ref.name, body, _content_type=ctype, _request_timeout=t))
        if subresource == "status":
            return _as_dict(self.custom.patch_namespaced_custom_object_status(
                ref.group, ref.version, ref.namespace, plural, ref.name, body, _content_type=ctype, _request_timeout=t))
        return _as_dict(self.custom.patch_namespaced_custom_object(
            ref.group, ref.version, ref.namespace, plural, ref.name, body, _content_type=ctype, _request_timeout=t))

    def retry_write(self, what: str, step: Callable[[], T]) -> T:
        """Run read-compute-write ``step`` until it succeeds; re-run it from the read on conflicts and transient errors."""
        return self._with_retries(what, step, retry_conflicts=True)


def find_hpa_conflict(kube: Kube, target: ObjectRef) -> str | None:
    """The name of a HorizontalPodAutoscaler that scales ``target`` (then careplane must not), else None."""
    for api_version in ("autoscaling/v2", "autoscaling/v1"):
        try:
            hpas = kube.list(api_version, "HorizontalPodAutoscaler", target.namespace)
        except NotFound:
            continue
        for hpa in hpas:
            ref: Mapping[str, Any] = hpa.get("spec", {}).get("scaleTargetRef", {})
            same_group = ref.get("apiVersion", target.api_version).rpartition("/")[0] == target.group
            if ref.get("kind") == target.kind and ref.get("name") == target.name and same_group:
                return str(hpa["metadata"]["name"])
        return None
    return None
