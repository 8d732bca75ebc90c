"""Every source folder that is a package is shipped in the wheel under its careplane.* name."""

from __future__ import annotations

import tomllib

from .conftest import ROOT

ROOTS = {"careplane": "careplane", "operator": "careplane.operator",
         "forecasting": "careplane.forecasting", "anomaly": "careplane.anomaly"}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for folder, name in ROOTS.items():
        assert config["package-dir"][name] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - found == set(), "these packages have no folder with an __init__.py"
