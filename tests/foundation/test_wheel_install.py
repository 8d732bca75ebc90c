"""A built wheel installs the four folders as one `careplane` namespace and the CLI works from it."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_wheel_installs_and_imports(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    (wheel,) = wheels.glob("careplane-*.whl")
    env_dir = tmp_path / "venv"
    # system site packages provide the dependencies; the wheel itself is installed into the venv
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], check=True
    )
    probe = (
        "import careplane, careplane.operator, careplane.forecasting, careplane.anomaly, operator, sys\n"
        "assert hasattr(operator, 'itemgetter'), 'stdlib operator shadowed'\n"
        "for m in (careplane, careplane.operator, careplane.forecasting, careplane.anomaly):\n"
        "    assert sys.prefix in m.__file__, m.__file__\n"
        "from careplane.forecasting.base import Forecaster\n"
        "from careplane.anomaly.base import Detector\n"
        "print('ok')\n"
    )
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    examples = sorted(str(p) for p in (ROOT / "crds" / "examples").glob("*.yaml"))
    cli = subprocess.run(
        [str(python), "-m", "careplane", "validate", *examples], cwd=tmp_path, capture_output=True, text=True
    )
    assert cli.returncode == 0, cli.stderr
