"""What a drill or the demo leaves behind: an SLO summary, reaction times, PNG plots and one HTML page.

Everything is read back from Prometheus (what an SRE would look at) over the
drill's window, plus the orchestrator's samples of the cluster when there are
some (ground truth for replicas, DestinationRules and weights). Missing
series are shown as gaps and reported as "n/a", never as zero.

SLO compliance is counted per minute, as SLO dashboards usually do: a minute
complies when its p95 latency is within the policy's target and its error
ratio within the policy's maximum (either check is skipped when the policy
does not declare it; a minute without traffic is not scored).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from careplane.operator.prometheus import PrometheusConfig, PrometheusReader, QueryFailed
from careplane.policy import ScalingPolicy

Series = tuple[dict[str, str], np.ndarray, np.ndarray]  # labels, times, values


class PromReader:
    """The few range reads a report needs, over the operator's reader in its unconfined mode.

    A thin wrapper, not a second client: retries, bearer token and TLS options
    are those of :class:`careplane.operator.prometheus.PrometheusReader`. Reports
    read the whole sandbox (every namespace, the sandbox's own series), so the
    reader is built with :meth:`PrometheusReader.unconfined`; the operator's
    per-policy reads stay confined to each policy's namespace.
    """

    def __init__(self, url: str, timeout: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.reader = PrometheusReader.unconfined(PrometheusConfig(url=self.url, timeout_seconds=timeout, retries=1))

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """Every series of the query as (labels, timestamps, values); a refused query raises ValueError."""
        try:
            return self.reader.range_series(query, None, start, end, step)
        except QueryFailed as exc:
            raise ValueError(f"query failed: {query}: {exc}") from None

    def one(self, query: str, start: float, end: float, step: float) -> tuple[np.ndarray, np.ndarray]:
        """A single series on the full grid (NaN where missing): the sum of what came back."""
        grid = np.arange(start, end + 1e-9, step)
        values = np.full(grid.size, np.nan)
        for _labels, ts, vs in self.range(query, start, end, step):
            idx = np.round((ts - start) / step).astype(int)
            ok = (idx >= 0) & (idx < grid.size)
            values[idx[ok]] = np.where(np.isnan(values[idx[ok]]), 0.0, values[idx[ok]]) + vs[ok]
        return grid, values

    def by_label(self, query: str, label: str, start: float, end: float, step: float) -> dict[str, np.ndarray]:
        grid = np.arange(start, end + 1e-9, step)
        out: dict[str, np.ndarray] = {}
        for labels, ts, vs in self.range(query, start, end, step):
            key = labels.get(label, "?")
            arr = out.setdefault(key, np.full(grid.size, np.nan))
            idx = np.round((ts - start) / step).astype(int)
            ok = (idx >= 0) & (idx < grid.size)
            arr[idx[ok]] = vs[ok]
        return out


def latency_query(policy: ScalingPolicy) -> str:
    if policy.spec.slo and policy.spec.slo.latencyQuery:
        return policy.spec.slo.latencyQuery
    svc = policy.spec.targetRef.name
    return f'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{service="{svc}"}}[1m])))'


def error_query(policy: ScalingPolicy) -> str:
    if policy.spec.slo and policy.spec.slo.errorRateQuery:
        return policy.spec.slo.errorRateQuery
    svc = policy.spec.targetRef.name
    return (f'sum(rate(http_requests_total{{service="{svc}",code=~"5.."}}[1m])) / '
            f'sum(rate(http_requests_total{{service="{svc}"}}[1m]))')


@dataclass
class PhaseSLO:
    minutes: int = 0  # scored minutes
    compliant: int = 0  # minutes within every SLO the policy declares (latency and errors)
    requests: float | None = None
    failed: float | None = None
    # minutes scored against the latency SLO alone (the drills' target: p95 within SLO), and those within it;
    # a drill's injected faults break the error SLO on purpose, and a policy without a latency SLO scores none
    latency_minutes: int = 0
    latency_compliant: int = 0

    @property
    def compliance(self) -> float | None:
        return self.compliant / self.minutes if self.minutes else None


@dataclass
class Reaction:
    """Surge onset -> scale decision -> capacity ready, in seconds relative to the onset (negative = ahead)."""

    workload: str
    onset: float
    required_replicas: int
    decision_seconds: float | None
    ready_seconds: float | None
    recurring: bool
    anomalous: bool
    max_replicas_during: int | None
    interval_seconds: int
    passed: bool | None


@dataclass
class WorkloadSummary:
    workload: str
    namespace: str
    criticality: str
    latency_target: float | None
    max_error_rate: float | None
    phases: dict[str, PhaseSLO] = field(default_factory=dict)
    replicas_min: int | None = None
    replicas_max: int | None = None
    p95_max: float | None = None
    error_rate_max: float | None = None


def _nanmax(a: np.ndarray) -> float | None:
    return None if a.size == 0 or np.all(np.isnan(a)) else float(np.nanmax(a))


def _phase_of(t: float, windows: Sequence[tuple[float, float]]) -> str:
    if not windows:
        return "during"
    if t < min(a for a, _ in windows):
        return "before"
    if any(a <= t < b for a, b in windows):
        return "during"
    return "after"  # after (or between) disturbances: normal operation again


def slo_summary(prom: PromReader, policy: ScalingPolicy, start: float, end: float,
                windows: Sequence[tuple[float, float]]) -> WorkloadSummary:
    """Per-minute SLO compliance before / during / after the surge windows, and request counts."""
    slo = policy.spec.slo
    svc = policy.spec.targetRef.name
    out = WorkloadSummary(svc, policy.metadata.namespace or "default", policy.spec.criticality.value,
                          slo.latencyTargetSeconds if slo else None, slo.maxErrorRate if slo else None)
    step = 60.0
    first = start + step  # the first full minute
    if end - start < step:
        step = max(5.0, end - start)
        first = start + step
    lat_q = (f'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket'
             f'{{service="{svc}"}}[{int(step)}s])))')
    err_q = (f'sum(rate(http_requests_total{{service="{svc}",code=~"5.."}}[{int(step)}s])) / '
             f'sum(rate(http_requests_total{{service="{svc}"}}[{int(step)}s]))')
    if svc == "vitals-ingestion" or (slo and slo.errorRateQuery and "vitals" in slo.errorRateQuery):
        err_q = (f'sum(rate(vitals_messages_failed_total{{service="{svc}"}}[{int(step)}s])) / '
                 f'sum(rate(vitals_messages_total{{service="{svc}"}}[{int(step)}s]))')
    grid, lat = prom.one(lat_q, first, end, step)
    _, err = prom.one(err_q, first, end, step)
    _, reqs = prom.one(f'sum(increase(http_requests_total{{service="{svc}"}}[{int(step)}s]))', first, end, step)
    _, fails = prom.one(f'sum(increase(http_requests_total{{service="{svc}",code=~"5.."}}[{int(step)}s]))',
                        first, end, step)
    for i, t in enumerate(grid):
        phase = out.phases.setdefault(_phase_of(t - step / 2, windows), PhaseSLO())
        if not np.isnan(reqs[i]):
            phase.requests = (phase.requests or 0.0) + float(reqs[i])
            phase.failed = (phase.failed or 0.0) + (0.0 if np.isnan(fails[i]) else float(fails[i]))
        if np.isnan(reqs[i]) or reqs[i] <= 0:
            continue  # no traffic: not scored
        ok = True
        if out.latency_target is not None:
            ok &= bool(not np.isnan(lat[i]) and lat[i] <= out.latency_target)
            phase.latency_minutes += 1
            phase.latency_compliant += int(ok)
        if out.max_error_rate is not None:
            ok &= bool(np.isnan(err[i]) or err[i] <= out.max_error_rate)
        phase.minutes += 1
        phase.compliant += int(ok)
    out.p95_max = _nanmax(lat)
    out.error_rate_max = _nanmax(err)
    return out


def reaction(policy: ScalingPolicy, surge: Any, start: float, duration: float,
             times: np.ndarray, desired: np.ndarray, ready: np.ndarray, peak: float) -> Reaction:
    """Surge onset -> scale decision -> capacity ready, in seconds relative to the onset.

    An unforecast surge passes with a scale-up decision within two reconcile intervals of its onset, or
    when the replicas ready at its onset already serve its peak (no reaction needed).

    The scale decision is the first scale-up (replicas asked for above the reference): for a
    recurring surge the reference is the first sample of the view (predictive scaling may decide
    even before the drill's clock starts; the value is then negative); otherwise it is the onset. Capacity is ready when the ready
    replicas reach what the surge's peak needs, ceil(peak / perReplicaCapacity) (the SLO limit of
    the evaluation model), within [min, max].
    """
    spec = policy.spec
    onset, end = start + surge.start * duration, start + surge.end * duration
    required = max(spec.replicas.min, min(spec.replicas.max, math.ceil(peak / spec.demand.perReplicaCapacity)))
    known = ~np.isnan(desired)
    first_known = float(times[known][0]) if known.any() else start
    ref_time = first_known if surge.recurring else onset  # recurring: from the first look at the cluster
    before_ref = np.nonzero(known & (times <= ref_time))[0]
    after_ref = np.nonzero(known & (times >= ref_time))[0]
    ref_index = before_ref[-1] if before_ref.size else (after_ref[0] if after_ref.size else None)
    decision: float | None = None
    if ref_index is not None:
        # An unforecast surge's decision is looked for up to the drill's end, not the surge's: a burst
        # shorter than two reconcile intervals (15 s bursts in a 150 s drill) would otherwise have its
        # reaction cut off before the time the target allows and score "no decision" (a decision found
        # later than two intervals still fails the target).
        until = end if surge.recurring or surge.anomalous else max(end, start + duration)
        up = np.nonzero(known & (times > times[ref_index]) & (times <= until) & (desired > desired[ref_index]))[0]
        decision = float(times[up[0]] - onset) if up.size else None
    hit = np.nonzero((times <= end) & ~np.isnan(ready) & (ready >= required))[0]
    ready_at = float(times[hit[0]] - onset) if hit.size else None
    during = (times >= onset) & (times <= end) & known
    max_during = int(np.nanmax(desired[during])) if during.any() else None
    passed: bool | None
    if surge.anomalous:
        passed = None if max_during is None else max_during < required
    elif surge.recurring:
        passed = ready_at is not None and ready_at <= 0
    else:
        # capacity the surge needs, already ready at its onset, needs no reaction (a second burst that finds the
        # first one's replicas still there); otherwise a scale-up decision within two reconcile intervals
        at_onset = np.nonzero((times <= onset) & ~np.isnan(ready))[0]
        covered = bool(at_onset.size and ready[at_onset[-1]] >= required)
        passed = covered or (decision is not None and 0 <= decision <= 2 * spec.intervalSeconds)
    return Reaction(spec.targetRef.name, onset, required, decision, ready_at, surge.recurring, surge.anomalous,
                    max_during, spec.intervalSeconds, passed)


# --- plots -----------------------------------------------------------------------------------------------------------
def plot_workload(path: Path, policy: ScalingPolicy, panels: Mapping[str, Any], start: float,
                  windows: Sequence[tuple[float, float, str]], decisions: Mapping[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = (panels["t"] - start) / 60.0
    fig, axes = plt.subplots(6, 1, figsize=(11, 14), sharex=True)
    fig.subplots_adjust(left=0.08, right=0.92, top=0.97, bottom=0.05, hspace=0.15)  # tight_layout costs a draw
    ax = axes[0]
    ax.plot(grid, panels["demand"], label="demand", color="black")
    if not np.all(np.isnan(panels["fc_upper"])):
        ax.fill_between(grid, panels["fc_lower"], panels["fc_upper"], color="tab:blue", alpha=0.2,
                        label="forecast band")
        ax.plot(grid, panels["fc_mean"], color="tab:blue", lw=1, label="forecast mean")
    ax.plot(grid, panels["capacity"], color="tab:green", lw=1, ls="--", label="ready capacity")
    ax.set_ylabel("units/s")
    ax.set_title(f"{policy.metadata.namespace}/{policy.metadata.name}")
    axes[1].step(grid, panels["desired"], where="post", label="careplane desired")
    axes[1].step(grid, panels["spec"], where="post", label="spec.replicas")
    axes[1].step(grid, panels["ready"], where="post", label="ready")
    axes[1].set_ylabel("replicas")
    axes[2].plot(grid, panels["p95"], color="tab:purple", label="p95 latency")
    if policy.spec.slo and policy.spec.slo.latencyTargetSeconds:
        axes[2].axhline(policy.spec.slo.latencyTargetSeconds, color="red", ls=":", label="SLO")
    axes[2].set_ylabel("seconds")
    axes[3].plot(grid, panels["errors"], color="tab:red", label="error ratio")
    if policy.spec.slo and policy.spec.slo.maxErrorRate is not None:
        axes[3].axhline(policy.spec.slo.maxErrorRate, color="red", ls=":", label="max")
    axes[3].set_ylabel("ratio")
    axes[4].plot(grid, panels["anomaly"], color="tab:orange", label="anomaly score")
    axes[4].set_ylim(-0.05, 1.05)
    ax5 = axes[5]
    ax5.step(grid, panels["max_pending"], where="post", color="tab:brown", label="http1MaxPendingRequests")
    ax5.set_ylabel("max pending")
    if panels["weights"]:
        twin = ax5.twinx()
        for backend, w in panels["weights"].items():
            twin.step(grid, w, where="post", ls="--", label=f"weight {backend}")
        twin.set_ylabel("weight")
        twin.set_ylim(-5, 105)
        twin.legend(loc="upper right", fontsize=7)
    colours = {"scale": "tab:blue", "circuit_breaker": "tab:brown", "routing": "tab:green"}
    for a in axes:
        for lo, hi, kind in windows:
            a.axvspan((lo - start) / 60.0, (hi - start) / 60.0, color="red" if kind == "fault" else "gold", alpha=0.12)
        for action, times in decisions.items():
            for t in times:
                a.axvline((t - start) / 60.0, color=colours.get(action, "grey"), lw=0.6, alpha=0.6)
        a.legend(loc="upper left", fontsize=7)
        a.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes since the drill started (shaded: surges gold, faults red; lines: decisions)")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def decision_times(prom: PromReader, policy: ScalingPolicy, start: float, end: float, step: float) -> dict[str, np.ndarray]:
    """Times at which careplane_decisions_total went up, by action."""
    q = (f'sum by (action) (increase(careplane_decisions_total{{policy="{policy.metadata.name}",'
         f'namespace="{policy.metadata.namespace}"}}[{int(step)}s]))')
    out: dict[str, np.ndarray] = {}
    grid = np.arange(start, end + 1e-9, step)
    for action, values in prom.by_label(q, "action", start, end, step).items():
        out[action] = grid[np.nan_to_num(values) > 0.5]
    return out


def workload_panels(prom: PromReader, policy: ScalingPolicy, start: float, end: float, step: float,
                    timeline: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    name, ns, svc = policy.metadata.name, policy.metadata.namespace, policy.spec.targetRef.name
    sel = f'policy="{name}",namespace="{ns}"'
    t, demand = prom.one(policy.spec.demand.query, start, end, step)
    fc = prom.by_label(f"careplane_forecast_demand{{{sel}}}", "quantile", start, end, step)
    nan = np.full(t.size, np.nan)
    panels: dict[str, Any] = {
        "t": t, "demand": demand,
        "fc_mean": fc.get("mean", nan), "fc_upper": fc.get("upper", nan), "fc_lower": fc.get("lower", nan),
        "capacity": prom.one(f'sandbox_capacity{{service="{svc}"}}', start, end, step)[1],
        "desired": prom.one(f"careplane_desired_replicas{{{sel}}}", start, end, step)[1],
        "ready": prom.one(f'sandbox_ready_replicas{{service="{svc}"}}', start, end, step)[1],
        "spec": prom.one(f'sandbox_desired_replicas{{service="{svc}"}}', start, end, step)[1],
        "p95": prom.one(latency_query(policy), start, end, step)[1],
        "errors": prom.one(error_query(policy), start, end, step)[1],
        "anomaly": prom.one(f"careplane_anomaly_score{{{sel}}}", start, end, step)[1],
        "max_pending": prom.one(f'sandbox_max_pending_requests{{service="{svc}"}} >= 0', start, end, step)[1],
        "weights": prom.by_label(f'sandbox_routing_weight{{service="{svc}"}}', "backend", start, end, step)
        if policy.spec.routing else {},
    }
    if timeline:  # ground truth from the cluster, when the orchestrator sampled it
        ts = np.array([s["t"] for s in timeline])
        for key, field_name in (("spec", "replicas"), ("ready", "ready")):
            vals = np.array([np.nan if s[field_name].get(name) is None else s[field_name][name] for s in timeline],
                            dtype=float)
            idx = np.searchsorted(ts, t, side="right") - 1
            sampled = np.where(idx >= 0, vals[np.clip(idx, 0, None)], np.nan)
            panels[key] = np.where(np.isnan(sampled), panels[key], sampled)
    return panels


# --- the page --------------------------------------------------------------------------------------------------------
def _fmt(v: float | None, unit: str = "", digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}{unit}"


def _summary_cells(s: WorkloadSummary) -> tuple[list[str], float, float]:
    """Compliance per phase (before / during / after, as text), requests and failed requests: the HTML page's
    and the terminal table's row of one workload."""
    cells = []
    for phase in ("before", "during", "after"):
        p = s.phases.get(phase)
        cells.append(_fmt(100 * p.compliance, "%", 1) if p and p.compliance is not None else "n/a")
    total = sum((p.requests or 0.0) for p in s.phases.values())
    failed = sum((p.failed or 0.0) for p in s.phases.values())
    return cells, total, failed


def write_html(path: Path, title: str, intro: str, summaries: Sequence[WorkloadSummary],
               reactions: Sequence[Reaction], images: Sequence[str], events: Sequence[Mapping[str, Any]]) -> None:
    rows = []
    for s in summaries:
        cells, total, failed = _summary_cells(s)
        rows.append(f"<tr><td>{html.escape(s.namespace)}/{html.escape(s.workload)}</td><td>{s.criticality}</td>"
                    + "".join(f"<td>{c}</td>" for c in cells)
                    + f"<td>{_fmt(s.p95_max, ' s', 3)}</td><td>{total:,.0f}</td><td>{failed:,.0f}</td>"
                    + f"<td>{s.replicas_min if s.replicas_min is not None else 'n/a'}–"
                      f"{s.replicas_max if s.replicas_max is not None else 'n/a'}</td></tr>")
    react_rows = [
        f"<tr><td>{r.workload}</td><td>{'recurring' if r.recurring else 'anomalous' if r.anomalous else 'unforecast'}"
        f"</td><td>{r.required_replicas}</td><td>{_fmt(r.decision_seconds, ' s', 0)}</td>"
        f"<td>{_fmt(r.ready_seconds, ' s', 0)}</td><td>{r.max_replicas_during if r.max_replicas_during is not None else 'n/a'}"
        f"</td><td>{'n/a' if r.passed is None else 'yes' if r.passed else 'NO'}</td></tr>"
        for r in reactions
    ]
    ev_rows = [f"<li>{html.escape(json.dumps(e))}</li>" for e in events]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>
<h2>SLO compliance (minutes within latency and error objectives)</h2>
<table><tr><th>workload</th><th>criticality</th><th>before</th><th>during</th><th>after</th><th>max p95</th>
<th>requests</th><th>failed</th><th>replicas</th></tr>{''.join(rows)}</table>
<h2>Reaction to surges (seconds relative to onset; negative = ahead of it)</h2>
<table><tr><th>workload</th><th>surge</th><th>replicas needed</th><th>scale decision</th><th>capacity ready</th>
<th>max replicas during</th><th>target met</th></tr>{''.join(react_rows)}</table>
<p>Targets: a recurring (scheduled) surge has capacity ready before its onset; an unforecast surge gets a scale
decision within two reconcile intervals; an anomalous (retry-storm) spike is not chased to the replicas it would need.</p>
<h2>Plots</h2>{''.join(f'<p><img src="{html.escape(i)}" width="1000"></p>' for i in images)}
<h2>Drill events</h2><ul>{''.join(ev_rows)}</ul></body></html>"""
    path.write_text(page)


def summary_json(summaries: Sequence[WorkloadSummary], reactions: Sequence[Reaction]) -> dict[str, Any]:
    def phase_dict(p: PhaseSLO) -> dict[str, Any]:
        return {**asdict(p), "compliance": p.compliance}

    return {
        "workloads": [{**{k: v for k, v in asdict(s).items() if k != "phases"},
                       "phases": {k: phase_dict(p) for k, p in s.phases.items()}} for s in summaries],
        "reactions": [asdict(r) for r in reactions],
    }


@dataclass
class Report:
    directory: Path
    summaries: list[WorkloadSummary]
    reactions: list[Reaction]

    @property
    def html(self) -> Path:
        return self.directory / "index.html"


def build_report(
    prometheus_url: str,
    policies: Sequence[ScalingPolicy],
    scenario: Any,
    start: float,
    duration: float,
    outdir: Path,
    timeline: Sequence[Mapping[str, Any]] = (),
    events: Sequence[Mapping[str, Any]] = (),
    workloads: Sequence[str] | None = None,
    step: float = 5.0,
    title: str | None = None,
) -> Report:
    """Query, score, plot and write ``index.html`` + ``summary.json`` + ``timeline.json`` under ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    prom = PromReader(prometheus_url)
    end = start + duration
    view_start = start - min(120.0, 0.2 * duration)  # a little context before the drill clock started
    chosen = [p for p in policies if workloads is None or p.spec.targetRef.name in workloads]
    fault_windows = [(start + f.start * duration, start + f.end * duration, "fault") for f in scenario.faults]
    summaries: list[WorkloadSummary] = []
    reactions: list[Reaction] = []
    images: list[str] = []
    for pol in chosen:
        svc = pol.spec.targetRef.name
        surge_windows = [(start + s.start * duration, start + s.end * duration) for s in scenario.surges
                         if s.workload == svc]
        faults = [(a, b) for (a, b, _k), f in zip(fault_windows, scenario.faults, strict=True) if f.workload == svc]
        summary = slo_summary(prom, pol, start, end, surge_windows + faults)
        panels = workload_panels(prom, pol, view_start, end, step, timeline)
        inside = panels["t"] >= start
        spec_vals = panels["spec"][inside]
        if not np.all(np.isnan(spec_vals)):
            summary.replicas_min, summary.replicas_max = int(np.nanmin(spec_vals)), int(np.nanmax(spec_vals))
        summaries.append(summary)
        # The scale decision is when spec.replicas was written (the cluster timeline, ground truth); without a
        # timeline (a drill against a real cluster) careplane's own desired_replicas gauge stands in.
        desired = panels["spec"] if timeline else np.where(np.isnan(panels["desired"]), panels["spec"],
                                                            panels["desired"])
        for s in scenario.surges:
            if s.workload != svc:
                continue
            peak = max(scenario.rate(svc, s.start + (s.end - s.start) * k / 20) for k in range(1, 20))
            reactions.append(reaction(pol, s, start, duration, panels["t"], desired, panels["ready"], peak))
        decisions = decision_times(prom, pol, view_start, end, step)
        image = f"{pol.metadata.namespace}-{pol.metadata.name}.png"
        windows = [(a, b, "surge") for a, b in surge_windows] + [(a, b, "fault") for a, b in faults]
        plot_workload(outdir / image, pol, panels, start, windows, decisions)
        images.append(image)
    intro = (f"Scenario '{scenario.name}': {scenario.description} Drill window {duration:.0f} s starting at "
             f"{start:.0f} (epoch s).")
    write_html(outdir / "index.html", title or f"careplane drill: {scenario.name}", intro, summaries, reactions,
               images, events)
    (outdir / "summary.json").write_text(json.dumps(
        {"scenario": scenario.name, "start": start, "duration": duration, **summary_json(summaries, reactions)},
        indent=2, default=float))
    if timeline:
        (outdir / "timeline.json").write_text(json.dumps(list(timeline), default=float))
    return Report(outdir, summaries, reactions)


def render_summary_table(report: Report) -> Any:
    """The SLO summary as a rich Table (printed at the end of the demo and of a drill)."""
    from rich.table import Table

    table = Table(title="SLO summary (minutes within objectives: before / during / after the surges)")
    for col in ("workload", "criticality", "before", "during", "after", "max p95", "requests", "failed", "replicas"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    for s in report.summaries:
        cells, total, failed = _summary_cells(s)
        table.add_row(s.workload, s.criticality, *cells, _fmt(s.p95_max, " s", 3),
                      f"{total:,.0f}", f"{failed:,.0f}", f"{s.replicas_min}–{s.replicas_max}")
    return table
