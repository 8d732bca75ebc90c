"""Per-interval instant queries over one shared aiohttp session (the operator's hot path).

Why not prometheus-api-client here, as for range queries: it is built on
``requests``, which blocks, so each of a thousand policies' queries per
interval needed a worker thread; with dozens of threads the GIL hand-offs
starved kopf's event loop and a reconcile's p99 grew to seconds (benchmarks/
operator.py, 1,000 policies). aiohttp is already installed with kopf: one
session with a bounded number of connections evaluates many *confined*
queries concurrently without a thread per call. Every query is still one
policy's own query with its namespace matcher injected
(:func:`careplane.operator.promql.confine`): nothing is batched across
policies, so tenant confinement is exactly as for the synchronous reader.

Same promises as :class:`careplane.operator.prometheus.PrometheusReader`:
missing data is ``None``; 4xx (not 408/429) is :class:`QueryFailed` and not
retried; connection errors, timeouts and 5xx are retried with exponential
backoff and then raised as :class:`PrometheusUnavailable`, or as
:class:`PrometheusTimeout` when the last attempt timed out, so the status can
say that Prometheus was too slow rather than down.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp

from careplane.operator.kube_async import request_timeout
from careplane.operator.prometheus import (
    PrometheusConfig,
    PrometheusReader,
    PrometheusUnavailable,
    QueryFailed,
    _finite,
    _short,
)
from careplane.operator.promql import confine

MAX_CONCURRENT_QUERIES = 64  # in flight at once; more would only queue inside Prometheus


class PrometheusTimeout(PrometheusUnavailable):
    """Prometheus did not answer within the configured timeout (after the retries)."""


class AsyncPrometheusReader:
    """Confined instant queries (``instant``, ``instant_by``) with retries, on one aiohttp session."""

    def __init__(self, config: PrometheusConfig, *, max_concurrent: int = MAX_CONCURRENT_QUERIES) -> None:
        self.config = config
        self.url = config.url.rstrip("/")
        self.max_concurrent = max_concurrent
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.attempts = 0

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.config.insecure:
            return False
        if self.config.ca_file:
            return ssl.create_default_context(cafile=self.config.ca_file)
        return True

    def _session_now(self) -> aiohttp.ClientSession:
        """The session of the running loop (created lazily: aiohttp binds a session to one loop)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self.max_concurrent, ssl=self._ssl())
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=request_timeout(self.config.timeout_seconds)
            )
            self._loop = loop
        return self._session

    def _headers(self) -> dict[str, str]:
        token = self.config.bearer_token
        if self.config.bearer_token_file:  # re-read each time: rotated service-account tokens
            token = Path(self.config.bearer_token_file).read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _query(self, query: str) -> Any:
        """POST /api/v1/query (a form body: long queries do not hit URL limits) -> ``data.result``."""
        session = self._session_now()
        delay = self.config.backoff_seconds
        last = ""
        timed_out = False
        for attempt in range(self.config.retries + 1):
            if attempt:
                await asyncio.sleep(min(delay, self.config.backoff_max_seconds))
                delay *= 2
            self.attempts += 1
            try:
                async with session.post(f"{self.url}/api/v1/query", data={"query": query},
                                        headers=self._headers()) as resp:
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        text = await resp.text()
                        raise QueryFailed(f"Prometheus refused the query (HTTP {resp.status}): {_short(text)}")
                    if resp.status != 200:
                        last, timed_out = f"HTTP {resp.status}: {_short(await resp.text())}", False
                        continue
                    body = await resp.json(content_type=None)
            except TimeoutError:
                last, timed_out = f"no answer within {self.config.timeout_seconds:g} s (timeout)", True
                continue
            except (aiohttp.ClientError, ValueError) as exc:
                last, timed_out = f"{type(exc).__name__}: {_short(str(exc))}", False
                continue
            if not isinstance(body, dict) or body.get("status") != "success":
                last, timed_out = f"not a Prometheus answer: {_short(str(body))}", False
                continue
            return (body.get("data") or {}).get("result")
        error = PrometheusTimeout if timed_out else PrometheusUnavailable
        raise error(f"Prometheus at {self.config.url} unavailable after {self.config.retries + 1} attempts: {last}")

    async def instant(self, query: str, namespace: str) -> float | None:
        """The confined query's single value now; None when empty/NaN/Inf. Raises QueryRejected and the above."""
        confined = confine(query, namespace)
        data = await self._query(confined)
        if isinstance(data, list) and data and isinstance(data[0], str | int | float):  # a scalar: [time, "v"]
            return _finite(data[1]) if len(data) == 2 else None
        return PrometheusReader._single_value(data, confined)

    async def instant_by(self, query: str, namespace: str, label: str) -> dict[str, float | None]:
        """One value per value of ``label`` (e.g. per backend); missing values are None."""
        data = await self._query(confine(query, namespace))
        out: dict[str, float | None] = {}
        for series in data or []:
            if isinstance(series, dict) and (key := (series.get("metric") or {}).get(label)) is not None:
                out[key] = _finite((series.get("value") or [None, None])[1])
        return out

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


__all__ = ["AsyncPrometheusReader", "PrometheusTimeout", "PrometheusUnavailable", "QueryFailed"]
