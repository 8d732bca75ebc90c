"""Metric outages, a restart mid-reconcile, sharding and standby takeover, with real parts."""

from __future__ import annotations

import time

import pytest
from operator_harness import (
    DEMAND,
    NS,
    SP,
    OperatorProcess,
    SlowProxy,
    add_workload,
    condition,
    install_peering,
    operator_config,
    replicas,
    set_demand,
)

from careplane.operator import settings as cfg
from careplane.sandbox.emulator import EmulatedCluster
from careplane.sandbox.prometheus import LiveExporter, PrometheusServer

pytestmark = pytest.mark.integration


def metrics_available(cluster: EmulatedCluster, name: str) -> dict[str, str]:
    return condition(cluster.get(*SP, name, NS), "MetricsAvailable")


def test_metrics_outage_holds_then_recovers(
    cluster: EmulatedCluster, prometheus: PrometheusServer, exporter: LiveExporter
) -> None:
    set_demand(exporter, "hold", 200.0)  # 4 replicas
    set_demand(exporter, "fallback", 200.0)
    prometheus.wait_for_series(f'{DEMAND}{{service="fallback"}}')
    add_workload(cluster, "hold")
    add_workload(cluster, "fallback", fallback={"onMetricsUnavailable": "replicas", "replicas": 6})
    op = OperatorProcess(operator_config(cluster, prometheus.url, "op-outage")).start()
    try:
        cluster.wait_for(lambda: replicas(cluster, "api-hold") == 4, timeout=15)
        # NaN is unknown, not zero: hold.
        set_demand(exporter, "hold", float("nan"))
        cluster.wait_for(lambda: metrics_available(cluster, "hold").get("reason") == "NoData", timeout=15)
        assert replicas(cluster, "api-hold") == 4
        set_demand(exporter, "hold", 200.0)
        cluster.wait_for(lambda: metrics_available(cluster, "hold").get("status") == "True", timeout=15)
        # Prometheus killed: hold (or the policy's fallback), MetricsAvailable=False, Ready explains.
        prometheus.kill()
        cluster.wait_for(lambda: metrics_available(cluster, "hold").get("reason") == "PrometheusUnavailable",
                         timeout=15)
        key = f"{NS}/hold"
        op.wait_ticks(key, len(op.results(key)) + 2, timeout=15)
        assert replicas(cluster, "api-hold") == 4
        ready = condition(cluster.get(*SP, "hold", NS), "Ready")
        assert ready["status"] == "False" and ready["reason"] == "MetricsUnavailable"
        cluster.wait_for(lambda: replicas(cluster, "api-fallback") == 6, timeout=15)
        # Recovery by itself once Prometheus is back, and decisions follow demand again.
        set_demand(exporter, "hold", 500.0)  # 10 replicas
        prometheus.start()
        cluster.wait_for(lambda: metrics_available(cluster, "hold").get("status") == "True", timeout=20)
        cluster.wait_for(lambda: replicas(cluster, "api-hold") == 10, timeout=15)
    finally:
        op.stop()


def test_slow_prometheus_times_out_without_blocking_others_and_recovers(
    cluster: EmulatedCluster, prometheus: PrometheusServer, exporter: LiveExporter
) -> None:
    """Answers slower than the timeout (1 s in the harness) for one policy's query: that policy holds with
    MetricsAvailable=False PrometheusTimeout; another policy on the same Prometheus keeps reconciling."""
    set_demand(exporter, "slowq", 200.0)  # 4 replicas
    set_demand(exporter, "quick", 200.0)
    prometheus.wait_for_series(f'{DEMAND}{{service="quick"}}')
    add_workload(cluster, "slowq")
    add_workload(cluster, "quick")
    with SlowProxy(prometheus.url, marker='service="slowq"', delay=1.5) as proxy:
        op = OperatorProcess(operator_config(cluster, proxy.url, "op-slow")).start()
        try:
            cluster.wait_for(lambda: replicas(cluster, "api-slowq") == 4 and replicas(cluster, "api-quick") == 4,
                             timeout=15)
            proxy.slow.set()
            cluster.wait_for(lambda: metrics_available(cluster, "slowq").get("reason") == "PrometheusTimeout",
                             timeout=20)
            assert metrics_available(cluster, "slowq")["status"] == "False"
            assert "timeout" in metrics_available(cluster, "slowq")["message"]
            assert proxy.delayed > 0
            # The other policy is not held up: it follows demand, and none of its reconciles lasts as long as
            # the slow policy's query takes to fail (2 attempts x 1 s timeout in the harness) as it would if
            # it waited behind that query.
            quick, since = f"{NS}/quick", len(op.results(f"{NS}/quick"))
            set_demand(exporter, "quick", 400.0)  # 8 replicas
            cluster.wait_for(lambda: replicas(cluster, "api-quick") == 8, timeout=20)
            op.wait_ticks(quick, since + 2, timeout=15)
            assert all(r.seconds < 2.0 for r in op.results(quick)[since:])
            assert replicas(cluster, "api-slowq") == 4  # held, not read as zero demand
            # Prometheus fast again: the slow policy recovers by itself and follows demand.
            set_demand(exporter, "slowq", 500.0)  # 10 replicas
            proxy.slow.clear()
            cluster.wait_for(lambda: metrics_available(cluster, "slowq").get("status") == "True", timeout=20)
            cluster.wait_for(lambda: replicas(cluster, "api-slowq") == 10, timeout=15)
        finally:
            op.stop()


