"""``careplane backtest``: its exact interface, outputs and bad-input handling (exit 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from careplane.cli.app import app

from .conftest import policy_doc

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["backtest", *args])
    return result.exit_code, result.stdout, result.stderr


def test_all_controllers_timeline_metrics_and_report(files: dict[str, Path]) -> None:
    out = files["dir"] / "timeline.csv"
    report = files["dir"] / "report"
    code, stdout, _ = run(str(files["trace"]), "--policy", str(files["policy"]), "--out", str(out),
                          "--controller", "all", "--report", str(report))
    assert code == 0, stdout
    metrics = json.loads(stdout)
    assert set(metrics) == {"careplane", "hpa", "oracle"}
    for m in metrics.values():
        assert set(m) == {"violation_pct", "excess_pct", "replica_hours", "cost_vs_oracle", "changes"}
    assert metrics["oracle"]["violation_pct"] == 0 and metrics["oracle"]["cost_vs_oracle"] == 1.0
    rows = list(csv.reader(out.open()))
    assert rows[0][:4] == ["timestamp", "demand", "desired_replicas", "ready_replicas"]
    assert "hpa_desired_replicas" in rows[0] and "oracle_ready_replicas" in rows[0]
    assert len(rows) == 1 + 720
    assert rows[201][1] == ""  # a gap stays a gap
    assert (report / "index.html").exists()
    assert (report / "timeline.png").stat().st_size > 10_000
    assert (report / "cost_vs_violation.png").stat().st_size > 10_000


def test_single_controller_writes_the_four_columns(files: dict[str, Path]) -> None:
    out = files["dir"] / "hpa.csv"
    code, stdout, _ = run(str(files["trace"]), "--policy", str(files["policy"]), "--out", str(out), "--controller", "hpa")
    assert code == 0
    assert list(json.loads(stdout)) == ["hpa"]
    assert next(csv.reader(out.open())) == ["timestamp", "demand", "desired_replicas", "ready_replicas"]


def test_bad_input_exits_2_with_one_clear_line(files: dict[str, Path], tmp_path: Path) -> None:
    out = str(tmp_path / "t.csv")
    bad_policy = tmp_path / "bad.yaml"
    doc = policy_doc()
    doc["spec"]["demand"]["perReplicaCapacity"] = -1
    bad_policy.write_text(yaml.safe_dump(doc))
    code, _, err = run(str(files["trace"]), "--policy", str(bad_policy), "--out", out)
    assert code == 2 and "perReplicaCapacity" in err
    code, _, err = run(str(tmp_path / "missing.csv"), "--policy", str(files["policy"]), "--out", out)
    assert code == 2 and "no such file" in err
    code, _, err = run(str(files["trace"]), "--policy", str(files["policy"]), "--out", out, "--controller", "keda")
    assert code == 2 and "--controller" in err
    code, _, err = run(str(files["trace"]), "--policy", str(files["policy"]), "--out", out, "--aggregate", "0")
    assert code == 2 and "--aggregate" in err
    one_row = tmp_path / "one.csv"
    one_row.write_text("timestamp,value\n0,5\n0,6\n")
    code, _, err = run(str(one_row), "--policy", str(files["policy"]), "--out", out)
    assert code == 2 and "row 3" in err
    code, _, err = run(str(files["trace"]), "--policy", str(files["policy"]), "--out", out, "--value-column", "rps")
    assert code == 2 and "--value-column" in err
