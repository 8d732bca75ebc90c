"""Fixtures with real parts: an emulated cluster (kubeconfig), a real Prometheus, a tiny live exporter.

Reusable by other test folders through ``pytest_plugins = ["tests.integration.conftest"]`` or by
importing the classes from :mod:`careplane.sandbox` directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from careplane.operator.kube import Kube, RetryPolicy, make_api_client
from careplane.sandbox.emulator import EmulatedCluster

requires_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="Debian's prometheus/promtool are not installed (./run setup installs them)",
)


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    """A fresh emulated API server with careplane's CRDs, namespaces default + clinical + billing."""
    with EmulatedCluster(namespaces=("default", "clinical", "billing")) as c:
        yield c


@pytest.fixture
def api_client(cluster: EmulatedCluster) -> Iterator[k8s.ApiClient]:
    """A kubernetes ApiClient pointed at the emulator through its kubeconfig."""
    client = make_api_client(str(cluster.kubeconfig_path))
    yield client
    client.close()


@pytest.fixture
def kube(api_client: k8s.ApiClient) -> Kube:
    """careplane's Kube handle with fast backoff (tests should not sleep for long)."""
    return Kube(api_client, retry=RetryPolicy(attempts=5, backoff_seconds=0.01, backoff_max_seconds=0.05,
                                              request_timeout_seconds=2.0))


@pytest.fixture
def prometheus_target_labels() -> dict[str, str]:
    """The shared ``prometheus`` fixture (tests/conftest.py) labels the live exporter namespace=clinical."""
    return {"namespace": "clinical", "service": "live"}
