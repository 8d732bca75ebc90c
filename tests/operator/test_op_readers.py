"""The operator's two Prometheus paths against a real Prometheus: the async per-interval reader
(confined, timeouts told apart) and the unconfined mode that whole-sandbox reports use."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from operator_harness import SlowProxy

from careplane.operator.prometheus import PrometheusConfig, PrometheusReader
from careplane.operator.prometheus_async import AsyncPrometheusReader, PrometheusTimeout
from careplane.operator.promql import QueryRejected
from careplane.sandbox.prometheus import LiveExporter, PrometheusServer
from careplane.sandbox.report import PromReader

pytestmark = pytest.mark.integration
METRIC = "careplane_reader_demand"
GAP = "careplane_reader_gap"


def _load(exporter: LiveExporter, prometheus: PrometheusServer) -> None:
    exporter.set_gauge(METRIC, {"service": "api", "namespace": "clinical"}, 120.0)
    exporter.set_gauge(METRIC, {"service": "api", "namespace": "billing"}, 30.0)
    exporter.set_gauge(GAP, {"service": "gap", "namespace": "clinical"}, float("nan"))
    prometheus.wait_for_series(f'{METRIC}{{namespace="billing"}}')


def test_async_reader_is_confined_and_names_timeouts_and_reports_read_unconfined(
    exporter: LiveExporter, prometheus: PrometheusServer
) -> None:
    _load(exporter, prometheus)

    async def run(url: str, timeout: float = 5.0) -> AsyncPrometheusReader:
        return AsyncPrometheusReader(PrometheusConfig(url=url, timeout_seconds=timeout, retries=1,
                                                      backoff_seconds=0.01))

    async def scenario() -> None:
        reader = await run(prometheus.url)
        try:
            # the same query in two namespaces sees only its own
            assert await reader.instant(f"sum({METRIC})", "clinical") == 120.0
            assert await reader.instant(f"sum({METRIC})", "billing") == 30.0
            assert await reader.instant(f"sum({GAP})", "clinical") is None  # NaN is unknown, not zero
            assert await reader.instant_by(f'sum by (service) ({{__name__=~"{METRIC}|{GAP}"}})', "clinical",
                                           "service") == {"api": 120.0, "gap": None}
            with pytest.raises(QueryRejected):
                await reader.instant(f'sum({METRIC}{{namespace="billing"}})', "clinical")
            # many confined queries at once on one session
            values = await asyncio.gather(*(reader.instant(f"sum({METRIC})", "clinical") for _ in range(50)))
            assert values == [120.0] * 50
        finally:
            await reader.close()
        with SlowProxy(prometheus.url, marker=METRIC, delay=0.8) as proxy:
            proxy.slow.set()
            slow = await run(proxy.url, timeout=0.3)
            try:
                with pytest.raises(PrometheusTimeout, match="timeout"):
                    await slow.instant(f"sum({METRIC})", "clinical")
                assert slow.attempts == 2  # retried once
                proxy.slow.clear()
                assert await slow.instant(f"sum({METRIC})", "clinical") == 120.0
            finally:
                await slow.close()

    asyncio.run(scenario())
    unconfined_mode_reads_the_whole_sandbox_and_is_explicit(prometheus)


def unconfined_mode_reads_the_whole_sandbox_and_is_explicit(prometheus: PrometheusServer) -> None:
    """(Part of the test above, sharing its Prometheus.)"""
    end = time.time()
    config = PrometheusConfig(url=prometheus.url)
    with pytest.raises(ValueError, match="namespace"):
        PrometheusReader(config).range_series(f"sum({METRIC})", None, end - 5, end, 1.0)
    series = PrometheusReader.unconfined(config).range_series(
        f"sum by (namespace) ({METRIC}{{service=\"api\"}})", None, end - 5, end, 1.0)
    assert {labels["namespace"] for labels, _, _ in series} == {"clinical", "billing"}
    # a namespace still confines, even in unconfined mode
    confined = PrometheusReader.unconfined(config).range_series(f"sum({METRIC})", "billing", end - 5, end, 1.0)
    assert len(confined) == 1 and confined[0][2][-1] == 30.0
    # the report's reader is that mode: its sum spans both namespaces, on the caller's exact grid
    grid, values = PromReader(prometheus.url).one(f'{METRIC}{{service="api"}}', end - 5, end, 1.0)
    assert grid[0] == end - 5 and values[-1] == 150.0
    with pytest.raises(ValueError, match="query failed"):
        PromReader(prometheus.url).range("sum(", end - 5, end, 1.0)
    assert not math.isnan(values[-1])
