"""Adapters from the real readers and actuators to the reconcile loop's ports.

Two paths, chosen by how often they run:

* every interval of every policy (instant queries, the target's /scale, the
  policy's status and annotations): async, on shared aiohttp sessions
  (:mod:`careplane.operator.prometheus_async`, :mod:`careplane.operator.kube_async`),
  so a thousand policies need no thread per call;
* rarely (model rebuilds from range queries, HPA listing every few seconds
  per namespace, actuator writes when a decision changes something): the
  synchronous prometheus-api-client and ``kubernetes`` client in a worker
  thread, so one slow call never blocks kopf's event loop.

Their errors become the port errors whose ``reason`` goes into the status conditions.
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
from careplane.operator.kube_async import AsyncKube
from careplane.operator.prometheus import PrometheusConfig, PrometheusReader, PrometheusUnavailable, QueryFailed
from careplane.operator.prometheus_async import AsyncPrometheusReader, PrometheusTimeout
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
    """:class:`ports.MetricsPort`: instant queries async, range queries (rebuilds) with :class:`PrometheusReader`.

    Both readers confine every query to the policy's namespace; the async one is
    built from the same :class:`PrometheusConfig` (URL, token, TLS, timeout, retries).
    """

    def __init__(self, reader: PrometheusReader, threads: _Threads | None = None,
                 live: AsyncPrometheusReader | None = None) -> None:
        self.reader = reader
        self.live = live or AsyncPrometheusReader(reader.config)
        self.threads = threads or _Threads()

    async def instant(self, namespace: str, query: str, at: float) -> float:
        try:
            # Evaluated at the server's "now": the operator's clock may be skewed from Prometheus'.
            value = await self.live.instant(query, namespace)
        except QueryRejected as exc:
            raise ports.QueryRejected(str(exc)) from None
        except PrometheusTimeout as exc:
            raise ports.MetricsError(str(exc), reason="PrometheusTimeout") from None
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
            return await self.live.instant_by(query, namespace, label)
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
        await self.live.close()
        self.threads.close()


class KubeCluster:
    """:class:`ports.ClusterPort` over :class:`Kube` and the actuators."""

    def __init__(self, kube: Kube, threads: _Threads | None = None, live: AsyncKube | None = None) -> None:
        self.kube = kube
        self.live = live or AsyncKube(kube.api_client.configuration, plurals=kube)
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
        """The /scale subresource and the object's readyReplicas, read concurrently (async path).

        Same reading as :meth:`ScaleActuator.current`: a kind whose object cannot be
        read (RBAC grants only /scale) still scales, with ready replicas unknown.
        """
        ref = self._ref(namespace, target)
        what = f"{target.kind} {target.name}"
        scale_r, obj_r = await asyncio.gather(self.live.get(ref, "scale"), self.live.get(ref),
                                              return_exceptions=True)
        if isinstance(scale_r, NotFound):
            raise ports.TargetMissing(f"{what}: {scale_r}") from None
        if isinstance(scale_r, KubeError):
            raise ports.ApiFailure(f"{what}: {scale_r}") from None
        if isinstance(scale_r, BaseException):
            raise scale_r
        if isinstance(obj_r, BaseException) and not isinstance(obj_r, KubeError):
            raise obj_r
        obj_status = (obj_r.get("status") or {}) if isinstance(obj_r, dict) else {}
        ready = obj_status.get("readyReplicas")
        status = scale_r.get("status") or {}
        return ports.Scale(
            int((scale_r.get("spec") or {}).get("replicas", 0)),
            int(status["replicas"]) if status.get("replicas") is not None else None,
            int(ready) if ready is not None else (0 if obj_status else None),
        )

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
        try:
            # No resourceVersion: merge patches of careplane-owned keys cannot lose anyone's write.
            if annotations:
                await self.live.merge_patch(ref, {"metadata": {"annotations": dict(annotations)}})
            if status:
                await self.live.merge_patch(ref, {"status": dict(status)}, subresource="status")
        except NotFound:
            return  # the policy was deleted meanwhile: nothing to report on
        except KubeError as exc:
            raise ports.ApiFailure(f"writing {ref}: {exc}") from None

    async def close(self) -> None:
        await self.live.close()
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
