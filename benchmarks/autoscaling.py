"""Autoscaling benchmark: careplane vs the Kubernetes HPA (targets 0.5-0.8) vs the perfect-foresight oracle.

Run:  nice -n 10 python3 benchmarks/autoscaling.py [--quick]
Out:  benchmarks/results/autoscaling.json and benchmarks/results/autoscaling_<trace>.png

Traces (only ../shared/data): the NASA Kennedy Space Center trace at 1-minute steps
and NAB's ELB request-count series (5-minute steps). For each, perReplicaCapacity is
set so that the 99.9th percentile of demand needs 40 replicas; podStartupSeconds is
120. Semantics are DESIGN.md's evaluation model (careplane.backtest.engine).

careplane's policy is the same for every trace: a decision every 15 s (the CRD's default
intervalSeconds, and the HPA's sync period: both controllers read the same metric at
the same times, the rate over the last trace step, so neither decides on older
information than the other), the CRD's default step limits and 300 s scale-down
stabilisation (the HPA's too, held as the HPA holds it: scaleDownHold Fixed, the
default; ``--hold Learned`` runs the learned hold of careplane.decision.hold instead),
forecast model ``auto`` with a horizon of 0 s past pod
startup (the next decision covers the rest), anomaly detection on. The cost-vs-violation
curve sweeps the policy quantile (forecast.quantile: the forecast's bound and the
calibrated reactive bound of careplane.decision.reactive are both sized at it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from careplane.shared_data import shared_data_dir

ROOT = Path(__file__).resolve().parent
DATA = shared_data_dir()
RESULTS = ROOT / "results"
CACHE = ROOT / ".cache"

HPA_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9)
# The curve is convex, so the chord between two measured quantiles overstates violations
# between them: the sweep is dense where the HPA's costs fall (0.9-0.99). 0.94 and 0.98 close
# the widest chords around HPA-0.7's and HPA-0.5's costs (NASA 0.93-0.95 spans 1.52-1.58x,
# ELB 0.97-0.99 spans 1.77-2.14x; measured: the 0.94 point alone moves NASA's interpolated
# violations at HPA-0.7's cost from 1.027% to 1.020%).
QUANTILES = (0.5, 0.6, 0.8, 0.9, 0.93, 0.94, 0.95, 0.97, 0.98, 0.99)
INTERVAL_SECONDS = 15  # the CRD default and the HPA's sync period
HEADLINE_QUANTILE = 0.9
PEAK_REPLICAS = 40
PEAK_PERCENTILE = 99.9
STARTUP_SECONDS = 120
# the issue's measurement on NASA with these semantics, to check our simulator against
REFERENCE_HPA_NASA = {"0.7": {"violation_pct": 2.9, "cost_vs_oracle": 1.55}, "0.5": {"violation_pct": 0.5, "cost_vs_oracle": 2.16}}


def load_traces(quick: bool) -> dict[str, Any]:
    from careplane.traces import Trace, load_trace

    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / "nasa-60.npz"
    if cached.exists():
        z = np.load(cached)
        t, v = z["times"], z["values"]
        nasa = Trace(t, v, [str(int(x)) for x in t], 60.0, "nasa-1995-per-second.tbz2 (60 s)")
    else:
        nasa = load_trace(DATA / "traces" / "nasa-1995-per-second.tbz2", aggregate=60)
        np.savez(cached, times=nasa.times, values=nasa.values)
    elb = load_trace(DATA / "nab" / "data" / "realAWSCloudwatch" / "elb_request_count_8c0756.csv")
    if quick:
        nasa = nasa.head(20000)
    return {"nasa-minute": nasa, "nab-elb-request-count": elb}


def policy_for(trace: Any, quantile: float, hold: str = "Fixed") -> Any:
    from careplane.policy import ScalingPolicySpec

    capacity = float(np.nanpercentile(trace.values, PEAK_PERCENTILE)) / PEAK_REPLICAS
    return ScalingPolicySpec.model_validate({
        "targetRef": {"name": "bench"},
        "intervalSeconds": INTERVAL_SECONDS,
        # step limits and stabilisation: the CRD defaults (10 up / 2 down per decision, 300 s)
        "replicas": {"min": 1, "max": 5 * PEAK_REPLICAS, "scaleDownHold": hold},
        "demand": {"query": "bench", "perReplicaCapacity": capacity, "targetUtilization": 0.7,
                   "podStartupSeconds": STARTUP_SECONDS},
        "forecast": {"model": "auto", "horizonSeconds": 0, "quantile": quantile},
        "anomaly": {"enabled": True},
    })


def interpolate(points: list[dict[str, float]], cost: float) -> float | None:
    """careplane's violation % at a given cost, linear between its measured quantiles (None outside)."""
    pts = sorted(points, key=lambda p: p["cost_vs_oracle"])
    for a, b in itertools.pairwise(pts):
        if a["cost_vs_oracle"] <= cost <= b["cost_vs_oracle"]:
            span = b["cost_vs_oracle"] - a["cost_vs_oracle"]
            w = 0.0 if span == 0 else (cost - a["cost_vs_oracle"]) / span
            return a["violation_pct"] + w * (b["violation_pct"] - a["violation_pct"])
    return None


