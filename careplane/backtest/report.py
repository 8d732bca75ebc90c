"""``--report DIR``: an HTML page with PNG plots a person can read at a glance.

* ``timeline.png`` – demand, careplane's forecast band, the ready capacity of each
  controller and the violated steps, for the whole trace (hourly maxima) and for
  the day around the trace's peak;
* ``cost_vs_violation.png`` – violation % against cost / oracle for the HPA at
  several targets and careplane at several forecast quantiles: the curve lower
  and further left is better.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from careplane.backtest.engine import Metrics, ProgressFn, score
from careplane.backtest.runner import Result, run_controller
from careplane.policy import ScalingPolicySpec
from careplane.traces import Trace

HPA_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9)
CAREPLANE_QUANTILES = (0.6, 0.8, 0.9, 0.95, 0.99)
COLORS = {"careplane": "tab:blue", "hpa": "tab:orange", "oracle": "tab:green"}


def sweep(
    spec: ScalingPolicySpec,
    trace: Trace,
    oracle_hours: float,
    progress: Callable[[str], ProgressFn] | None = None,
    hpa_targets: Sequence[float] = HPA_TARGETS,
    quantiles: Sequence[float] = CAREPLANE_QUANTILES,
) -> dict[str, list[dict[str, float]]]:
    """Cost-vs-violation points: HPA per target, careplane per forecast quantile."""
    capacity, step = spec.demand.perReplicaCapacity, trace.step_seconds
    points: dict[str, list[dict[str, float]]] = {"hpa": [], "careplane": []}
    for target in hpa_targets:
        run = run_controller("hpa", spec, trace, hpa_target=target, progress=progress(f"hpa {target}") if progress else None)
        m = score(run, trace.values, capacity=capacity, step_seconds=step, oracle_hours=oracle_hours)
        points["hpa"].append({"target": target, "cost_vs_oracle": m.cost_vs_oracle or 0.0, "violation_pct": m.violation_pct})
    for q in quantiles:
        variant = spec.model_copy(update={"forecast": spec.forecast.model_copy(update={"quantile": q})})
        run = run_controller("careplane", variant, trace, progress=progress(f"careplane q{q}") if progress else None)
        m = score(run, trace.values, capacity=capacity, step_seconds=step, oracle_hours=oracle_hours)
        points["careplane"].append({"quantile": q, "cost_vs_oracle": m.cost_vs_oracle or 0.0, "violation_pct": m.violation_pct})
    return points


def plot_cost_vs_violation(points: dict[str, list[dict[str, float]]], path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, key, fmt in (("hpa", "target", "HPA target {}"), ("careplane", "quantile", "careplane q{}")):
        rows = sorted(points.get(name, []), key=lambda r: r["cost_vs_oracle"])
        if not rows:
            continue
        x = [r["cost_vs_oracle"] for r in rows]
        y = [r["violation_pct"] for r in rows]
        ax.plot(x, y, "o-", color=COLORS[name], label=name)
        for r in rows:
            ax.annotate(fmt.format(r[key]), (r["cost_vs_oracle"], r["violation_pct"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    ax.axvline(1.0, color=COLORS["oracle"], linestyle="--", label="oracle (0% violations)")
    ax.set_xlabel("replica-hours / oracle replica-hours")
    ax.set_ylabel("violated steps (%)")
    ax.set_title(title or "Cost vs SLO violations (lower left is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _hourly_max(x: np.ndarray, block: int) -> np.ndarray:
    n = len(x) // block * block
    if n == 0:
        return x
    with np.errstate(all="ignore"):
        blocks = x[:n].reshape(-1, block)
        ok = np.isfinite(blocks).any(axis=1)
        out = np.full(len(blocks), np.nan)
        out[ok] = np.nanmax(blocks[ok], axis=1)
    return out


def plot_timeline(trace: Trace, result: Result, capacity: float, path: Path) -> None:
    """Overview (hourly maxima) and a zoom on the day around the peak, violations marked."""
    step = trace.step_seconds
    hours = (trace.times - trace.times[0]) / 3600.0
    per_day = max(1, round(86400 / step))
    peak = int(np.nanargmax(trace.values))
    lo, hi = max(0, peak - per_day // 2), min(len(trace), peak + per_day // 2)
    block = max(1, round(3600 / step))
    fig, axes = plt.subplots(2, 1, figsize=(12, 7.5))
    for ax, (a, b), agg in ((axes[0], (0, len(trace)), block), (axes[1], (lo, hi), 1)):
        sl = slice(a, b)
        x = hours[sl][::agg][: len(_hourly_max(trace.values[sl], agg))] if agg > 1 else hours[sl]

        def shape(v: np.ndarray, agg: int = agg) -> np.ndarray:
            return _hourly_max(v, agg) if agg > 1 else v

        ax.plot(x, shape(trace.values[sl]), color="black", lw=0.8, label="demand (req/s)")
        cp = result.runs.get("careplane")
        if cp is not None and "forecast_upper" in cp.extra:
            ax.fill_between(x, shape(cp.extra["forecast_mean"][sl]), shape(cp.extra["forecast_upper"][sl]),
                            color=COLORS["careplane"], alpha=0.2, step="post", label="careplane forecast mean..upper")
        for name, run in result.runs.items():
            ax.step(x, shape(run.ready[sl].astype(float) * capacity), where="post", lw=0.9,
                    color=COLORS.get(name, "gray"), label=f"{name} ready capacity")
            if agg == 1:
                bad = np.isfinite(trace.values[sl]) & (trace.values[sl] > run.ready[sl] * capacity * (1 + 1e-12))
                ax.plot(x[bad], trace.values[sl][bad], "x", ms=4, color=COLORS.get(name, "gray"),
                        label=f"{name} violations")
        ax.set_xlabel("hours since start")
        ax.set_ylabel("requests/s")
        ax.grid(alpha=0.3)
    axes[0].set_title("Whole trace (hourly maxima)")
    axes[1].set_title("The day around the peak (every step; x = violated step)")
    axes[1].legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    directory: Path,
    *,
    trace: Trace,
    spec: ScalingPolicySpec,
    result: Result,
    points: dict[str, list[dict[str, float]]],
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    capacity = spec.demand.perReplicaCapacity
    plot_timeline(trace, result, capacity, directory / "timeline.png")
    plot_cost_vs_violation(points, directory / "cost_vs_violation.png")
    (directory / "metrics.json").write_text(
        json.dumps({"metrics": {k: v.as_dict() for k, v in result.metrics.items()}, "sweep": points}, indent=2)
    )
    rows = "".join(_row(name, m) for name, m in result.metrics.items())
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>careplane backtest: {html.escape(trace.source)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}td,th{{padding:4px 10px;text-align:right}}
th:first-child,td:first-child{{text-align:left}}table{{border-collapse:collapse}}tr:nth-child(even){{background:#f3f3f3}}</style>
</head><body>
<h1>careplane backtest</h1>
<p>Trace <code>{html.escape(trace.source)}</code>: {len(trace)} steps of {trace.step_seconds:g} s.
Policy: capacity {capacity:g} req/s per replica, pod startup {spec.demand.podStartupSeconds} s,
replicas {spec.replicas.min}..{spec.replicas.max}, target utilisation {spec.demand.targetUtilization:g},
forecast {spec.forecast.model.value} at quantile {spec.forecast.quantile:g}.</p>
<p>A step violates the SLO when demand exceeds ready replicas x capacity; cost counts replicas asked for.
The oracle knows the future and is the limit: no violations at least cost.</p>
<table><tr><th>controller</th><th>violated steps %</th><th>excess demand %</th><th>replica-hours</th>
<th>cost / oracle</th><th>replica changes</th></tr>{rows}</table>
<h2>Cost against violations</h2><img src="cost_vs_violation.png" alt="cost vs violation">
<h2>Timeline</h2><img src="timeline.png" alt="timeline" style="max-width:100%">
</body></html>
"""
    index = directory / "index.html"
    index.write_text(page)
    return index


def _row(name: str, m: Metrics) -> str:
    cost = "" if m.cost_vs_oracle is None else f"{m.cost_vs_oracle:.2f}x"
    return (f"<tr><td>{html.escape(name)}</td><td>{m.violation_pct:.2f}</td><td>{m.excess_pct:.2f}</td>"
            f"<td>{m.replica_hours:,.0f}</td><td>{cost}</td><td>{m.changes}</td></tr>")
