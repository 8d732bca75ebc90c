"""One shortened demo (<= 3 minutes) for the tests of test_sb_demo.py (module scope: it stops right after them).

It is the real thing: Prometheus with backfilled history, the emulated
cluster, the workloads, the operator and a Locust drill of the ``showcase``
scenario, just shorter. Tests read the cluster timeline the orchestrator
sampled and query the still-running Prometheus.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from careplane.sandbox.demo import Sandbox, SandboxConfig, operator_available
from careplane.sandbox.report import Report, build_report

DEMO_SECONDS = 150.0
LEAD_SECONDS = 15.0

requires_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="Debian's prometheus/promtool are not installed (./run setup installs them)",
)


@dataclass
class DemoRun:
    sandbox: Sandbox
    report: Report
    report_dir: Path


@pytest.fixture(scope="module")
def shortened_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (./run setup installs it)")
    assert operator_available(), "the careplane operator is not installed"
    root = tmp_path_factory.mktemp("demo")
    config = SandboxConfig(scenario="showcase", duration=DEMO_SECONDS, lead_seconds=LEAD_SECONDS, history_days=4.0,
                           workdir=root / "sandbox")
    with Sandbox(config) as sb:
        sb.run(sample_every=1.0)
        assert sb.prometheus is not None
        report = build_report(sb.prometheus.url, sb.policies, sb.scenario, sb.start_at, DEMO_SECONDS, root / "report",
                              timeline=sb.timeline_json(), events=sb.drill.events() if sb.drill else [])
        sb.say("report written")
        yield DemoRun(sb, report, root / "report")
