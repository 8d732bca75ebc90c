"""Real parts to run careplane against on one machine: an emulated Kubernetes API server and a real Prometheus.

Used by the integration tests, the benchmarks and ``careplane demo``.

Names are loaded lazily (PEP 562): importing one submodule of the sandbox (say,
from a Locust process, which must not import aiohttp/ssl) does not pull in the
emulator's aiohttp server.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ApiError": "careplane.sandbox.emulator",
    "ClusterClient": "careplane.sandbox.emulator",
    "EmulatedCluster": "careplane.sandbox.emulator",
    "LiveExporter": "careplane.sandbox.prometheus",
    "PrometheusServer": "careplane.sandbox.prometheus",
    "ScrapeTarget": "careplane.sandbox.prometheus",
    "Series": "careplane.sandbox.prometheus",
    "demand_history_series": "careplane.sandbox.prometheus",
    "render_openmetrics": "careplane.sandbox.prometheus",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'careplane.sandbox' has no attribute {name!r}")
