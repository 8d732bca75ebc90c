"""The real Prometheus fixture and careplane's reader against it (no canned JSON)."""

from __future__ import annotations

import http.server
import math
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from careplane.operator import prometheus as reader_module
from careplane.operator.prometheus import (
    PrometheusConfig,
    PrometheusReader,
    PrometheusUnavailable,
    QueryFailed,
)
from careplane.operator.promql import QueryRejected
from careplane.sandbox.prometheus import (
    LiveExporter,
    PrometheusServer,
    Series,
    demand_history_series,
    free_port,
    render_openmetrics,
)

from .conftest import requires_prometheus

pytestmark = [pytest.mark.integration, requires_prometheus]

NOW = time.time()
STEP = 60.0
DAYS = 2  # with the reader's chunk size lowered to 1,000 points, a range read takes several chunks


def seasonal(t: np.ndarray) -> np.ndarray:
    return 50 + 30 * np.sin(2 * np.pi * t / 86400)


@pytest.fixture(scope="module")
def history_prometheus() -> Iterator[PrometheusServer]:
    """Prometheus with 15 days of per-minute demand for clinical/fhir-api (a gap in it) and billing/fhir-api."""
    end = math.floor(NOW / STEP) * STEP - 10 * STEP
    times = np.arange(end - DAYS * 86400, end + 1, STEP)
    rates = seasonal(times)
    rates[100:160] = np.nan  # an hour of missing data
    series = [
        demand_history_series(times.tolist(), rates.tolist(), labels={"namespace": "clinical", "service": "fhir-api"}),
        demand_history_series(times.tolist(), (rates * 10).tolist(), labels={"namespace": "billing", "service": "fhir-api"}),
        Series("queue_depth", {"namespace": "clinical", "service": "fhir-api"},
               [(float(t), float("nan") if i % 2 else 1.0) for i, t in enumerate(times[-5:])], keep_nan=True),
    ]
    with PrometheusServer(scrape_interval=1.0) as p:
        p.backfill(series)
        yield p


def test_openmetrics_rendering_skips_nan_and_names_counters() -> None:
    text = render_openmetrics([Series("req_total", {"a": 'x"y'}, [(1.0, 2.0), (2.0, float("nan")), (3.0, 4.0)], "counter")])
    lines = text.splitlines()
    assert lines[0] == "# TYPE req counter"
    assert lines[1] == 'req_total{a="x\\"y"} 2.0 1.000'
    assert len(lines) == 4 and lines[-1] == "# EOF"


def test_backfilled_history_reads_back_through_the_reader(history_prometheus: PrometheusServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "MAX_POINTS_PER_QUERY", 1000)
    reader = PrometheusReader(PrometheusConfig(history_prometheus.url))
    end = math.floor(NOW / STEP) * STEP - 20 * STEP
    start = end - DAYS * 86400 + 3600
    result = reader.range('sum(rate(http_requests_total{service="fhir-api"}[5m]))', "clinical", start, end, STEP)
    assert len(result.times) > 2_000  # several chunks of at most 1,000 points
    assert reader.attempts == math.ceil(len(result.times) / 1000)
    gap_start = end + 10 * STEP - DAYS * 86400 + 100 * STEP  # rows 100..159 of the backfill are missing
    near_gap = np.abs(result.times - (gap_start + 30 * STEP)) < 45 * STEP
    ok = ~np.isnan(result.values)
    assert ok[~near_gap].all()
    expected = seasonal(result.times)
    assert np.max(np.abs(result.values - expected)[ok & ~near_gap]) < 1.0  # rate over 5 m of a sine: close
    assert 'namespace="clinical"' in result.query
    # the gap stays a gap (NaN), never zero
    gap_end = end - DAYS * 86400 + 160 * STEP
    inside = reader.instant('sum(rate(http_requests_total{service="fhir-api"}[2m]))', "clinical", at=gap_end - 20 * STEP)
    assert inside is None


def test_instant_values_missing_and_nan(history_prometheus: PrometheusServer) -> None:
    reader = PrometheusReader(PrometheusConfig(history_prometheus.url))
    at = math.floor(NOW / STEP) * STEP - 60 * STEP
    clinical = reader.instant('sum(rate(http_requests_total{service="fhir-api"}[5m]))', "clinical", at=at)
    billing = reader.instant('sum(rate(http_requests_total{service="fhir-api"}[5m]))', "billing", at=at)
    assert clinical is not None and billing is not None
    assert billing == pytest.approx(10 * clinical, rel=1e-6)  # each namespace sees only its own series
    assert reader.instant('sum(rate(http_requests_total{service="nope"}[5m]))', "clinical", at=at) is None
    reading = reader.read('sum(rate(http_requests_total{service="nope"}[5m]))', "clinical", at=at)
    assert reading.status == "no-data" and reading.value is None
    nan_at = math.floor(NOW / STEP) * STEP - 10 * STEP - 3 * STEP  # an odd sample of queue_depth: NaN
    assert reader.instant("max(queue_depth)", "clinical", at=nan_at) is None
    assert reader.instant("max(queue_depth)", "clinical", at=nan_at - STEP) == 1.0
    with pytest.raises(QueryFailed, match="2 series"):
        reader.instant('sum by (service) (rate(http_requests_total[5m])) or vector(1)', "clinical", at=at)


