"""One ScalingPolicy's reconcile: measure, model, decide, act, report.

The imperative shell around ``decide()``: everything that talks to the world
goes through :mod:`careplane.operator.ports`, so this module is the same code
in the operator, the benchmark and the unit tests (with fakes).

Order of one :meth:`PolicyReconciler.tick`, each step an OpenTelemetry span:

1. parse the policy (``parse_policy``; an invalid one gets ``Ready=False
   InvalidPolicy`` and an event, and nothing else happens);
2. ``query``: the target's /scale, a competing HPA, the demand and SLO queries;
3. ``forecast`` / ``detect``: the workload's models learn the new sample and
   summarise (models are rebuilt from ``historySeconds`` of Prometheus history
   when the tick first runs or the model-relevant spec changes, otherwise
   updated incrementally: no refit per interval);
4. ``decide``: the pure core, with the DecisionState loaded from the
   ``careplane.io/decision-state`` annotation on the first tick, so a restarted
   operator continues where the last one stopped;
5. ``actuate``: only in Active mode, only what differs from what is there, and
   never the replicas while another controller (an HPA) scales the target;
6. status (merge patch of what changed; when only figures such as demand
   moved, at most once a minute: see :func:`careplane.operator.status.significant`),
   state annotation, events, metrics.

Idempotence is what makes a restart mid-reconcile harmless: actuators write
absolute values and only when they differ, so replaying a tick whose state was
not saved yet gives the same outcome and no duplicate action.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from careplane.decision.types import Actions, Observations
from careplane.operator import events as ev
from careplane.operator import gc_policy, promql
from careplane.operator import status as st
from careplane.operator.ports import ClusterPort, MetricsError, MetricsPort, PortError, Scale, TargetMissing
from careplane.operator.settings import RECONCILED_BY_ANNOTATION, STATE_ANNOTATION
from careplane.operator.telemetry import Telemetry
from careplane.policy import Mode, ScalingPolicy, ScalingPolicySpec
from careplane.validation import PolicyError, parse_policy

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TickResult:
    """What one tick did (for logs, tests and the benchmark)."""

    outcome: st.Outcome
    changed: Actions = field(default_factory=Actions)
    status_patch: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[ev.Event, ...] = ()
    seconds: float = 0.0
    aborted: bool = False  # stopped before actuating (the operator is pausing or exiting)


def policy_document(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a ScalingPolicy object that ``parse_policy`` validates (no status, no server fields)."""
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace") or "default"},
        "spec": body.get("spec"),
    }


