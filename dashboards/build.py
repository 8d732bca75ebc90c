"""Generate careplane's Grafana dashboards (``dashboards/*.json``) from code.

Run ``python dashboards/build.py`` after changing a panel; a test fails when
the committed JSON and this code disagree, and another runs every panel's
query against the sandbox's real Prometheus.

Why grafana-foundation-sdk (Grafana's own typed builders, pinned to the
Grafana 11.6 schema, ``schemaVersion`` 41): it writes the current dashboard
schema for us, so a renamed or misspelt field is a type error here and not a
panel that silently does not render. Every panel and query uses the
``${datasource}`` variable, never a datasource uid, and every dashboard and
panel id is fixed so that re-importing updates instead of duplicating.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import DataSourceRef as CommonRef
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

HERE = Path(__file__).resolve().parent
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
DS_COMMON = CommonRef(type_val="prometheus", uid="${datasource}")
SEL = 'namespace=~"$namespace",policy=~"$policy"'
SVC = 'namespace=~"$namespace",service=~"$service"'


def q(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def ts(title: str, unit: str, queries: Sequence[tuple[str, str]], x: int, y: int, w: int = 12, h: int = 8,
       description: str = "") -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).unit(unit).datasource(DS).description(description)
             .grid_pos(GridPos(h=h, w=w, x=x, y=y)).fill_opacity(10).line_width(1))
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(q(expr, legend, chr(ord("A") + i)))
    return panel


def single_stat(title: str, expr: str, x: int, y: int, w: int = 6, h: int = 4, unit: str = "short") -> stat.Panel:
    return (stat.Panel().title(title).unit(unit).datasource(DS).grid_pos(GridPos(h=h, w=w, x=x, y=y))
            .with_target(q(expr, title, "A")))


def datasource_var() -> dash.DatasourceVariable:
    return dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def label_var(name: str, query: str, label: str) -> dash.QueryVariable:
    # A plain label_values(...) string: the classic variable query every Grafana since 7 reads.
    return (dash.QueryVariable(name).label(label).datasource(DS_COMMON).query(query)
            .refresh(2).include_all(True).multi(True).all_value(".*"))


def base(title: str, uid: str, tags: Sequence[str]) -> dash.Dashboard:
    return (dash.Dashboard(title).uid(uid).tags(["careplane", *tags]).refresh("30s").time("now-1h", "now")
            .timezone("browser").editable().with_variable(datasource_var())
            .with_variable(label_var("namespace", "label_values(careplane_desired_replicas, namespace)", "Namespace")))


def fleet_overview() -> dash.Dashboard:
    d = base("careplane / fleet overview", "careplane-fleet-overview", ["fleet"])
    d = d.with_variable(label_var("policy", 'label_values(careplane_desired_replicas{namespace=~"$namespace"}, policy)',
                                  "Policy"))
    d = d.with_panel(single_stat("Policies reconciled", f"count(careplane_desired_replicas{{{SEL}}})", 0, 0))
    d = d.with_panel(single_stat("Replicas desired (sum)", f"sum(careplane_desired_replicas{{{SEL}}})", 6, 0))
    d = d.with_panel(single_stat("Policies in anomaly (score > 0.5)",
                                 f"count(careplane_anomaly_score{{{SEL}}} > 0.5) or vector(0)", 12, 0))
    d = d.with_panel(single_stat("Reconcile errors (1h)",
                                 f"sum(increase(careplane_errors_total{{{SEL}}}[1h])) or vector(0)", 18, 0))
    d = d.with_panel(ts("Desired vs current replicas", "short", [
        (f"careplane_desired_replicas{{{SEL}}}", "{{namespace}}/{{policy}} desired"),
        (f"careplane_current_replicas{{{SEL}}}", "{{namespace}}/{{policy}} current"),
    ], 0, 4, description="What careplane wants and what the target has; a lasting gap is a condition to look at."))
    d = d.with_panel(ts("Scaling gap (desired - current)", "short", [
        (f"careplane_desired_replicas{{{SEL}}} - careplane_current_replicas{{{SEL}}}", "{{namespace}}/{{policy}}"),
    ], 12, 4))
    d = d.with_panel(ts("Anomaly score", "percentunit", [
        (f"careplane_anomaly_score{{{SEL}}}", "{{namespace}}/{{policy}}"),
    ], 0, 12))
    d = d.with_panel(ts("Demand vs forecast (upper)", "reqps", [
        (f"careplane_demand{{{SEL}}}", "{{namespace}}/{{policy}} demand"),
        (f'careplane_forecast_demand{{{SEL},quantile="upper"}}', "{{namespace}}/{{policy}} forecast upper"),
    ], 12, 12))
    d = d.with_panel(ts("Decisions by action (per 5 min)", "short", [
        (f"sum by (action) (increase(careplane_decisions_total{{{SEL}}}[5m]))", "{{action}}"),
    ], 0, 20))
    d = d.with_panel(ts("Reconcile errors by kind (per 5 min)", "short", [
        (f"sum by (kind) (increase(careplane_errors_total{{{SEL}}}[5m])) or on() vector(0)", "{{kind}}"),
    ], 12, 20, description="Conditions careplane reports as errors: metrics, kubernetes, policy, target, internal."))
    return d


def workload_detail() -> dash.Dashboard:
    d = base("careplane / workload detail", "careplane-workload-detail", ["workload"])
    d = d.with_variable(label_var("policy", 'label_values(careplane_desired_replicas{namespace=~"$namespace"}, policy)',
                                  "Policy"))
    d = d.with_variable(label_var("service", 'label_values(http_requests_total{namespace=~"$namespace"}, service)',
                                  "Service (latency/errors)"))
    d = d.annotation(
        dash.AnnotationQuery().name("careplane decisions").datasource(DS).enable(True).icon_color("orange")
        .expr(f"sum by (action) (increase(careplane_decisions_total{{{SEL}}}[1m])) > 0")
    )
    d = d.with_panel(ts("Demand vs forecast band", "reqps", [
        (f"careplane_demand{{{SEL}}}", "demand"),
        (f'careplane_forecast_demand{{{SEL},quantile="lower"}}', "forecast lower"),
        (f'careplane_forecast_demand{{{SEL},quantile="mean"}}', "forecast mean"),
        (f'careplane_forecast_demand{{{SEL},quantile="upper"}}', "forecast upper"),
    ], 0, 0, w=24, description="Measured demand and the forecast over the provisioning window (podStartup + horizon)."))
    d = d.with_panel(ts("Replicas", "short", [
        (f"careplane_desired_replicas{{{SEL}}}", "desired"),
        (f"careplane_current_replicas{{{SEL}}}", "current (spec.replicas)"),
    ], 0, 8))
    d = d.with_panel(ts("Anomaly score", "percentunit", [(f"careplane_anomaly_score{{{SEL}}}", "score")], 12, 8))
    d = d.with_panel(ts("p95 latency", "s", [(
        f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{SVC}}}[$__rate_interval])))",
        "p95")], 0, 16))
    d = d.with_panel(ts("Error ratio (5xx)", "percentunit", [(
        f'sum(rate(http_requests_total{{{SVC},code=~"5.."}}[$__rate_interval])) / '
        f"sum(rate(http_requests_total{{{SVC}}}[$__rate_interval]))", "5xx ratio")], 12, 16))
    d = d.with_panel(ts("Circuit breaker: http1MaxPendingRequests", "short", [
        (f"careplane_circuit_breaker_max_pending{{{SEL}}}", "max pending")], 0, 24))
    d = d.with_panel(ts("Routing weights", "short", [
        (f"careplane_routing_weight{{{SEL}}}", "{{backend}}")], 12, 24))
    return d


def operator_health() -> dash.Dashboard:
    d = base("careplane / operator health", "careplane-operator-health", ["operator"])
    sel = 'namespace=~"$namespace"'
    d = d.with_panel(single_stat("Reconciles/s", f"sum(rate(careplane_reconcile_seconds_count{{{sel}}}[$__rate_interval]))",
                                 0, 0, w=8, unit="ops"))
    d = d.with_panel(single_stat(
        "p99 reconcile latency",
        f"histogram_quantile(0.99, sum by (le) (rate(careplane_reconcile_seconds_bucket{{{sel}}}[$__rate_interval])))",
        8, 0, w=8, unit="s"))
    d = d.with_panel(single_stat("Errors/s",
                                 f"sum(rate(careplane_errors_total{{{sel}}}[$__rate_interval])) or vector(0)",
                                 16, 0, w=8, unit="ops"))
    d = d.with_panel(ts("Reconcile latency", "s", [
        (f"histogram_quantile(0.5, sum by (le) (rate(careplane_reconcile_seconds_bucket{{{sel}}}[$__rate_interval])))", "p50"),
        (f"histogram_quantile(0.99, sum by (le) (rate(careplane_reconcile_seconds_bucket{{{sel}}}[$__rate_interval])))", "p99"),
    ], 0, 4))
    d = d.with_panel(ts("Mean reconcile time by policy (queue pressure)", "s", [(
        f"sum by (policy) (rate(careplane_reconcile_seconds_sum{{{sel}}}[$__rate_interval])) / "
        f"sum by (policy) (rate(careplane_reconcile_seconds_count{{{sel}}}[$__rate_interval]))", "{{policy}}")],
        12, 4, description="Reconcile time per policy; near the policy's intervalSeconds the loop falls behind."))
    d = d.with_panel(ts("Reconciles per policy", "ops", [
        (f"sum by (policy) (rate(careplane_reconcile_seconds_count{{{sel}}}[$__rate_interval]))", "{{policy}}")], 0, 12))
    d = d.with_panel(ts("Errors by kind", "ops", [
        (f"sum by (kind) (rate(careplane_errors_total{{{sel}}}[$__rate_interval])) or on() vector(0)", "{{kind}}")],
        12, 12))
    d = d.with_panel(ts("Decisions by action", "ops", [
        (f"sum by (action) (rate(careplane_decisions_total{{{sel}}}[$__rate_interval]))", "{{action}}")], 0, 20, w=24))
    return d


DASHBOARDS = {
    "fleet-overview.json": fleet_overview,
    "workload-detail.json": workload_detail,
    "operator-health.json": operator_health,
}


def render(builder: dash.Dashboard) -> dict[str, Any]:
    model: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    for i, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = i  # stable panel ids: links and alerts keep pointing at the same panel
    return model


def build_all() -> dict[str, dict[str, Any]]:
    return {name: render(fn()) for name, fn in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else HERE
    for name, model in build_all().items():
        (out / name).write_text(json.dumps(model, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
