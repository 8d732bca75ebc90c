"""The shortened demo: what Prometheus and the emulated cluster show, the report, and every dashboard query live."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import requests

from careplane.sandbox.report import PromReader
from tests.sandbox.conftest import DEMO_SECONDS, DemoRun
from tests.sandbox.test_sb_dashboards import committed, queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _window(run: DemoRun, a: float, b: float) -> list:
    sb = run.sandbox
    return [s for s in sb.timeline if sb.start_at + a * DEMO_SECONDS <= s.t < sb.start_at + b * DEMO_SECONDS]


def test_prometheus_holds_the_recurring_spike_a_day_earlier_and_a_seamless_demand_signal(shortened_demo: DemoRun) -> None:
    """The backfilled history: yesterday at the drill's spike time demand was ~9x; no dip where live data begins."""
    sb = shortened_demo.sandbox
    assert sb.prometheus is not None
    prom = PromReader(sb.prometheus.url)
    surge = next(s for s in sb.scenario.surges if s.workload == "fhir-api" and s.recurring)
    query = 'sum(rate(http_requests_total{service="fhir-api"}[1m]))'
    onset = sb.start_at + surge.start * DEMO_SECONDS - 86400
    _, spike = prom.one(query, onset + 45, onset + 50, 5.0)
    _, calm = prom.one(query, onset - 600, onset - 300, 60.0)
    assert np.nanmin(spike) > 3 * np.nanmax(calm)  # 9x the drill's baseline; the day before may be a busier weekday
    # Across the seam (history up to the start, live counters after) demand stays near the baseline.
    _, seam = prom.one(query, sb.created, sb.created + 40, 5.0)
    base = sb.scenario.rate("fhir-api", 0.0)
    assert np.nanmin(seam) > 0.6 * base and np.nanmax(seam) < 1.5 * base


def test_replicas_rise_ahead_of_the_scheduled_spike(shortened_demo: DemoRun) -> None:
    """The vaccination spike is in the history's daily pattern: fhir-api has more replicas before its onset."""
    sb = shortened_demo.sandbox
    surge = next(s for s in sb.scenario.surges if s.workload == "fhir-api" and s.recurring)
    initial = sb.timeline[0].replicas["fhir-api"]
    before_onset = [s.replicas["fhir-api"] for s in sb.timeline if s.t < sb.start_at + surge.start * DEMO_SECONDS]
    assert initial is not None and max(r for r in before_onset if r is not None) > initial
    # Prometheus agrees: careplane asked for more replicas than deployed before the onset.
    prom = PromReader(sb.prometheus.url if sb.prometheus else "")
    _, desired = prom.one('careplane_desired_replicas{namespace="clinical",policy="fhir-api"}',
                          sb.created, sb.start_at + surge.start * DEMO_SECONDS, 2.0)
    assert np.nanmax(desired) > initial


def test_circuit_breaker_tightens_during_errors(shortened_demo: DemoRun) -> None:
    sb = shortened_demo.sandbox
    fault = next(f for f in sb.scenario.faults if f.workload == "fhir-api")
    before = [s for s in sb.timeline if s.t < sb.start_at + fault.start * DEMO_SECONDS]
    during = _window(shortened_demo, fault.start, fault.end + 0.2)
    c5xx_before = min(s.consecutive_5xx["fhir-api"] for s in before)
    c5xx_during = min(s.consecutive_5xx["fhir-api"] for s in during)
    per_replica_before = min(s.max_pending["fhir-api"] / max(1, s.ready["fhir-api"] or 1) for s in before)
    per_replica_during = min(s.max_pending["fhir-api"] / max(1, s.ready["fhir-api"] or 1) for s in during)
    assert c5xx_during < c5xx_before or per_replica_during < per_replica_before


def test_report_has_slo_summary_reactions_and_plots(shortened_demo: DemoRun) -> None:
    report = shortened_demo.report
    assert report.html.exists() and "SLO compliance" in report.html.read_text()
    pngs = sorted(p.name for p in shortened_demo.report_dir.glob("*.png"))
    assert len(pngs) == 5 and all((shortened_demo.report_dir / p).stat().st_size > 20_000 for p in pngs)
    fhir = next(s for s in report.summaries if s.workload == "fhir-api")
    total = sum((p.requests or 0) for p in fhir.phases.values())
    assert total > 0.5 * 60 * DEMO_SECONDS  # ~60 req/s baseline (counted with the sampling weight)
    vacc = next(r for r in report.reactions if r.workload == "fhir-api")
    assert vacc.recurring and vacc.required_replicas == math.ceil(9 * 60 / 50)  # 9x the baseline, 50 req/s each
    # The reaction agrees with the cluster timeline: the most replicas asked for during the surge, and a
    # "ready" time only once that many replicas were ready.
    sb = shortened_demo.sandbox
    surge = next(s for s in sb.scenario.surges if s.workload == "fhir-api")
    inner = _window(shortened_demo, surge.start + 5 / DEMO_SECONDS, surge.end - 5 / DEMO_SECONDS)
    outer = _window(shortened_demo, surge.start - 5 / DEMO_SECONDS, surge.end + 5 / DEMO_SECONDS)
    assert vacc.max_replicas_during is not None
    assert max(s.replicas["fhir-api"] for s in inner) <= vacc.max_replicas_during
    assert vacc.max_replicas_during <= max(s.replicas["fhir-api"] for s in outer)
    reached = [s for s in sb.timeline if (s.ready["fhir-api"] or 0) >= vacc.required_replicas
               and s.t <= sb.start_at + surge.end * DEMO_SECONDS]
    assert (vacc.ready_seconds is None) == (not reached)


def substitute(expr: str, namespace: str, policy: str) -> str:
    values = {"namespace": namespace, "policy": policy, "service": policy, "__rate_interval": "1m",
              "__interval": "15s", "datasource": "prometheus"}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)


def test_every_panel_query_returns_series_on_the_sandbox_prometheus(shortened_demo: DemoRun) -> None:
    """Against the demo's real Prometheus: no query errors, none returns no series (policy fhir-api in clinical)."""
    sb = shortened_demo.sandbox
    assert sb.prometheus is not None
    url = sb.prometheus.url
    start, end = sb.start_at, sb.end_time()
    failures = []
    checked = 0
    for model in committed().values():
        pairs = queries(model)
        for var in model["templating"]["list"]:
            text = var.get("query")
            text = text.get("query", "") if isinstance(text, dict) else str(text or "")
            found = re.match(r"label_values\((.*),\s*(\w+)\)$", text)
            if found:
                pairs.append((f"{model['uid']}/variable {var['name']}", found.group(1)))
        for where, expr in pairs:
            promql = substitute(expr, "clinical", "fhir-api")
            body = requests.get(f"{url}/api/v1/query_range",
                                params={"query": promql, "start": start, "end": end, "step": 15}, timeout=20).json()
            checked += 1
            if body.get("status") != "success":
                failures.append(f"{where}: error {body.get('error')}: {promql}")
            elif not body["data"]["result"]:
                failures.append(f"{where}: no series: {promql}")
    assert checked >= 30
    assert not failures, "\n".join(failures)
