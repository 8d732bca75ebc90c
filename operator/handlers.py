"""kopf handlers: one daemon per ScalingPolicy, plus create/update/resume/delete.

Why a daemon and not a ``@kopf.timer``: a timer's interval is fixed when it is
registered, but each policy has its own ``intervalSeconds``; and a daemon is a
long-lived coroutine per object, so the workload's models live in its memory
(rebuilt from Prometheus history when it starts, then updated incrementally)
with no local disk state. kopf gives the daemon a live view of the object, so
each tick reads the latest spec; the update handler wakes the daemon so a spec
change takes effect at once instead of after the interval.

The registry is built per operator (:func:`build_registry`), not kopf's global
one, so tests can run several operators with different shards in one process.
Shard filters are applied in every handler (``when=``), also when the API
server already filtered the watch by label selector.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from careplane import policy as model
from careplane.operator import events as ev
from careplane.operator import gc_policy
from careplane.operator import settings as cfg
from careplane.operator.ports import ClusterPort, MetricsPort
from careplane.operator.reconcile import PolicyReconciler, policy_document
from careplane.operator.telemetry import Telemetry
from careplane.validation import PolicyError, parse_policy

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 15
# Seconds of first-tick spread per running policy (capped at the interval): 1,000 policies spread
# over 15 s, a handful start at once (tests, small clusters: no startup delay to speak of).
START_SPREAD_PER_POLICY = 0.015


@dataclass
class Runtime:
    """What every handler of one operator shares (kept in kopf's memo)."""

    config: cfg.OperatorConfig
    telemetry: Telemetry
    metrics: MetricsPort
    cluster: ClusterPort
    identity: str = ""
    reconcilers: dict[str, PolicyReconciler] = field(default_factory=dict)
    wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    ticks: int = 0
    on_tick: Callable[[str, Any], None] | None = None  # test/benchmark hook: (key, TickResult)
    core: Any = None  # the decision package; None = careplane.decision (tests may pass a stand-in)
    # Model rebuilds (bulk fits at start or on a spec change) of every policy, off kopf's event loop.
    # Two threads: the GIL lets one run Python at a time anyway (numpy releases it in places), and more
    # threads would only contend with the loop for it.
    models_executor: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="careplane-models")
    )


def _key(namespace: str | None, name: str | None) -> str:
    return f"{namespace}/{name}"


def interval_of(spec: Mapping[str, Any] | None) -> float:
    """The policy's interval, sanitised: an invalid policy still gets re-checked at a sane pace."""
    try:
        value = int((spec or {}).get("intervalSeconds", DEFAULT_INTERVAL))
    except (TypeError, ValueError):
        return DEFAULT_INTERVAL
    return float(min(max(value, 5), 3600))


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until the daemon is stopped or woken (by a spec change)."""
    waiters = [asyncio.ensure_future(stopped.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        wake.clear()


def build_registry(config: cfg.OperatorConfig) -> kopf.OperatorRegistry:
    """All of careplane's handlers on a fresh registry, filtered to this operator's shard.

    The handlers find their :class:`Runtime` in kopf's memo under ``"runtime"``.
    """
    registry = kopf.OperatorRegistry()
    resource = (model.API_GROUP, model.API_VERSION, model.PLURAL)

    def in_shard(labels: Mapping[str, str], **_: Any) -> bool:
        return cfg.selector_matches(config.selector, labels)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        cfg.configure(settings, config)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime | None = memo.get("runtime")
        close = getattr(runtime.cluster, "close", None) if runtime else None
        if close is not None:
            await close()
        close = getattr(runtime.metrics, "close", None) if runtime else None
        if close is not None:
            await close()
        if runtime is not None:
            runtime.models_executor.shutdown(wait=False, cancel_futures=True)

    def check(body: kopf.Body, logger: Any) -> None:
        """Log a bad spec at once; the condition and its Warning event come from the daemon's tick
        (woken right away on updates), so each transition is reported once, not twice."""
        try:
            parse_policy(policy_document(body))
        except PolicyError as exc:
            logger.warning("invalid ScalingPolicy: %s", exc)

    @kopf.on.create(*resource, registry=registry, when=in_shard)
    @kopf.on.resume(*resource, registry=registry, when=in_shard)
    def created(body: kopf.Body, logger: Any, **_: Any) -> None:
        check(body, logger)

    @kopf.on.update(*resource, field="spec", registry=registry, when=in_shard)
    def updated(body: kopf.Body, logger: Any, memo: kopf.Memo, **_: Any) -> None:
        check(body, logger)
        runtime: Runtime = memo["runtime"]
        wake = runtime.wakeups.get(_key(body.metadata.namespace, body.metadata.name))
        if wake is not None:
            wake.set()

    @kopf.on.delete(*resource, registry=registry, when=in_shard, optional=True)
    def deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime = memo["runtime"]
        runtime.reconcilers.pop(_key(body.metadata.namespace, body.metadata.name), None)
        runtime.telemetry.forget(body.metadata.namespace or "default", body.metadata.name or "")
        gc_policy.release_frozen()

    @kopf.daemon(
        *resource,
        registry=registry,
        when=in_shard,
        cancellation_backoff=2.0,  # let a tick in flight finish or abort before actuating
        cancellation_timeout=10.0,
    )
    async def reconcile_loop(
        body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: Any, **_: Any
    ) -> None:
        runtime: Runtime = memo["runtime"]
        namespace, name = body.metadata.namespace or "default", body.metadata.name or ""
        key = _key(namespace, name)
        wake = runtime.wakeups.setdefault(key, asyncio.Event())
        reconciler = PolicyReconciler(
            namespace, name, metrics=runtime.metrics, cluster=runtime.cluster, telemetry=runtime.telemetry,
            identity=runtime.identity, should_stop=lambda: bool(stopped), core=runtime.core,
            models_executor=runtime.models_executor,
        )
        runtime.reconcilers[key] = reconciler
        # Spread the first ticks when many daemons start together (operator start, takeover): each tick then
        # sleeps one interval, so the spread lasts instead of a burst of every policy at once each interval.
        spread = min(interval_of(body.get("spec")), START_SPREAD_PER_POLICY * len(runtime.reconcilers))
        await _sleep(stopped, wake, random.uniform(0, spread))
        try:
            while not stopped:
                try:
                    result = await reconciler.tick(body)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one policy's bug must never stop the others or crash-loop
                    logger.exception("reconcile failed")
                    runtime.telemetry.record_error(namespace, name, "internal")
                    kopf.event(body, type=ev.WARNING, reason="ReconcileError",
                               message=f"{type(exc).__name__}: {exc}"[: ev.MAX_MESSAGE])
                else:
                    runtime.ticks += 1
                    ev.post(body, result.events)
                    if runtime.on_tick is not None:
                        runtime.on_tick(key, result)
                await _sleep(stopped, wake, interval_of(body.get("spec")))
        finally:
            if runtime.reconcilers.get(key) is reconciler:
                runtime.reconcilers.pop(key, None)
                # Deleted, out of this shard, or this operator paused: its figures are no longer ours to report.
                runtime.telemetry.forget(namespace, name)
            with contextlib.suppress(KeyError):
                if runtime.wakeups.get(key) is wake:
                    del runtime.wakeups[key]

    return registry