def test_bad_query_is_not_retried_and_cross_namespace_is_rejected(history_prometheus: PrometheusServer) -> None:
    reader = PrometheusReader(PrometheusConfig(history_prometheus.url, retries=3), sleep=lambda s: None)
    with pytest.raises(QueryFailed, match="HTTP 422"):  # Prometheus refuses it at evaluation
        reader.instant('sum(label_replace(rate(http_requests_total[5m]), "a-b", "$1", "service", "(.*)"))', "clinical")
    assert reader.attempts == 1
    with pytest.raises(QueryRejected, match="billing"):
        reader.instant('sum(rate(http_requests_total{namespace="billing"}[5m]))', "clinical")
    assert reader.read('sum(x{namespace=~".+"})', "clinical").status == "rejected"


def test_unreachable_is_told_apart_and_retried_with_backoff() -> None:
    delays: list[float] = []
    reader = PrometheusReader(PrometheusConfig(f"http://127.0.0.1:{free_port()}", retries=3, backoff_seconds=0.1,
                                               timeout_seconds=0.5), sleep=delays.append)
    with pytest.raises(PrometheusUnavailable, match="4 attempts"):
        reader.instant("sum(up)", "clinical")
    assert delays == [0.1, 0.2, 0.4]
    reading = reader.read("sum(up)", "clinical")
    assert reading.status == "unreachable" and not reading.available
    assert not reader.healthy()


def test_live_scrape_kill_and_recover(exporter: LiveExporter, prometheus: PrometheusServer) -> None:
    exporter.set_rate("http_requests_total", {"code": "200"}, 40.0)
    exporter.set_gauge("inflight", {}, 3.0)
    prometheus.wait_for_series("inflight")
    series = prometheus.wait_for_series('http_requests_total{code="200"}')
    assert series[0]["metric"]["namespace"] == "clinical" and series[0]["metric"]["service"] == "live"
    reader = PrometheusReader(PrometheusConfig(prometheus.url, retries=1, backoff_seconds=0.05, timeout_seconds=1))
    time.sleep(3)
    rate = reader.instant('sum(rate(http_requests_total{service="live"}[3s]))', "clinical")
    assert rate is not None and 25 < rate < 55
    prometheus.kill()  # an outage
    assert reader.read("sum(inflight)", "clinical").status == "unreachable"
    prometheus.start()  # same port, same storage
    assert reader.read("sum(inflight)", "clinical").value == 3.0


def test_no_process_left_behind_even_on_exceptions() -> None:
    server = PrometheusServer()
    with pytest.raises(RuntimeError, match="boom"), server:
        pid = server.pid or 0
        assert pid > 0
        raise RuntimeError("boom")
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class _TokenProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to Prometheus only with the right bearer token (stands in for an authenticating proxy)."""

    upstream = ""

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        if auth != "Bearer s3cret":
            self.send_response(401)
            self.end_headers()
            return
        resp = requests.get(self.upstream + self.path, timeout=5)
        self.send_response(resp.status_code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(resp.content)

    def log_message(self, *args: object) -> None:
        pass


def test_bearer_token_inline_and_from_file(history_prometheus: PrometheusServer, tmp_path: Path) -> None:
    _TokenProxy.upstream = history_prometheus.url
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenProxy)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        query = 'sum(rate(http_requests_total{service="fhir-api"}[5m]))'
        at = NOW - 3600
        assert PrometheusReader(PrometheusConfig(url, bearer_token="s3cret")).instant(query, "clinical", at=at)
        token_file = os.path.join(tmp_path, "token")
        with open(token_file, "w") as f:
            f.write("s3cret\n")
        assert PrometheusReader(PrometheusConfig(url, bearer_token_file=token_file)).instant(query, "clinical", at=at)
        with pytest.raises(QueryFailed, match="401"):
            PrometheusReader(PrometheusConfig(url, bearer_token="wrong")).instant(query, "clinical", at=at)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make a test certificate")
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_ca_file_and_insecure(history_prometheus: PrometheusServer, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    _TokenProxy.upstream = history_prometheus.url
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenProxy)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}"
        query = 'sum(rate(http_requests_total{service="fhir-api"}[5m]))'
        at = NOW - 3600
        with_ca = PrometheusReader(PrometheusConfig(url, bearer_token="s3cret", ca_file=str(cert)))
        assert with_ca.instant(query, "clinical", at=at)
        insecure = PrometheusReader(PrometheusConfig(url, bearer_token="s3cret", insecure=True))
        assert insecure.instant(query, "clinical", at=at)
        untrusted = PrometheusReader(PrometheusConfig(url, bearer_token="s3cret", retries=0))
        with pytest.raises(PrometheusUnavailable, match=r"SSL|certificate"):
            untrusted.instant(query, "clinical", at=at)
    finally:
        httpd.shutdown()
        httpd.server_close()
