"""Fixtures for the operator's integration tests: emulated cluster + real Prometheus + live exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from careplane.sandbox.emulator import EmulatedCluster

NAMESPACES = ("default", "clinical", "billing")


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(namespaces=NAMESPACES) as c:
        yield c


# exporter and prometheus (series carry their own namespace label) come from tests/conftest.py