def test_restart_mid_reconcile_gives_the_same_outcome(
    cluster: EmulatedCluster, prometheus: PrometheusServer, exporter: LiveExporter
) -> None:
    set_demand(exporter, "restart", 400.0)  # 8 replicas
    prometheus.wait_for_series(f'{DEMAND}{{service="restart"}}')
    add_workload(cluster, "restart")
    # The first scale write hangs (then fails with 504): the operator is stopped while it hangs.
    fault = cluster.inject_fault(method="PATCH", path_contains="deployments/api-restart/scale", status=0,
                                 times=1, delay_seconds=4.0)
    first = OperatorProcess(operator_config(cluster, prometheus.url, "op-first")).start()
    try:
        cluster.wait_for(lambda: fault.hits, timeout=15)
    finally:
        first.stop()
    second = OperatorProcess(operator_config(cluster, prometheus.url, "op-second")).start()
    try:
        cluster.wait_for(lambda: replicas(cluster, "api-restart") == 8, timeout=15)
        key = f"{NS}/restart"
        second.wait_ticks(key, len(second.results(key)) + 2, timeout=15)
        obj = cluster.get(*SP, "restart", NS)
    finally:
        second.stop()
    # Same outcome as an uninterrupted run: 8 replicas, written exactly once, status and owner current.
    assert replicas(cluster, "api-restart") == 8
    scale_patches = cluster.requests("PATCH", "deployments/api-restart/scale")
    assert len(scale_patches) - len(fault.hits) == 1  # the one that hung failed; exactly one landed
    assert cluster.get("apps/v1", "Deployment", "api-restart", NS)["metadata"]["generation"] == 2
    assert obj["status"]["desiredReplicas"] == 8 and condition(obj, "Ready")["status"] == "True"
    assert obj["metadata"]["annotations"][cfg.RECONCILED_BY_ANNOTATION] == "op-second"
    assert cfg.STATE_ANNOTATION in obj["metadata"]["annotations"]


def test_disjoint_shards_never_both_act(
    cluster: EmulatedCluster, prometheus: PrometheusServer, exporter: LiveExporter
) -> None:
    shards = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}
    for shard, names in shards.items():
        for name in names:
            set_demand(exporter, name, 150.0)  # 3 replicas
            add_workload(cluster, name, labels={"careplane.io/shard": shard})
    prometheus.wait_for_series(f'{DEMAND}{{service="b3"}}')
    configs = {s: operator_config(cluster, prometheus.url, f"op-{s}", standalone=False,
                                  selector=f"careplane.io/shard={s}") for s in shards}
    install_peering(cluster, *{cfg.peering_name(c) for c in configs.values()})
    ops = {s: OperatorProcess(c).start() for s, c in configs.items()}
    try:
        for names in shards.values():
            for name in names:
                cluster.wait_for(lambda name=name: replicas(cluster, f"api-{name}") == 3, timeout=15)
        for s, names in shards.items():
            for name in names:
                ops[s].wait_ticks(f"{NS}/{name}", 2, timeout=15)
    finally:
        for op in ops.values():
            op.stop()
    assert ops["a"].keys() == {f"{NS}/{n}" for n in shards["a"]}
    assert ops["b"].keys() == {f"{NS}/{n}" for n in shards["b"]}
    for s, names in shards.items():
        for name in names:
            annotations = cluster.get(*SP, name, NS)["metadata"]["annotations"]
            assert annotations[cfg.RECONCILED_BY_ANNOTATION] == f"op-{s}"
            # One spec change, one scale write: never fought over.
            assert cluster.get("apps/v1", "Deployment", f"api-{name}", NS)["metadata"]["generation"] == 2
            assert len(cluster.requests("PATCH", f"deployments/api-{name}/scale")) == 1


def test_standby_takes_over_when_the_active_operator_stops(
    cluster: EmulatedCluster, prometheus: PrometheusServer, exporter: LiveExporter
) -> None:
    set_demand(exporter, "ha", 100.0)  # 2 replicas
    prometheus.wait_for_series(f'{DEMAND}{{service="ha"}}')
    add_workload(cluster, "ha")
    install_peering(cluster, "careplane")
    active = OperatorProcess(operator_config(cluster, prometheus.url, "op-active", standalone=False,
                                             priority=200)).start()
    standby = OperatorProcess(operator_config(cluster, prometheus.url, "op-standby", standalone=False,
                                              priority=100)).start()
    key = f"{NS}/ha"
    try:
        try:
            cluster.wait_for(lambda: replicas(cluster, "api-ha") == 2, timeout=15)
            active.wait_ticks(key, len(active.results(key)) + 2, timeout=15)
            # One active, one standby. kopf engages the standby's pause only once it has seen the
            # active's peering record, so a tick may start in between; it must stop before actuating.
            assert all(r.aborted for r in standby.results(key)), standby.results(key)
            annotations = cluster.get(*SP, "ha", NS)["metadata"]["annotations"]
            assert annotations[cfg.RECONCILED_BY_ANNOTATION] == "op-active"
        finally:
            active.stop()
        stopped_at = time.monotonic()
        set_demand(exporter, "ha", 300.0)  # 6 replicas
        standby.wait_ticks(key, 1, timeout=20)
        cluster.wait_for(lambda: replicas(cluster, "api-ha") == 6, timeout=15)
        assert time.monotonic() - stopped_at < 25
        annotations = cluster.get(*SP, "ha", NS)["metadata"]["annotations"]
        assert annotations[cfg.RECONCILED_BY_ANNOTATION] == "op-standby"
    finally:
        standby.stop()
