"""`careplane validate` exit codes and messages, through the real CLI process entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from careplane.cli import app

from .conftest import EXAMPLES, ROOT

runner = CliRunner()


def test_examples_are_valid() -> None:
    result = runner.invoke(app, ["validate", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == 5


def test_broken_spec_exits_1_with_field_path(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "crds/examples/fhir-api.yaml").read_text())
    doc["spec"]["replicas"]["min"] = 100
    other = yaml.safe_load((ROOT / "crds/examples/lab-orders.yaml").read_text())
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([other, doc]))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "document 2" in result.output and "spec.replicas.min" in result.output
    assert "min must be <= max" in result.output
    assert "document 1 (ScalingPolicy lab-orders)" in result.output  # the good one is still reported ok


def test_unreadable_exits_2(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("spec: [unclosed\n")
    assert runner.invoke(app, ["validate", str(bad_yaml)]).exit_code == 2
    assert runner.invoke(app, ["validate", str(tmp_path / "missing.yaml")]).exit_code == 2


def test_other_kinds_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    path.write_text(yaml.safe_dump_all([deployment, *yaml.safe_load_all((ROOT / EXAMPLES[0]).read_text())]))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "skipped (kind Deployment" in result.output


def test_version_and_console_script() -> None:
    out = subprocess.run(["careplane", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "careplane 0.1.0"
    mod = subprocess.run([sys.executable, "-m", "careplane", "--version"], capture_output=True, text=True, check=True)
    assert mod.stdout.strip() == "careplane 0.1.0"