def bench_trace(name: str, trace: Any, log: Any, hold: str = "Fixed") -> dict[str, Any]:
    from careplane.backtest.engine import score
    from careplane.backtest.runner import run_controller

    spec = policy_for(trace, HEADLINE_QUANTILE)
    capacity = spec.demand.perReplicaCapacity
    step = trace.step_seconds
    out: dict[str, Any] = {"steps": len(trace), "step_seconds": step, "per_replica_capacity": capacity,
                           "pod_startup_seconds": STARTUP_SECONDS}
    orc = run_controller("oracle", spec, trace)
    oracle_hours = score(orc, trace.values, capacity=capacity, step_seconds=step, oracle_hours=None).replica_hours
    out["oracle"] = {"replica_hours": oracle_hours}
    out["hpa"] = []
    for target in HPA_TARGETS:
        t0 = time.process_time()
        run = run_controller("hpa", spec, trace, hpa_target=target)
        m = score(run, trace.values, capacity=capacity, step_seconds=step, oracle_hours=oracle_hours).as_dict()
        out["hpa"].append({"target": target, **m, "cpu_seconds": round(time.process_time() - t0, 2)})
        log(f"{name} hpa {target}: {m}")
    out["careplane"] = []
    for q in QUANTILES:
        t0 = time.process_time()
        run = run_controller("careplane", policy_for(trace, q, hold), trace)
        m = score(run, trace.values, capacity=capacity, step_seconds=step, oracle_hours=oracle_hours).as_dict()
        out["careplane"].append({"quantile": q, **m, "cpu_seconds": round(time.process_time() - t0, 2)})
        log(f"{name} careplane q{q}: {m}")
    out["checks"] = checks(out)
    return out


def checks(out: dict[str, Any]) -> dict[str, Any]:
    cp = out["careplane"]
    below = {}
    for h in out["hpa"]:
        at = interpolate(cp, h["cost_vs_oracle"])
        below[str(h["target"])] = None if at is None else {"careplane_violation_pct": round(at, 4),
                                                            "hpa_violation_pct": h["violation_pct"],
                                                            "below": at <= h["violation_pct"]}
    hpa07 = next(h for h in out["hpa"] if h["target"] == 0.7)
    at07 = interpolate(cp, hpa07["cost_vs_oracle"])
    headline = next(c for c in cp if c["quantile"] == HEADLINE_QUANTILE)
    return {
        "curve_below_hpa_at_each_hpa_cost": below,
        "at_hpa_0.7_cost": {"careplane_violation_pct": None if at07 is None else round(at07, 4),
                            "hpa_violation_pct": hpa07["violation_pct"],
                            "at_most_a_third": None if at07 is None else at07 <= hpa07["violation_pct"] / 3},
        "headline_quantile": HEADLINE_QUANTILE,
        "headline_cost_vs_oracle": headline["cost_vs_oracle"],
        "headline_cost_at_most_1.5x": (headline["cost_vs_oracle"] or math.inf) <= 1.5,
    }


def plot(name: str, out: dict[str, Any], path: Path) -> None:
    from careplane.backtest.report import plot_cost_vs_violation

    plot_cost_vs_violation({"hpa": out["hpa"], "careplane": out["careplane"]}, path,
                           title=f"{name}: cost vs violated steps (peak = 40 replicas, startup {STARTUP_SECONDS} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 20,000 NASA minutes only (a smoke run)")
    parser.add_argument("--only", default=None, help="run one trace (nasa-minute or nab-elb-request-count)")
    parser.add_argument("--hold", choices=("Fixed", "Learned"), default="Fixed",
                        help="careplane's replicas.scaleDownHold (results of Learned go to autoscaling_learned*)")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    traces = load_traces(args.quick)
    learned = args.hold == "Learned"
    flags = (" --quick" if args.quick else "") + (" --hold Learned" if learned else "")
    results: dict[str, Any] = {"command": "python3 benchmarks/autoscaling.py" + flags, "quick": args.quick,
                               "scale_down_hold": args.hold, "traces": {}}
    for name, trace in traces.items():
        if args.only and name != args.only:
            continue
        results["traces"][name] = bench_trace(name, trace, log, args.hold)
        plot(name, results["traces"][name], RESULTS / f"autoscaling{'_learned' if learned else ''}_{name}.png")
    if "nasa-minute" in results["traces"] and not args.quick:
        hpa = {str(h["target"]): h for h in results["traces"]["nasa-minute"]["hpa"]}
        results["hpa_reference_check_nasa"] = {
            t: {"issue": ref, "measured": {k: hpa[t][k] for k in ("violation_pct", "cost_vs_oracle")}}
            for t, ref in REFERENCE_HPA_NASA.items()
        }
    suffix = ("_learned" if learned else "") + ("_quick" if args.quick else "")
    path = RESULTS / f"autoscaling{suffix}.json"
    path.write_text(json.dumps(results, indent=2))
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
