"""Adapters from the real readers and actuators to the reconcile loop's ports.

The Prometheus reader (:mod:`careplane.operator.prometheus`), the Kubernetes
layer (:mod:`careplane.operator.kube`) and the actuators are synchronous (they
use prometheus-api-client and the ``kubernetes`` client, which block); here
each call runs in a worker thread (``asyncio.to_thread``) so one slow policy
never blocks kopf's event loop or the other policies. Their errors become the
port errors whose ``reason`` goes into the status conditions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import kubernetes
import numpy as np

from careplane import policy as model
from careplane.decision.types import Actions, CircuitBreakerSettings
from careplane.operator import ports
from careplane.operator.actuators import (
    DESTINATION_RULE_API_VERSION,
    ROUTING_API_VERSIONS,
    DestinationRuleActuator,
    ScaleActuator,
    routing_actuator,
)
from careplane.operator.kube import Kube, KubeError, NotFound, ObjectRef
from careplane.operator.prometheus import PrometheusConfig, PrometheusReader, PrometheusUnavailable, QueryFailed
from careplane.operator.promql import QueryRejected
from careplane.operator.settings import OperatorConfig

T = TypeVar("T")
POLICY_API_VERSION = f"{model.API_GROUP}/{model.API_VERSION}"
# Blocking I/O threads: enough for many policies waiting on the network at once.
IO_THREADS = 32
HPA_CACHE_SECONDS = 5.0


class _Threads:
    """A dedicated thread pool (the default one is sized for CPU work: min(32, cores + 4))."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="careplane-io")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class PrometheusMetrics:
    """:class:`ports.MetricsPort` over :class:`PrometheusReader` (namespace-confined queries)."""

    def __init__(self, reader: PrometheusReader, threads: _Threads | None = None) -> None:
        self.reader = reader
        self.threads = threads or _Threads()

    async def instant(self, namespace: str, query: str, at: float) -> float:
        try:
            # Evaluated at the server's "now": the operator's clock may be skewed from Prometheus'.
            value = await self.threads.run(self.reader.instant, query, namespace, None)
        except QueryRejected as exc:
            raise ports.QueryRejected(str(exc)) from None
        except PrometheusUnavailable as exc:
            raise ports.MetricsError(str(exc), reason="PrometheusUnavailable") from None
        except QueryFailed as exc:
            raise ports.MetricsError(str(exc), reason="QueryFailed") from None
        if value is None:
            raise ports.MetricsError(
                f"the query returned no data (empty, NaN or stale) in namespace {namespace}", reason="NoData"
            )
        return value

    async def instant_by(self, namespace: str, query: str, label: str, at: float) -> dict[str, float | None]:
        try:
            return await self.threads.run(self.reader.instant_by, query, namespace, label, None)
        except QueryRejected as exc:
            raise ports.QueryRejected(str(exc)) from None
        except (PrometheusUnavailable, QueryFailed) as exc:
            raise ports.MetricsError(str(exc)) from None

    async def history(
        self, namespace: str, query: str, start: float, end: float, step: float
    ) -> tuple[np.ndarray, np.ndarray]:
        try:
            result = await self.threads.run(self.reader.range, query, namespace, start, end, step)
        except QueryRejected as exc:
            raise ports.QueryRejected(str(exc)) from None
        except (PrometheusUnavailable, QueryFailed) as exc:
            raise ports.MetricsError(str(exc)) from None
        return result.times, result.values

    async def close(self) -> None:
        self.threads.close()


