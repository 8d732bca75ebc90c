"""Run the careplane operator in-process: login, telemetry endpoint, kopf.

``careplane operator ...`` (``careplane.cli.operator``) calls :func:`run`;
tests and the benchmark call :func:`serve` inside their own event loop (with a
``stop_flag``) or run the CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, cast

import kopf
import kubernetes

from careplane.operator import settings as cfg
from careplane.operator.handlers import Runtime, build_registry
from careplane.operator.telemetry import Telemetry

log = logging.getLogger(__name__)


def kube_configuration(kubeconfig: str | None) -> kubernetes.client.Configuration:
    """Client configuration from ``kubeconfig``, or in-cluster (service account) when it is None."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    return configuration


def connection_info(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    """kopf credentials from a client configuration (as ``kopf.login_via_client`` does for the default one).

    Why not ``login_via_client``: it reads only the default kubeconfig or the
    service account, and ``--kubeconfig PATH`` must win.
    """
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def identity_of(config: cfg.OperatorConfig) -> str:
    """This replica's name in peering and in the reconciled-by annotation (the pod name in a cluster)."""
    return config.identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_runtime(
    config: cfg.OperatorConfig, configuration: kubernetes.client.Configuration, telemetry: Telemetry, identity: str
) -> Runtime:
    from careplane.operator.wiring import cluster_port, metrics_port

    return Runtime(
        config=config,
        telemetry=telemetry,
        metrics=metrics_port(config),
        cluster=cluster_port(configuration),
        identity=identity,
    )


async def serve(
    config: cfg.OperatorConfig,
    *,
    stop_flag: asyncio.Event | asyncio.Future[Any] | threading.Event | None = None,
    ready_flag: asyncio.Event | asyncio.Future[Any] | threading.Event | None = None,
    telemetry: Telemetry | None = None,
    runtime_factory: Callable[[cfg.OperatorConfig, kubernetes.client.Configuration, Telemetry, str], Runtime]
    | None = None,
    on_tick: Callable[[str, Any], None] | None = None,
) -> Runtime:
    """Run the operator until ``stop_flag`` is set (or a signal arrives); returns its runtime."""
    identity = identity_of(config)
    configuration = kube_configuration(config.kubeconfig)
    own_telemetry = telemetry is None
    telemetry = telemetry or Telemetry(instance=identity)
    if own_telemetry and config.metrics_port >= 0:
        port = telemetry.serve(config.metrics_port)
        log.info("metrics on :%d/metrics", port)
    runtime = (runtime_factory or default_runtime)(config, configuration, telemetry, identity)
    runtime.on_tick = on_tick
    registry = build_registry(config)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(configuration)

    try:
        await kopf.operator(
            registry=registry,
            clusterwide=config.clusterwide,
            namespaces=() if config.clusterwide else list(config.namespaces),
            standalone=config.standalone,
            liveness_endpoint=config.liveness,
            identity=cast(Any, identity),  # kopf types it as a NewType of str it does not export
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=kopf.Memo(runtime=runtime),
        )
    finally:
        if own_telemetry:
            telemetry.shutdown()
    return runtime


def run(config: cfg.OperatorConfig) -> None:
    """Blocking entry point of ``careplane operator`` (kopf handles SIGINT/SIGTERM)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(config))
