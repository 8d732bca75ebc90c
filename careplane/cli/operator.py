"""``careplane operator``: run the kopf operator in this process."""

from __future__ import annotations

from pathlib import Path

import typer

EXIT_BAD_INPUT = 2


def operator(
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="kubeconfig file; without it the in-cluster service account is used."
    ),
    prometheus_url: str = typer.Option(..., "--prometheus-url", help="Prometheus base URL, e.g. http://prometheus:9090."),
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n", help="Namespace to serve (repeatable; glob patterns allowed). Default: all."
    ),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Serve every namespace."),
    selector: str | None = typer.Option(
        None, "--selector", "-l", help="Label selector of the ScalingPolicies this operator serves (a shard)."
    ),
    metrics_port: int = typer.Option(9464, "--metrics-port", help="Port of the Prometheus /metrics endpoint."),
    standalone: bool = typer.Option(False, "--standalone", help="No peering (a single operator replica)."),
    liveness: str | None = typer.Option(
        None, "--liveness", help="kopf's health endpoint, e.g. http://0.0.0.0:8080/healthz."
    ),
    peering_name: str | None = typer.Option(
        None, "--peering-name", help="Peering object name (default: careplane, or careplane-<shard> for a shard)."
    ),
    peering_lifetime: int = typer.Option(
        60, "--peering-lifetime", min=5, help="Seconds before a silent peer counts as dead (standby takeover time)."
    ),
    priority: int | None = typer.Option(
        None, "--priority", help="Peering priority (default: random, so one replica is active, the others wait)."
    ),
    prometheus_token_file: Path | None = typer.Option(
        None, "--prometheus-token-file", help="File holding a bearer token for Prometheus."
    ),
    prometheus_ca: Path | None = typer.Option(None, "--prometheus-ca", help="CA bundle for Prometheus TLS."),
    prometheus_insecure: bool = typer.Option(
        False, "--prometheus-insecure", help="Do not verify Prometheus' TLS certificate."
    ),
    prometheus_timeout: float = typer.Option(5.0, "--prometheus-timeout", min=0.1, help="Seconds per query attempt."),
) -> None:
    """Run the careplane operator (kopf) against a cluster and a Prometheus."""
    from kubernetes.config import ConfigException

    from careplane.operator.main import kube_configuration, run
    from careplane.operator.settings import OperatorConfig, parse_selector

    err = typer.echo
    if all_namespaces and namespace:
        err("error: --all-namespaces and --namespace exclude each other", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if kubeconfig is not None and not kubeconfig.is_file():
        err(f"error: --kubeconfig {kubeconfig}: no such file", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if not prometheus_url.startswith(("http://", "https://")):
        err(f"error: --prometheus-url {prometheus_url!r}: must start with http:// or https://", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if selector:
        try:
            parse_selector(selector)
        except ValueError as exc:
            err(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    token = None
    if prometheus_token_file is not None:
        try:
            token = prometheus_token_file.read_text().strip()
        except OSError as exc:
            err(f"error: --prometheus-token-file {prometheus_token_file}: {exc.strerror}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    try:
        kube_configuration(str(kubeconfig) if kubeconfig else None)
    except (ConfigException, OSError, ValueError) as exc:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "no --kubeconfig and not in a cluster"
        err(f"error: {where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    config = OperatorConfig(
        prometheus_url=prometheus_url,
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        namespaces=tuple(namespace),
        all_namespaces=all_namespaces,
        selector=selector,
        metrics_port=metrics_port,
        standalone=standalone,
        liveness=liveness,
        peering_name=peering_name,
        peering_lifetime=peering_lifetime,
        priority=priority,
        prometheus_token=token,
        prometheus_ca=str(prometheus_ca) if prometheus_ca else None,
        prometheus_insecure=prometheus_insecure,
        prometheus_timeout=prometheus_timeout,
    )
    run(config)


def register(app: typer.Typer) -> None:
    app.command("operator")(operator)
