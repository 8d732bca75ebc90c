"""The reconcile's per-interval Kubernetes calls on one shared aiohttp session.

Every tick of every policy reads the target's ``/scale`` (and the object, for
``readyReplicas``) and, when something changed, merge-patches the policy's
status and annotations. With the synchronous ``kubernetes`` client those were
a worker thread per call, and at a thousand policies the threads' GIL
hand-offs starved kopf's event loop (benchmarks/operator.py). This client
does the same calls without threads, with the credentials of the
``kubernetes.client.Configuration`` the operator already loaded (bearer
token, client certificate, CA bundle, insecure TLS) and the same retry rules
as :class:`careplane.operator.kube.Kube`: 404 is :class:`NotFound`;
429/5xx/timeouts/connection errors back off exponentially; 409 is retried
only for writes the caller declared safe to repeat.

The actuators' read-compute-write loops (rare: only when a decision changes
something) stay on the synchronous client in :mod:`careplane.operator.kube`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import aiohttp
import kubernetes

from careplane.operator.kube import JSON, Kube, KubeError, NotFound, ObjectRef, RetryPolicy

USER_AGENT = "careplane-operator/async"  # tests/operator derive the RBAC rules from the agents' calls
MAX_CONNECTIONS = 64
AUTH_REFRESH_SECONDS = 60.0


def request_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """A timeout on the server's silence (connecting, then each read), not on the whole request.

    Why not ``total``: it also counts the wait for a free pooled connection, so under a
    burst (a thousand policies) requests queued in the client time out without the server
    being slow, and their retries add to the burst. A server that does not answer within
    ``seconds`` still fails the request.
    """
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)


class AsyncKube:
    """GET and merge-PATCH of namespaced objects of non-core groups (plus /scale and /status), with retries."""

    def __init__(self, configuration: kubernetes.client.Configuration, *, plurals: Kube,
                 retry: RetryPolicy | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
        self.configuration = configuration
        self.host = configuration.host.rstrip("/")
        self.plurals = plurals  # plural names (KNOWN_PLURALS, else one discovery call, cached)
        self.retry = retry or plurals.retry
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.write_attempts = 0
        self.plurals_cache: dict[tuple[str, str], str] = {}
        self._auth: str | None = None
        self._auth_at = float("-inf")

    # ---- plumbing ----------------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext | bool:
        c = self.configuration
        if not self.host.startswith("https"):
            return False
        if not c.verify_ssl:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=c.ssl_ca_cert) if c.ssl_ca_cert else ssl.create_default_context()
        if c.cert_file:
            context.load_cert_chain(c.cert_file, c.key_file)
        return context

    def _headers(self) -> dict[str, str]:
        """Auth headers, re-read from the configuration at most every AUTH_REFRESH_SECONDS.

        Why cached: a kubeconfig-loaded configuration carries a ``refresh_api_key_hook``
        that reloads the whole kubeconfig (and scans the environment for proxies) on
        every call, a third of a millisecond each, twice per request; rotated tokens
        only need to be picked up within a minute.
        """
        now = time.monotonic()
        if self._auth is None or now - self._auth_at >= AUTH_REFRESH_SECONDS:
            c = self.configuration
            auth = c.get_api_key_with_prefix("authorization") or c.get_api_key_with_prefix("BearerToken")
            if auth:
                self._auth = auth if " " in auth else f"Bearer {auth}"
            elif c.username:
                self._auth = aiohttp.BasicAuth(c.username, c.password or "").encode()
            else:
                self._auth = ""
            self._auth_at = now
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self._auth:
            headers["Authorization"] = self._auth
        return headers

    def _session_now(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ssl=self._ssl()),
                timeout=request_timeout(self.retry.request_timeout_seconds),
            )
            self._loop = loop
        return self._session

    async def _path(self, ref: ObjectRef, subresource: str | None) -> str:
        key = (ref.group, ref.kind)
        if key not in self.plurals_cache:
            # KNOWN_PLURALS answers at once; an unknown kind costs one discovery call (blocking: in a thread, once)
            self.plurals_cache[key] = await asyncio.to_thread(self.plurals.plural, ref.api_version, ref.kind)
        path = f"/apis/{ref.api_version}/namespaces/{ref.namespace}/{self.plurals_cache[key]}/{ref.name}"
        return path + (f"/{subresource}" if subresource else "")

    async def _request(self, method: str, ref: ObjectRef, subresource: str | None, body: Any = None,
                       *, retry_conflicts: bool = False) -> JSON:
        what = f"{method.lower()} {ref}" + (f"/{subresource}" if subresource else "")
        url = self.host + await self._path(ref, subresource)
        session = self._session_now()
        data = json.dumps(body) if body is not None else None
        delay = self.retry.backoff_seconds
        last = ""
        status: int | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                await asyncio.sleep(min(delay, self.retry.backoff_max_seconds))
                delay *= 2
            headers = self._headers()
            if data is not None:
                headers["Content-Type"] = "application/merge-patch+json"
                self.write_attempts += 1
            try:
                async with session.request(method, url, data=data, headers=headers) as resp:
                    status = resp.status
                    if status == 404:
                        raise NotFound(f"{what}: not found", 404)
                    if 200 <= status < 300:
                        result = await resp.json(content_type=None)
                        if not isinstance(result, dict):
                            raise KubeError(f"{what}: unexpected answer from the API server")
                        return result
                    text = await resp.text()
                    retryable = status in (429,) or status >= 500 or (status in (409, 422) and retry_conflicts)
                    if not retryable:
                        raise KubeError(f"{what}: HTTP {status} {text[:200]}", status)
                    last = f"HTTP {status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                last, status = f"{type(exc).__name__}: {exc}", None
        raise KubeError(f"{what}: gave up after {self.retry.attempts} attempts: {last}", status)

    # ---- calls -------------------------------------------------------------------------------
    async def get(self, ref: ObjectRef, subresource: str | None = None) -> JSON:
        return await self._request("GET", ref, subresource)

    async def merge_patch(self, ref: ObjectRef, body: JSON, subresource: str | None = None) -> JSON:
        """A JSON merge patch without resourceVersion: safe to repeat, so 409s are retried."""
        return await self._request("PATCH", ref, subresource, body, retry_conflicts=True)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
