"""Fixtures for the foundation tests: example policies and a valid base spec to break."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))


def load_examples() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in EXAMPLES:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


@pytest.fixture
def fhir() -> dict[str, Any]:
    """A deep copy of the richest example (every optional section set), to break in tests."""
    doc = yaml.safe_load((ROOT / "crds" / "examples" / "fhir-api.yaml").read_text())
    return copy.deepcopy(doc)