class KubeCluster:
    """:class:`ports.ClusterPort` over :class:`Kube` and the actuators."""

    def __init__(self, kube: Kube, threads: _Threads | None = None) -> None:
        self.kube = kube
        self.threads = threads or _Threads()
        self._hpa_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._hpa_locks: dict[str, asyncio.Lock] = {}
        self.scale = ScaleActuator(kube)
        self.destination_rules = DestinationRuleActuator(kube)

    @staticmethod
    def _ref(namespace: str, target: model.TargetRef) -> ObjectRef:
        return ObjectRef(target.apiVersion, target.kind, target.name, namespace)

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self.threads.run(fn, *args)
        except NotFound as exc:
            raise ports.TargetMissing(f"{what}: {exc}") from None
        except KubeError as exc:
            raise ports.ApiFailure(f"{what}: {exc}") from None

    async def get_scale(self, namespace: str, target: model.TargetRef) -> ports.Scale:
        ref = self._ref(namespace, target)
        state = await self._call(f"{target.kind} {target.name}", self.scale.current, ref)
        return ports.Scale(state.replicas, state.status_replicas, state.ready_replicas)

    async def set_scale(self, namespace: str, target: model.TargetRef, replicas: int) -> None:
        ref = self._ref(namespace, target)
        await self._call(f"{target.kind} {target.name}", self.scale.apply, ref, Actions(replicas=replicas))

    async def _hpas(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's HPAs, listed at most once per HPA_CACHE_SECONDS for all its policies.

        Why: one LIST per policy per interval is O(policies x HPAs) per namespace;
        a short shared cache makes it O(HPAs) and adds at most that much delay to
        noticing a new HPA.
        """
        now = time.monotonic()
        cached = self._hpa_cache.get(namespace)
        if cached is not None and now - cached[0] < HPA_CACHE_SECONDS:
            return cached[1]
        lock = self._hpa_locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            cached = self._hpa_cache.get(namespace)
            if cached is not None and time.monotonic() - cached[0] < HPA_CACHE_SECONDS:
                return cached[1]
            items: list[dict[str, Any]] = []
            for api_version in ("autoscaling/v2", "autoscaling/v1"):
                try:
                    items = await self.threads.run(self.kube.list, api_version, "HorizontalPodAutoscaler", namespace)
                    break
                except NotFound:
                    continue
                except KubeError as exc:
                    raise ports.ApiFailure(f"listing HorizontalPodAutoscalers: {exc}") from None
            self._hpa_cache[namespace] = (time.monotonic(), items)
            return items

    async def scaling_conflict(self, namespace: str, target: model.TargetRef) -> str | None:
        group = target.apiVersion.rpartition("/")[0]
        for hpa in await self._hpas(namespace):
            ref: Mapping[str, Any] = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            same_group = str(ref.get("apiVersion", target.apiVersion)).rpartition("/")[0] == group
            if ref.get("kind") == target.kind and ref.get("name") == target.name and same_group:
                name = hpa["metadata"]["name"]
                return f"HorizontalPodAutoscaler {name} scales {target.kind} {target.name}"
        return None

    async def set_circuit_breaker(self, namespace: str, name: str, settings: CircuitBreakerSettings) -> bool:
        ref = ObjectRef(DESTINATION_RULE_API_VERSION, "DestinationRule", name, namespace)
        try:
            result = await self.threads.run(self.destination_rules.apply, ref, Actions(circuit_breaker=settings))
        except KubeError as exc:  # NotFound included: a missing DestinationRule is an error, not a missing target
            raise ports.ApiFailure(f"DestinationRule {name}: {exc}", reason="DestinationRuleError") from None
        return result.changed

    async def set_weights(
        self, namespace: str, kind: model.RoutingKind, name: str, weights: Mapping[str, int]
    ) -> bool:
        ref = ObjectRef(ROUTING_API_VERSIONS[kind.value], kind.value, name, namespace)
        actuator = routing_actuator(kind.value, self.kube)
        try:
            result = await self.threads.run(actuator.apply, ref, Actions(weights=dict(weights)))
        except KubeError as exc:
            raise ports.ApiFailure(f"{kind.value} {name}: {exc}", reason="RoutingError") from None
        return result.changed

    async def patch_policy(
        self, namespace: str, name: str, *, status: Mapping[str, Any] | None,
        annotations: Mapping[str, str | None] | None,
    ) -> None:
        ref = ObjectRef(POLICY_API_VERSION, model.KIND, name, namespace)

        def write() -> None:
            # No resourceVersion: merge patches of careplane-owned keys cannot lose anyone's write.
            if annotations:
                self.kube.retry_write(f"annotate {ref}", lambda: self.kube.patch(
                    ref, {"metadata": {"annotations": dict(annotations)}}))
            if status:
                self.kube.retry_write(f"status of {ref}", lambda: self.kube.patch(
                    ref, {"status": dict(status)}, subresource="status"))

        try:
            await self.threads.run(write)
        except NotFound:
            return  # the policy was deleted meanwhile: nothing to report on
        except KubeError as exc:
            raise ports.ApiFailure(f"writing {ref}: {exc}") from None

    async def close(self) -> None:
        self.threads.close()


def metrics_port(config: OperatorConfig) -> PrometheusMetrics:
    reader = PrometheusReader(
        PrometheusConfig(
            url=config.prometheus_url,
            bearer_token=config.prometheus_token,
            ca_file=config.prometheus_ca,
            insecure=config.prometheus_insecure,
            timeout_seconds=config.prometheus_timeout,
        )
    )
    return PrometheusMetrics(reader)


def cluster_port(configuration: kubernetes.client.Configuration) -> KubeCluster:
    # One pooled connection per I/O thread (the client's default pool is 5 x cores).
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, IO_THREADS)
    return KubeCluster(Kube(kubernetes.client.ApiClient(configuration)))
