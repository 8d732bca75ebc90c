"""``careplane demo`` and ``careplane drill``: the sandbox end to end, and surge drills against any URL."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from careplane.sandbox.locust_runner import scenario_names

err = Console(stderr=True)
out = Console()
if not out.is_terminal:
    out.width = 132  # the SLO table stays readable in logs and CI output


def _check_scenario(name: str) -> str:
    names = scenario_names()
    if name not in names:
        raise typer.BadParameter(f"unknown scenario {name!r}; choose one of: {', '.join(names)}")
    return name


def run_sandbox(scenario: str, duration: float, report_dir: Path, keep_running: bool, lead: float,
                history_days: float, title: str, only_scenario_workloads: bool = False) -> int:
    """Start the sandbox, run the drill with a progress bar, write the report; 130 on Ctrl-C."""
    from careplane.sandbox.demo import Sandbox, SandboxConfig, sigterm_as_interrupt
    from careplane.sandbox.report import build_report, render_summary_table

    config = SandboxConfig(scenario=scenario, duration=duration, lead_seconds=lead, history_days=history_days,
                           workdir=report_dir / "sandbox")
    try:
        with sigterm_as_interrupt(), Sandbox(config, say=lambda m: err.print(f"[cyan]•[/cyan] {m}")) as sb:
            progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                TimeRemainingColumn(), console=err, transient=False)
            with progress:
                task = progress.add_task("waiting for the drill clock", total=sb.end_time() - sb.created)

                def tick(box: Sandbox, sample: object) -> None:
                    s = box.timeline[-1]
                    short = {"fhir-api": "fhir", "lab-orders": "lab", "telehealth": "tele", "vitals-ingestion": "vitals",
                             "billing-batch": "billing"}
                    parts = [f"{short.get(k, k)} {s.replicas.get(k)}/{s.ready.get(k)}" for k in sorted(s.replicas)]
                    phase = "drill" if time.time() >= box.start_at else "warm-up"
                    progress.update(task, completed=time.time() - box.created,
                                    description=f"{phase} replicas " + " ".join(parts))

                sb.run(on_tick=tick)
            assert sb.prometheus is not None
            report = build_report(sb.prometheus.url, sb.policies, sb.scenario, sb.start_at, duration, report_dir,
                                  timeline=sb.timeline_json(), events=sb.drill.events() if sb.drill else [],
                                  title=title,
                                  workloads=list(sb.scenario.rates) if only_scenario_workloads else None)
            out.print(render_summary_table(report))
            for r in report.reactions:
                out.print(f"{r.workload}: needs {r.required_replicas} replicas; scale decision "
                          f"{'n/a' if r.decision_seconds is None else f'{r.decision_seconds:+.0f} s'}, capacity ready "
                          f"{'n/a' if r.ready_seconds is None else f'{r.ready_seconds:+.0f} s'} relative to the surge "
                          f"onset; target met: {r.passed}")
            if not sb.operator_running:
                out.print("[yellow]The operator was not running: replicas, routing and circuit breaker stayed as deployed.[/yellow]")
            out.print(f"Report: {report.html}")
            if keep_running:
                out.print(f"Still running (Ctrl-C to stop): Prometheus {sb.prometheus.url}, cluster "
                          f"{sb.cluster.url if sb.cluster else '?'}, kubeconfig {sb.cluster.kubeconfig_path if sb.cluster else '?'}")
                while True:
                    time.sleep(1)
                    sb.check_children()
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted: everything the demo started has been stopped.[/yellow]")
        return 130
    return 0


def demo(
    duration: float = typer.Option(600.0, "--duration", min=60, max=7200, help="Seconds of drill (default 10 min)."),
    scenario: str = typer.Option("showcase", "--scenario", callback=_check_scenario, help="Scenario to play."),
    report: Path = typer.Option(Path("careplane-demo-report"), "--report", help="Directory for the HTML report."),
    keep_running: bool = typer.Option(False, "--keep-running", help="Keep the sandbox up after the report."),
    lead: float = typer.Option(30.0, "--lead", min=5, help="Seconds of warm-up before the drill clock starts."),
    history_days: float = typer.Option(7.0, "--history-days", min=1, max=28, help="Days of backfilled history."),
) -> None:
    """Run the sandbox: Prometheus, an emulated cluster, the workloads, the operator and a Locust drill."""
    raise typer.Exit(run_sandbox(scenario, duration, report, keep_running, lead, history_days,
                                 f"careplane demo: {scenario}"))


def drill(
    scenario: str = typer.Argument(..., callback=_check_scenario, help="flu-season, vaccination-campaign, ..."),
    host: str | None = typer.Option(None, "--host", help="Base URL of the service; omit to run in the sandbox."),
    duration: float | None = typer.Option(None, "--duration", min=10, help="Seconds (default: the scenario's)."),
    report: Path = typer.Option(Path("careplane-drill-report"), "--report", help="Directory for the report."),
    request_weight: float = typer.Option(1.0, "--request-weight", min=1,
                                         help="Demand units one request stands for (with --host)."),
    prometheus: str | None = typer.Option(None, "--prometheus",
                                          help="With --host: the cluster's Prometheus, for replicas and reaction times."),
    policies: Path = typer.Option(Path("crds/examples"), "--policies",
                                  help="With --prometheus: the ScalingPolicies (file or directory) of the workloads."),
) -> None:
    """Run one surge drill against the sandbox (default) or against any base URL (--host)."""
    from careplane.sandbox.locust_runner import load_scenarios

    sc = load_scenarios().get(scenario)
    seconds = float(duration or sc.default_duration)
    if host is None:
        raise typer.Exit(run_sandbox(scenario, seconds, report, False, 30.0, 7.0, f"careplane drill: {scenario}",
                                     only_scenario_workloads=True))
    raise typer.Exit(run_remote_drill(sc, host, seconds, report, request_weight, prometheus, policies))


def run_remote_drill(sc: object, host: str, seconds: float, report: Path, request_weight: float,
                     prometheus: str | None = None, policies_path: Path | None = None) -> int:
    from careplane.sandbox.demo import EXAMPLES
    from careplane.sandbox.drill_report import summarise_history, write_client_report
    from careplane.sandbox.locust_runner import start_drill
    from careplane.sandbox.workloads import load_policies

    scenario = sc  # a loadtests.scenarios.Scenario
    name = getattr(scenario, "name", "?")
    primary = getattr(scenario, "primary", "")
    run = start_drill(name, host, seconds, report / "locust", request_weight=request_weight)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=err) as progress:
            task = progress.add_task(f"drill {name} against {host}", total=seconds)
            while run.poll() is None and time.time() - run.started < seconds + 30:
                progress.update(task, completed=min(seconds, time.time() - run.started))
                time.sleep(1)
        run.wait(grace=20)
    except KeyboardInterrupt:
        run.stop()
        err.print("[yellow]Interrupted: Locust stopped.[/yellow]")
        return 130
    policy = next((p for p in load_policies([EXAMPLES]) if p.spec.targetRef.name == primary), None)
    slo = policy.spec.slo if policy else None
    start = run.start_time()
    windows = [(start + s.start * seconds, start + s.end * seconds) for s in getattr(scenario, "surges", ())
               if s.workload == primary]
    summary = summarise_history(run.history(), start, seconds, windows,
                                slo.latencyTargetSeconds if slo else None, slo.maxErrorRate if slo else None,
                                name, host)
    path = write_client_report(report, summary, run.events())
    comp = {k: (None if p.compliance is None else round(100 * p.compliance, 1)) for k, p in summary.phases.items()}
    out.print(f"{name} against {host}: {summary.requests} requests, {summary.failed} failed; "
              f"SLO-compliant minutes % by phase: {comp}; max p95 {summary.p95_max_seconds} s")
    out.print(f"Report: {path}")
    if prometheus:
        from careplane.sandbox.report import build_report, render_summary_table

        chosen = load_policies([policies_path or EXAMPLES])
        full = build_report(prometheus, chosen, scenario, start, seconds, report / "cluster",
                            events=run.events(), workloads=list(getattr(scenario, "rates", {})),
                            title=f"careplane drill: {name} against {host}")
        out.print(render_summary_table(full))
        out.print(f"Cluster-side report: {full.html}")
    return 0


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("drill")(drill)
