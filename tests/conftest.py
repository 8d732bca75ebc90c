"""Fixtures shared by every test folder that needs a real Prometheus.

``prometheus`` is the Debian server scraping ``exporter`` (a tiny live exporter) every 0.5 s;
a folder sets the scrape target's labels by overriding ``prometheus_target_labels``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from careplane.sandbox.prometheus import LiveExporter, PrometheusServer, ScrapeTarget


@pytest.fixture
def exporter() -> Iterator[LiveExporter]:
    with LiveExporter() as e:
        yield e


@pytest.fixture
def prometheus_target_labels() -> dict[str, str]:
    """Labels Prometheus attaches to the exporter's series (none: the series carry their own)."""
    return {}


@pytest.fixture
def prometheus(exporter: LiveExporter, prometheus_target_labels: dict[str, str]) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping ``exporter`` every 0.5 s."""
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (./run setup installs it)")
    with PrometheusServer([ScrapeTarget(exporter.address, prometheus_target_labels)], scrape_interval=0.5) as p:
        yield p