def models_key(spec: ScalingPolicySpec) -> str:
    """Fingerprint of what the models depend on: when it changes, models are rebuilt from history."""
    relevant = {
        "query": spec.demand.query,
        "interval": spec.intervalSeconds,
        "forecast": spec.forecast.model_dump(mode="json"),
        "anomaly": spec.anomaly.model_dump(mode="json"),
        "slo": spec.slo.model_dump(mode="json") if spec.slo else None,
        "startup": spec.demand.podStartupSeconds,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def state_signature(document: Mapping[str, Any]) -> str:
    """The decision state without what merely ages (timestamps, repeats of the same recommendation).

    Why: writing the state annotation every interval would double the API
    writes and the watch events kopf processes. A change of this signature is
    written at once; a state that only aged is written at least every
    :func:`state_refresh_seconds`, so a restarted operator's stabilisation
    window is off by at most that much.
    """
    recs = [r for _, r in document.get("recommendations") or []]
    reduced = {k: v for k, v in document.items() if k not in ("recommendations", "lastDecisionTime")}
    reduced["recommendationValues"] = sorted(set(recs))
    reduced["metricsMissing"] = document.get("metricsMissingSince") is not None
    reduced.pop("metricsMissingSince", None)
    return json.dumps(reduced, sort_keys=True)


def state_refresh_seconds(spec: ScalingPolicySpec | None) -> float:
    """At most a quarter of the stabilisation window (and at most a minute) between state writes."""
    if spec is None:
        return 60.0
    return max(float(spec.intervalSeconds), min(60.0, spec.replicas.scaleDownStabilizationSeconds / 4))


class PolicyReconciler:
    """Long-lived per-policy reconciler: owns the workload's models and decision state in memory."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        metrics: MetricsPort,
        cluster: ClusterPort,
        telemetry: Telemetry,
        identity: str = "",
        clock: Callable[[], float] = time.time,
        should_stop: Callable[[], bool] = lambda: False,
        core: Any = None,
        models_executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.models_executor = models_executor
        self.metrics, self.cluster, self.telemetry = metrics, cluster, telemetry
        self.identity, self.clock, self.should_stop = identity, clock, should_stop
        self.models: Any = None
        self.models_key: str | None = None
        self.state: Any = None
        self.saved_state: str | None = None
        self.saved_signature: str | None = None
        self.saved_at = float("-inf")
        self.status_written_at = float("-inf")
        self._core_module = core
        self._parsed_key: str | None = None
        self._parsed: ScalingPolicy | PolicyError | None = None

    # --- the decision core: ``decide``, ``DecisionState`` and ``WorkloadModels`` ---------------
    def _core(self) -> Any:
        """The decision package (imported lazily: its models are heavy); tests pass a stand-in."""
        if self._core_module is None:
            from careplane.decision import DecisionState, decide
            from careplane.decision.models import WorkloadModels

            self._core_module = SimpleNamespace(decide=decide, DecisionState=DecisionState,
                                                WorkloadModels=WorkloadModels)
        return self._core_module

    # --- steps -------------------------------------------------------------------------------
    def _parse(self, body: Mapping[str, Any]) -> ScalingPolicy:
        """``parse_policy`` once per distinct spec: full schema + CEL validation costs ~10 ms,
        which would otherwise be most of a reconcile's CPU at a thousand policies."""
        document = policy_document(body)
        key = json.dumps(document, sort_keys=True, default=str)
        if key != self._parsed_key:
            try:
                self._parsed = parse_policy(document)
            except PolicyError as exc:
                self._parsed = exc
            self._parsed_key = key
        if isinstance(self._parsed, PolicyError):
            raise PolicyError(self._parsed.problems)  # a fresh one: re-raising would grow its traceback
        assert self._parsed is not None
        return self._parsed

    def _load_state(self, body: Mapping[str, Any]) -> Any:
        core = self._core()
        raw = ((body.get("metadata") or {}).get("annotations") or {}).get(STATE_ANNOTATION)
        if raw:
            try:
                self.saved_state = raw
                return core.DecisionState.from_dict(json.loads(raw))
            except (ValueError, TypeError, KeyError) as exc:  # a hand-edited or old annotation: start fresh
                log.warning("%s/%s: ignoring unreadable decision state: %s", self.namespace, self.name, exc)
        return core.DecisionState()

    async def _rebuild_models(self, spec: ScalingPolicySpec, now: float) -> None:
        core = self._core()
        step = float(spec.intervalSeconds)
        history = float(spec.forecast.historySeconds)
        # On the models' own grid (the reader splits long ranges under Prometheus' point limit). A reading
        # that is a rate over a window shows a jump over that window: the models extrapolate a rise over it.
        window = promql.range_seconds(spec.demand.query, self.namespace) or 0.0
        models = core.WorkloadModels(spec, step_seconds=step, reading_window_seconds=window)
        try:
            times, values = await self.metrics.history(
                self.namespace, spec.demand.query, now - history, now - spec.intervalSeconds, step
            )
            # In a worker thread: a bulk fit must not stall kopf's event loop and the other policies.
            await self._compute(models.rebuild, times, values)
            gc_policy.freeze_long_lived()
        except MetricsError as exc:  # no history yet is normal for a new workload: learn online from now on
            log.info("%s/%s: no history to rebuild models from: %s", self.namespace, self.name, exc)
        self.models, self.models_key = models, models_key(spec)

    async def _compute(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Bulk model work (a rebuild: ~0.1 s of CPU) off the event loop, in ``models_executor``
        (the loop's default one when None)."""
        return await asyncio.get_running_loop().run_in_executor(self.models_executor, fn, *args)

    async def _optional(self, query: str | None, now: float) -> float | None:
        if not query:
            return None
        try:
            return await self.metrics.instant(self.namespace, query, now)
        except MetricsError:
            return None

    async def _backend_errors(self, spec: ScalingPolicySpec, now: float) -> dict[str, float | None]:
        """Per-backend error ratios for routing; unknown (empty) when not configured or not readable."""
        routing = spec.routing
        if routing is None or not routing.backendErrorRateQuery:
            return {}
        try:
            by_backend = await self.metrics.instant_by(self.namespace, routing.backendErrorRateQuery, "backend", now)
        except MetricsError:
            return {}
        return {b.name: by_backend.get(b.name) for b in routing.backends}

    # --- one tick ---------------------------------------------------------------------------
    async def tick(self, body: Mapping[str, Any]) -> TickResult:
        started = time.perf_counter()
        now = self.clock()
        meta = body.get("metadata") or {}
        generation = meta.get("generation")
        previous_status = body.get("status") or {}
        with self.telemetry.reconcile_span(self.namespace, self.name) as root:
            try:
                policy = self._parse(body)
            except PolicyError as exc:
                outcome = st.Outcome(mode=str((body.get("spec") or {}).get("mode", "?")), generation=generation,
                                     invalid=str(exc))
                self.telemetry.record_error(self.namespace, self.name, "policy")
                root.set_attribute("careplane.invalid", True)
                return await self._report(body, previous_status, outcome, Actions(), now, started)

            spec = policy.spec
            root.set_attribute("careplane.mode", spec.mode.value)
            if spec.mode == Mode.PAUSED:
                outcome = st.Outcome(mode=spec.mode.value, generation=generation)
                return await self._report(body, previous_status, outcome, Actions(), now, started, keep=True)

            if self.state is None:
                self.state = self._load_state(body)

            # 1. query: the target, a competing HPA and the metrics, concurrently (each is a round trip)
            with self.telemetry.step("query") as span:
                scale_r, other_r, demand_r, latency, errors, backend_errors = await asyncio.gather(
                    self.cluster.get_scale(self.namespace, spec.targetRef),
                    self.cluster.scaling_conflict(self.namespace, spec.targetRef),
                    self._demand(spec, now),
                    self._optional(spec.slo.latencyQuery if spec.slo else None, now),
                    self._optional(spec.slo.errorRateQuery if spec.slo else None, now),
                    self._backend_errors(spec, now),
                    return_exceptions=True,
                )
                if isinstance(scale_r, TargetMissing):
                    outcome = st.Outcome(mode=spec.mode.value, generation=generation,
                                         target=st.Check(False, scale_r.reason, scale_r.message))
                    self.telemetry.record_error(self.namespace, self.name, scale_r.kind)
                    return await self._report(body, previous_status, outcome, Actions(), now, started)
                for result in (scale_r, other_r, demand_r, latency, errors, backend_errors):
                    if isinstance(result, PortError):
                        return await self._failed(body, previous_status, spec, generation, result, now, started)
                    if isinstance(result, BaseException):
                        raise result
                assert isinstance(scale_r, Scale) and not isinstance(demand_r, BaseException)
                scale, (metrics_check, demand) = scale_r, demand_r
                other = other_r if isinstance(other_r, str) else None
                latency = latency if isinstance(latency, float) else None
                errors = errors if isinstance(errors, float) else None
                backend_errors = backend_errors if isinstance(backend_errors, dict) else {}
                target = st.Check(True, "Found", f"{spec.targetRef.kind} {spec.targetRef.name} has "
                                  f"{scale.spec_replicas} replicas")
                conflict = (st.Check(True, "HorizontalPodAutoscaler", f"{other}; careplane does not scale it")
                            if other else st.Check(False, "NoConflict", "no other controller scales the target"))
                span.set_attribute("careplane.demand", demand if demand is not None else -1.0)

            raw = Observations(
                demand=demand,
                current_replicas=scale.spec_replicas,
                ready_replicas=scale.ready_replicas if scale.ready_replicas is not None else scale.status_replicas,
                latency_seconds=latency,
                error_rate=errors,
                backend_error_rates=backend_errors,
            )
            # 2. forecast + detect
            if self.models is None or self.models_key != models_key(spec):
                with self.telemetry.step("forecast", rebuild=True):
                    await self._rebuild_models(spec, now)
            with self.telemetry.step("forecast"):
                # On the loop: an update costs ~1 ms of CPU. Measured (benchmarks/operator.py, 1,000
                # policies), handing every update to a worker thread queued them behind each other and
                # behind the loop's hold on the GIL: p99 of this step 17 s, against 0.05 s inline. The
                # rare refit (~50 ms, once an hour per policy) stalls the loop briefly; HTTP timeouts
                # count server silence, not loop stalls (kube_async.request_timeout), so nothing fails.
                observations = self.models.observe(now, raw)
            with self.telemetry.step("detect") as span:
                if observations.anomaly is not None:
                    span.set_attribute("careplane.anomaly_score", observations.anomaly.score)
                    span.set_attribute("careplane.anomaly_active", observations.anomaly.active)

            # 3. decide
            with self.telemetry.step("decide") as span:
                actions, new_state, explanation = self._core().decide(spec, observations, self.state, now)
                span.set_attribute("careplane.reason", explanation.reason)

            desired = st.desired_replicas(explanation, actions, scale.spec_replicas)
            outcome = st.Outcome(
                mode=spec.mode.value, generation=generation, target=target, metrics=metrics_check,
                conflict=conflict, observations=observations, explanation=explanation, actions=actions,
                desired_replicas=desired,
            )
            # 4. actuate
            if self.should_stop():
                return TickResult(outcome=outcome, aborted=True, seconds=time.perf_counter() - started)
            with self.telemetry.step("actuate"):
                try:
                    changed = await self._actuate(policy, actions, scale, conflicted=bool(other))
                except PortError as exc:
                    self.telemetry.record_error(self.namespace, self.name, exc.kind)
                    outcome = replace(outcome, error=f"{exc.reason}: {exc.message}")
                    changed = Actions()
            self.state = new_state
            return await self._report(body, previous_status, outcome, changed, now, started, policy=policy,
                                      before_replicas=scale.spec_replicas)

    async def _demand(self, spec: ScalingPolicySpec, now: float) -> tuple[st.Check, float | None]:
        try:
            value = await self.metrics.instant(self.namespace, spec.demand.query, now)
        except MetricsError as exc:
            self.telemetry.record_error(self.namespace, self.name, exc.kind)
            return st.Check(False, exc.reason, exc.message), None
        return st.Check(True, "QuerySucceeded", f"demand {value:.4g} requests/s"), value

    async def _actuate(self, policy: ScalingPolicy, actions: Actions, scale: Scale, *, conflicted: bool) -> Actions:
        """Apply what differs, in Active mode only; returns what was actually changed."""
        spec = policy.spec
        if spec.mode != Mode.ACTIVE:
            return Actions()
        replicas = None
        if actions.replicas is not None and not conflicted and actions.replicas != scale.spec_replicas:
            await self.cluster.set_scale(self.namespace, spec.targetRef, actions.replicas)
            replicas = actions.replicas
        breaker = None
        if actions.circuit_breaker is not None and spec.circuitBreaker is not None and await self.cluster.set_circuit_breaker(
            self.namespace, spec.circuitBreaker.destinationRule, actions.circuit_breaker
        ):
            breaker = actions.circuit_breaker
        weights = None
        if actions.weights is not None and spec.routing is not None and await self.cluster.set_weights(
            self.namespace, spec.routing.kind, spec.routing.name, actions.weights
        ):
            weights = dict(actions.weights)
        return Actions(replicas=replicas, circuit_breaker=breaker, weights=weights)

    async def _failed(
        self, body: Mapping[str, Any], previous: Mapping[str, Any], spec: ScalingPolicySpec, generation: int | None,
        exc: PortError, now: float, started: float,
    ) -> TickResult:
        self.telemetry.record_error(self.namespace, self.name, exc.kind)
        outcome = st.Outcome(mode=spec.mode.value, generation=generation, error=f"{exc.reason}: {exc.message}")
        return await self._report(body, previous, outcome, Actions(), now, started)

    async def _report(
        self,
        body: Mapping[str, Any],
        previous: Mapping[str, Any],
        outcome: st.Outcome,
        changed: Actions,
        now: float,
        started: float,
        *,
        keep: bool = False,
        policy: ScalingPolicy | None = None,
        before_replicas: int | None = None,
    ) -> TickResult:
        """Write status (only what changed), the decision state, events and metrics."""
        new_status = st.build_status(previous, outcome, now)
        if keep or outcome.observations is None:
            # Paused / invalid / target missing: keep the last figures, replace only what we know.
            new_status = {**{k: v for k, v in previous.items() if k != "conditions"}, **new_status}
        patch = st.merge_patch(previous, new_status)
        refresh = st.figures_refresh_seconds(policy.spec.intervalSeconds if policy else 0.0)
        if patch and st.significant(new_status) == st.significant(previous) and now - self.status_written_at < refresh:
            patch = {}  # only figures moved, and they were written recently (see status.significant)
        annotations: dict[str, str | None] = {}
        if self.state is not None and outcome.explanation is not None:
            document = self.state.to_dict()
            saved = json.dumps(document, sort_keys=True, separators=(",", ":"))
            signature = state_signature(document)
            refresh = state_refresh_seconds(policy.spec if policy else None)
            if saved != self.saved_state and (signature != self.saved_signature or now - self.saved_at >= refresh):
                annotations[STATE_ANNOTATION] = saved
                self.saved_state, self.saved_signature, self.saved_at = saved, signature, now
        current_owner = ((body.get("metadata") or {}).get("annotations") or {}).get(RECONCILED_BY_ANNOTATION)
        if self.identity and current_owner != self.identity:
            annotations[RECONCILED_BY_ANNOTATION] = self.identity
        try:
            if patch or annotations:
                with self.telemetry.step("status"):
                    await self.cluster.patch_policy(
                        self.namespace, self.name, status=patch or None, annotations=annotations or None
                    )
                if patch:
                    self.status_written_at = now
        except PortError as exc:  # status is retried next tick; a lost status write loses no action
            self.telemetry.record_error(self.namespace, self.name, exc.kind)
            self.saved_state = self.saved_signature = None
            self.status_written_at = float("-inf")
            log.warning("%s/%s: status not written: %s", self.namespace, self.name, exc)

        out_events: list[ev.Event] = []
        first = not previous.get("conditions")
        for cond in st.transitions(previous.get("conditions"), new_status.get("conditions", [])):
            event = ev.condition_changed(cond)
            if not first or event.type == ev.WARNING:  # a first, all-good status is not news
                out_events.append(event)
        if policy is not None and outcome.explanation is not None:
            spec = policy.spec
            out_events += ev.for_actions(
                changed, outcome.explanation, target_kind=spec.targetRef.kind, target_name=spec.targetRef.name,
                before_replicas=before_replicas,
                destination_rule=spec.circuitBreaker.destinationRule if spec.circuitBreaker else None,
                route_kind=spec.routing.kind.value if spec.routing else None,
                route_name=spec.routing.name if spec.routing else None,
            )
            if spec.mode == Mode.FORECAST_ONLY and outcome.desired_replicas != previous.get("desiredReplicas"):
                out_events.append(ev.recommended(outcome.desired_replicas, outcome.explanation))
        seconds = time.perf_counter() - started
        self.telemetry.record_reconcile(
            self.namespace, self.name, seconds, outcome.observations, outcome.actions, changed, outcome.desired_replicas
        )
        return TickResult(outcome=outcome, changed=changed, status_patch=patch, events=tuple(out_events),
                          seconds=seconds)

