"""The drill report from what Locust itself measured: for drills against any base URL (a real service).

Without a Prometheus of ours the client's view is what we have: Locust's
per-second stats history (``--csv-full-history``). A minute complies when
its failure ratio is within the policy's maximum and the worst of Locust's
rolling p95 readings (a 10-second window) in it is within the latency target
(conservative: one slow 10 s stretch fails the minute). Minutes without
requests are not scored. Replicas and reaction times need careplane's own
metrics: pass ``--prometheus`` and the full report (``report.py``) is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from careplane.sandbox.report import PhaseSLO, _phase_of


@dataclass
class ClientSideSummary:
    scenario: str
    host: str
    latency_target: float | None
    max_error_rate: float | None
    requests: int = 0
    failed: int = 0
    phases: dict[str, PhaseSLO] = field(default_factory=dict)
    p95_max_seconds: float | None = None


def _float(v: str | None) -> float | None:
    try:
        x = float(v) if v not in (None, "", "N/A") else None
    except ValueError:
        return None
    return None if x is None or math.isnan(x) else x


def summarise_history(rows: Sequence[Mapping[str, str]], start: float, duration: float,
                      windows: Sequence[tuple[float, float]], latency_target: float | None,
                      max_error_rate: float | None, scenario: str, host: str) -> ClientSideSummary:
    """Per-minute compliance from Locust's Aggregated history rows (cumulative counts, rolling percentiles)."""
    out = ClientSideSummary(scenario, host, latency_target, max_error_rate)
    minutes: dict[int, dict[str, Any]] = {}
    last_total = last_failed = 0.0
    for row in rows:
        t = _float(row.get("Timestamp"))
        total, failed = _float(row.get("Total Request Count")), _float(row.get("Total Failure Count"))
        if t is None or total is None or failed is None:
            continue
        p95 = _float(row.get("95%"))
        m = minutes.setdefault(int((t - start) // 60), {"requests": 0.0, "failed": 0.0, "p95": None})
        m["requests"] += max(0.0, total - last_total)
        m["failed"] += max(0.0, failed - last_failed)
        last_total, last_failed = total, failed
        if p95 is not None:
            m["p95"] = p95 / 1000.0 if m["p95"] is None else max(m["p95"], p95 / 1000.0)
    out.requests, out.failed = int(last_total), int(last_failed)
    for minute, m in sorted(minutes.items()):
        if minute < 0 or minute * 60 >= duration:
            continue
        phase = out.phases.setdefault(_phase_of(start + minute * 60 + 30, windows), PhaseSLO())
        phase.requests = (phase.requests or 0.0) + m["requests"]
        phase.failed = (phase.failed or 0.0) + m["failed"]
        if m["requests"] <= 0:
            continue
        ok = True
        if latency_target is not None:
            ok &= m["p95"] is not None and m["p95"] <= latency_target
        if max_error_rate is not None:
            ok &= m["failed"] / m["requests"] <= max_error_rate
        phase.minutes += 1
        phase.compliant += int(ok)
        if m["p95"] is not None:
            out.p95_max_seconds = max(out.p95_max_seconds or 0.0, m["p95"])
    return out


def write_client_report(outdir: Path, summary: ClientSideSummary, events: Sequence[Mapping[str, Any]]) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    data = {**asdict(summary), "phases": {k: {**asdict(p), "compliance": p.compliance} for k, p in summary.phases.items()},
            "events": list(events)}
    path = outdir / "summary.json"
    path.write_text(json.dumps(data, indent=2))
    return path
