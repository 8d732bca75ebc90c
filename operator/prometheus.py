"""Reading a policy's metrics from Prometheus (prometheus-api-client), confined to its namespace.

Two promises the decision core depends on:

* missing data is ``None`` (instant) or NaN (range), never 0: an empty result,
  NaN, ±Inf or a stale series all mean *unknown*;
* "Prometheus is unreachable" (connection refused, timeouts, 5xx after the
  retries) is told apart from "the query returned no data" and from "the
  query is bad" (4xx: not retried), so that the operator can set
  ``MetricsAvailable`` with the right reason.

Every query of the operator goes through :func:`careplane.operator.promql.confine`
first. The one exception is explicit: a reader built with ``unconfined=True``
(:meth:`PrometheusReader.unconfined`) runs queries as written. That mode is for
whole-sandbox reports (``careplane.sandbox.report``), which read every
namespace of a sandbox on purpose; the operator never builds one, so a
policy's reads stay confined to its namespace.
Retries use exponential backoff (``backoff_seconds * 2**attempt``, capped);
the library's own urllib3 retries are switched off so that the count and the
delays are ours and visible. Bearer token (inline or file, re-read on each
request so rotated service-account tokens work), CA bundle and insecure TLS
are supported.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from careplane.operator.promql import QueryRejected, confine

MAX_POINTS_PER_QUERY = 10_000  # Prometheus refuses more than 11,000 points per series in one range query


class MetricsError(Exception):
    """Base of the reader's errors."""


class PrometheusUnavailable(MetricsError):
    """Prometheus could not be reached or kept failing (connection, timeout, 5xx) after the retries."""


class QueryFailed(MetricsError):
    """Prometheus answered but refused the query (4xx, e.g. a syntax error), or its shape is unusable."""


@dataclass(frozen=True)
class PrometheusConfig:
    url: str
    bearer_token: str | None = None
    bearer_token_file: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    timeout_seconds: float = 5.0
    retries: int = 3  # attempts after the first one
    backoff_seconds: float = 0.2
    backoff_max_seconds: float = 5.0


Status = Literal["ok", "no-data", "unreachable", "rejected", "failed"]


@dataclass(frozen=True)
class Reading:
    """One instant reading with why it may be missing (for the MetricsAvailable condition)."""

    value: float | None
    status: Status
    message: str = ""
    query: str = ""

    @property
    def available(self) -> bool:
        return self.status == "ok"


