"""Run mypy over the installed layout of careplane.

Why this wrapper: the source folders ``operator/``, ``forecasting/`` and
``anomaly/`` install as ``careplane.operator`` and so on (the stdlib owns the
name ``operator``), but mypy names modules after folders. So we mirror the
installed layout with symlinks under ``build/typecheck`` and check that.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPING = {
    "careplane": "careplane",
    "operator": "careplane/operator",
    "forecasting": "careplane/forecasting",
    "anomaly": "careplane/anomaly",
}


def mirror(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    for source, target in MAPPING.items():
        for path in (ROOT / source).rglob("*.py"):
            link = dest / target / path.relative_to(ROOT / source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)


def mirror_benchmarks(dest: Path) -> Path:
    """Benchmarks are scripts, but mypy must see them as a package: ``benchmarks/operator.py``
    checked as a loose file would be taken for the stdlib module ``operator``."""
    target = dest / "benchmarks"
    target.mkdir(parents=True, exist_ok=True)
    (target / "__init__.py").write_text("")
    for path in (ROOT / "benchmarks").glob("*.py"):
        (target / path.name).symlink_to(path)
    return target


def main() -> int:
    dest = ROOT / "build" / "typecheck"
    mirror(dest)
    extra = [str(mirror_benchmarks(dest))]
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        str(dest / "careplane"),
        *extra,
    ]
    return subprocess.call(cmd, cwd=dest)


if __name__ == "__main__":
    sys.exit(main())
