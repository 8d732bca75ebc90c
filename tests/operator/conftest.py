"""Fixtures for the operator's integration tests: emulated cluster + real Prometheus + live exporter."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from careplane.sandbox.emulator import EmulatedCluster
from careplane.sandbox.prometheus import LiveExporter, PrometheusServer, ScrapeTarget

NAMESPACES = ("default", "clinical", "billing")


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(namespaces=NAMESPACES) as c:
        yield c


@pytest.fixture
def exporter() -> Iterator[LiveExporter]:
    with LiveExporter() as e:
        yield e


@pytest.fixture
def prometheus(exporter: LiveExporter) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the live exporter every 0.5 s (series carry their own namespace label)."""
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (./run setup installs it)")
    with PrometheusServer([ScrapeTarget(exporter.address, {})], scrape_interval=0.5) as p:
        yield p