@dataclass
class RangeResult:
    """Samples on a regular grid; NaN where Prometheus had no value."""

    times: np.ndarray
    values: np.ndarray
    query: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def _finite(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


_STATUS_RE = re.compile(r"HTTP Status Code (\d+)")


class PrometheusReader:
    """Instant and range queries of confined PromQL with retries; see the module docstring."""

    def __init__(self, config: PrometheusConfig, *, sleep: Callable[[float], None] = time.sleep,
                 unconfined: bool = False) -> None:
        self.config = config
        self.confined = not unconfined
        self._sleep = sleep
        session = requests.Session()
        if config.ca_file:
            session.verify = config.ca_file
        self._client = PrometheusConnect(
            url=config.url.rstrip("/"), disable_ssl=config.insecure, session=session,
            retry=Retry(total=0, raise_on_status=False), timeout=config.timeout_seconds,  # type: ignore[arg-type,unused-ignore]
        )
        if config.insecure:
            session.verify = False
        self.attempts = 0  # total HTTP attempts made (for tests and telemetry)

    @classmethod
    def unconfined(cls, config: PrometheusConfig) -> PrometheusReader:
        """A reader that runs queries as written (no namespace matcher): whole-sandbox reports only."""
        return cls(config, unconfined=True)

    # ---- plumbing ----------------------------------------------------------------------

    def _scoped(self, query: str, namespace: str | None) -> str:
        """The query confined to ``namespace``; as written only in unconfined mode with no namespace."""
        if namespace is None:
            if self.confined:
                raise ValueError("a confined reader needs the policy's namespace")
            return query
        return confine(query, namespace)

    def _headers(self) -> dict[str, str] | None:
        token = self.config.bearer_token
        if self.config.bearer_token_file:
            token = Path(self.config.bearer_token_file).read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else None

    def _call(self, fn: Callable[[], Any]) -> Any:
        delay = self.config.backoff_seconds
        last: Exception | None = None
        for attempt in range(self.config.retries + 1):
            if attempt:
                self._sleep(min(delay, self.config.backoff_max_seconds))
                delay *= 2
            self.attempts += 1
            self._client.headers = self._headers()
            try:
                return fn()
            except (requests.ConnectionError, requests.Timeout) as e:
                last = e
            except PrometheusApiClientException as e:
                m = _STATUS_RE.search(str(e))
                code = int(m.group(1)) if m else 0
                if 400 <= code < 500 and code not in (408, 429):
                    raise QueryFailed(f"Prometheus refused the query (HTTP {code}): {_short(str(e))}") from None
                last = e
            except (ValueError, KeyError) as e:  # not JSON / not a Prometheus answer
                last = e
        raise PrometheusUnavailable(
            f"Prometheus at {self.config.url} unavailable after {self.config.retries + 1} attempts: {_short(str(last))}"
        )

    # ---- queries -----------------------------------------------------------------------

    def instant(self, query: str, namespace: str | None, at: float | None = None) -> float | None:
        """The query's single value now (or at ``at``); None when empty/NaN/Inf. Raises on errors."""
        confined = self._scoped(query, namespace)
        params = {"time": f"{at:.3f}"} if at is not None else None
        result = self._call(lambda: self._client.custom_query(confined, params=params))
        return self._single_value(result, confined)

    @staticmethod
    def _single_value(result: Any, query: str) -> float | None:
        if isinstance(result, list):
            if not result:
                return None
            if len(result) > 1:
                raise QueryFailed(f"{query!r} returned {len(result)} series; aggregate it to one (e.g. sum(...))")
            return _finite(result[0].get("value", [None, None])[1])
        if isinstance(result, list | tuple) and len(result) == 2:  # scalar result
            return _finite(result[1])
        return None

    def instant_by(self, query: str, namespace: str | None, label: str, at: float | None = None) -> dict[str, float | None]:
        """One value per value of ``label`` (e.g. per backend); missing values are None."""
        confined = self._scoped(query, namespace)
        params = {"time": f"{at:.3f}"} if at is not None else None
        result = self._call(lambda: self._client.custom_query(confined, params=params))
        out: dict[str, float | None] = {}
        for series in result or []:
            key = series.get("metric", {}).get(label)
            if key is not None:
                out[key] = _finite(series.get("value", [None, None])[1])
        return out

    def read(self, query: str, namespace: str | None, at: float | None = None) -> Reading:
        """Like :meth:`instant` but never raises: the status says why a value is missing."""
        try:
            value = self.instant(query, namespace, at)
        except QueryRejected as e:
            return Reading(None, "rejected", str(e), query)
        except PrometheusUnavailable as e:
            return Reading(None, "unreachable", str(e), query)
        except QueryFailed as e:
            return Reading(None, "failed", str(e), query)
        if value is None:
            return Reading(None, "no-data", f"{query!r} returned no data (empty or NaN) in namespace {namespace!r}", query)
        return Reading(value, "ok", "", query)

    def range_series(self, query: str, namespace: str | None, start: float, end: float,
                     step: float) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        """Every series of one range query as (labels, timestamps, values), NaN where not finite.

        Evaluated at exactly ``start + k * step`` (fractional seconds kept, unlike the
        client's own rounding), in one request: for reports over at most
        ``MAX_POINTS_PER_QUERY`` steps.
        """
        if step <= 0 or end < start:
            raise ValueError("need step > 0 and end >= start")
        scoped = self._scoped(query, namespace)
        exact = {"start": f"{start:.3f}", "end": f"{end:.3f}"}
        result = self._call(functools.partial(self._client.custom_query_range, scoped, start_time=_dt(start),
                                              end_time=_dt(end), step=f"{step:g}", params=exact))
        out: list[tuple[dict[str, str], np.ndarray, np.ndarray]] = []
        for series in result or []:
            points = series.get("values") or []
            ts = np.array([float(t) for t, _ in points], dtype=float)
            vs = np.array([np.nan if (v := _finite(raw)) is None else v for _, raw in points], dtype=float)
            out.append((dict(series.get("metric") or {}), ts, vs))
        return out

    def range(self, query: str, namespace: str | None, start: float, end: float, step: float) -> RangeResult:
        """Values on the grid ``start, start+step, ... <= end`` (NaN where missing), in chunks Prometheus accepts."""
        if step <= 0 or end < start:
            raise ValueError("need step > 0 and end >= start")
        confined = self._scoped(query, namespace)
        start = float(round(start))  # the client sends whole seconds; keep our grid on theirs
        n = int((end - start) // step) + 1
        times = start + step * np.arange(n, dtype=float)
        values = np.full(n, np.nan)
        labels: dict[str, str] = {}
        chunk = MAX_POINTS_PER_QUERY
        for first in range(0, n, chunk):
            last = min(n, first + chunk) - 1
            t0, t1 = float(times[first]), float(times[last])
            result = self._call(functools.partial(self._client.custom_query_range, confined,
                                                  start_time=_dt(t0), end_time=_dt(t1), step=f"{step:g}s"))
            if len(result) > 1:
                raise QueryFailed(f"{confined!r} returned {len(result)} series; aggregate it to one (e.g. sum(...))")
            for series in result:
                labels = dict(series.get("metric", {}))
                for ts, raw in series.get("values", []):
                    idx = round((float(ts) - start) / step)
                    if 0 <= idx < n:
                        v = _finite(raw)
                        values[idx] = np.nan if v is None else v
        return RangeResult(times=times, values=values, query=confined, labels=labels)

    def healthy(self) -> bool:
        """Whether Prometheus answers its readiness endpoint (one attempt, no retries)."""
        try:
            resp = self._client._session.get(f"{self.config.url.rstrip('/')}/-/ready", headers=self._headers(),
                                             timeout=self.config.timeout_seconds)
            return bool(resp.status_code == 200)
        except requests.RequestException:
            return False


def _dt(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)


def _short(text: str, limit: int = 300) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
