"""``careplane operator`` as a user runs it: a subprocess against the emulated cluster and a real Prometheus."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from operator_harness import condition, deployment, scaling_policy
from typer.testing import CliRunner

from careplane.cli.app import app
from careplane.sandbox.emulator import EmulatedCluster
from careplane.sandbox.prometheus import LiveExporter, PrometheusServer, free_port

NS = "clinical"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prometheus-url", "prometheus:9090"], "must start with http"),
        (["--prometheus-url", "http://p", "--kubeconfig", "/no/such/file"], "no such file"),
        (["--prometheus-url", "http://p", "--namespace", "a", "--all-namespaces"], "exclude each other"),
        (["--prometheus-url", "http://p", "--selector", "a b c"], "cannot parse"),
        (["--prometheus-url", "http://p"], "not in a cluster"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(app, ["operator", *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.integration
def test_careplane_operator_subprocess(
    cluster: EmulatedCluster, prometheus: PrometheusServer, exporter: LiveExporter, tmp_path: Path
) -> None:
    exporter.set_gauge("careplane_test_demand", {"service": "cli", "namespace": NS}, 250.0)  # 5 replicas
    prometheus.wait_for_series('careplane_test_demand{service="cli"}')
    cluster.create(deployment("api-cli", NS, replicas=3))
    cluster.create(scaling_policy("cli", NS, "api-cli", 'sum(careplane_test_demand{service="cli"})'))
    metrics_port, health_port = free_port(), free_port()
    log = (tmp_path / "operator.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from careplane.cli import main; main()", "operator", "--kubeconfig", str(cluster.kubeconfig_path),
         "--prometheus-url", prometheus.url, "--namespace", NS, "--standalone",
         "--metrics-port", str(metrics_port), "--liveness", f"http://127.0.0.1:{health_port}/healthz"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "POD_NAME": "cli-operator"},
    )
    try:
        cluster.wait_for(lambda: cluster.scale("apps/v1", "Deployment", "api-cli", NS) == 5, timeout=40)
        obj = cluster.wait_for(lambda: (o := cluster.get("careplane.io/v1alpha1", "ScalingPolicy", "cli", NS))
                               and condition(o, "Ready").get("status") == "True" and o, timeout=15)
        assert obj["metadata"]["annotations"]["careplane.io/reconciled-by"] == "cli-operator"
        health = urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=5)
        assert health.status == 200
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'careplane_desired_replicas{namespace="clinical",policy="cli"} 5.0' in body
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "operator.log").read_text()[-3000:]
