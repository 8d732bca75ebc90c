"""Surge drills in the sandbox against the issue's targets; writes benchmarks/results/sandbox_drills.json.

Targets (issue 7): vaccination-campaign has capacity ready before the spike;
reaction to an unforecast surge (device-storm) within two reconcile
intervals; a retry storm does not blow up replicas; p95 latency within SLO
for >= 99 % of the drill's minutes for critical workloads.

Each scenario runs the whole sandbox (real Prometheus with backfilled
history, emulated cluster, workloads, the operator, Locust) for --duration
seconds. Slow (duration + ~40 s each) and CPU-hungry: run it niced.

    nice -n 10 python benchmarks/sandbox_drills.py --duration 300 vaccination-campaign device-storm retry-storm
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from careplane.sandbox.demo import Sandbox, SandboxConfig
from careplane.sandbox.report import build_report, summary_json

RESULTS = Path(__file__).resolve().parent / "results" / "sandbox_drills.json"


def run(scenario: str, duration: float, lead: float, workdir: Path) -> dict[str, Any]:
    t0 = time.time()
    config = SandboxConfig(scenario=scenario, duration=duration, lead_seconds=lead, history_days=3.0,
                           workdir=workdir / scenario / "sandbox")
    with Sandbox(config) as sb:
        sb.run(sample_every=1.0)
        assert sb.prometheus is not None
        report = build_report(sb.prometheus.url, sb.policies, sb.scenario, sb.start_at, duration,
                              workdir / scenario / "report", timeline=sb.timeline_json(),
                              events=sb.drill.events() if sb.drill else [], workloads=list(sb.scenario.rates))
        operator = sb.operator_running
    data = summary_json(report.summaries, report.reactions)
    critical = [s for s in report.summaries if s.criticality == "critical"]
    minutes = sum(p.minutes for s in critical for p in s.phases.values())
    compliant = sum(p.compliant for s in critical for p in s.phases.values())
    latency_minutes = sum(p.latency_minutes for s in critical for p in s.phases.values())
    latency_compliant = sum(p.latency_compliant for s in critical for p in s.phases.values())
    return {
        "scenario": scenario,
        "duration_seconds": duration,
        "operator_running": operator,
        "wall_seconds": round(time.time() - t0, 1),
        "critical_slo_minutes": minutes,
        "critical_slo_compliance": (compliant / minutes) if minutes else None,
        # the target: p95 latency within SLO for >= 99 % of the minutes of critical workloads that
        # declare a latency SLO (vitals ingestion declares none: its minutes are not scored here)
        "critical_latency_slo_minutes": latency_minutes,
        "critical_latency_slo_compliance": (latency_compliant / latency_minutes) if latency_minutes else None,
        "reactions": data["reactions"],
        "workloads": data["workloads"],
        "report": str(workdir / scenario / "report" / "index.html"),
    }


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops it even when started in a background job
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenarios", nargs="*", default=["vaccination-campaign", "device-storm", "retry-storm"])
    parser.add_argument("--duration", type=float, default=300.0)
    # The drill clock starts once the operator is in its steady state (started, models rebuilt from history,
    # a few decisions made at the baseline), as in a cluster where careplane runs all the time. The
    # operator's first decision comes ~40 s after it starts on two loaded cores (the shortened demo, 15 s
    # lead: 27 s after the drill's start), so with a short lead a 90 s pod startup could not be ready for
    # a spike at 75 s whatever the policy said: the drill would measure the operator's boot.
    parser.add_argument("--lead", type=float, default=120.0,
                        help="seconds from setup to the drill clock's start (operator warm-up)")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.cache/sandbox_drills"))
    args = parser.parse_args(argv)
    results = [run(name, args.duration, args.lead, args.workdir) for name in args.scenarios]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2, default=float))
    for r in results:
        reacts = [(x["workload"], x["decision_seconds"], x["ready_seconds"], x["passed"]) for x in r["reactions"]]
        print(f"{r['scenario']}: critical SLO minutes {r['critical_slo_compliance']} of {r['critical_slo_minutes']}; "
              f"reactions (workload, decision s, ready s, met) {reacts}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
