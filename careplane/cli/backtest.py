"""``careplane backtest``: replay a recorded trace through careplane, the Kubernetes HPA and the oracle.

The interface is fixed (outside evaluation drives it): the timeline goes to a
CSV, metrics to stdout as JSON (one object keyed by controller), progress to
stderr; bad input (policy, trace, options) exits 2 with a one-line message.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from careplane.backtest.engine import ProgressFn
from careplane.backtest.runner import CONTROLLERS, BacktestError, Result, backtest, write_timeline
from careplane.policy import ScalingPolicySpec
from careplane.traces import Trace, TraceError, load_trace
from careplane.validation import PolicyError, parse_policy

EXIT_BAD_INPUT = 2


def load_policy(path: Path) -> ScalingPolicySpec:
    """The first ScalingPolicy in ``path``; raises BacktestError naming the file and the field."""
    try:
        with path.open() as handle:
            documents = [d for d in yaml.safe_load_all(handle) if d is not None]
    except OSError as exc:
        raise BacktestError(f"--policy {path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BacktestError(f"--policy {path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    policies = [d for d in documents if isinstance(d, dict) and d.get("kind", "ScalingPolicy") == "ScalingPolicy"]
    if not policies:
        raise BacktestError(f"--policy {path}: no ScalingPolicy document in the file")
    try:
        return parse_policy(policies[0]).spec
    except PolicyError as exc:
        raise BacktestError(f"--policy {path}: invalid ScalingPolicy: {exc}") from None


@contextmanager
def progress_bars(total: int, enabled: bool = True) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


def backtest_command(
    trace_path: Path = typer.Argument(..., metavar="TRACE", help="CSV (time + value columns, empty = gap) or per-second .txt/.tbz2."),
    policy: Path = typer.Option(..., "--policy", help="ScalingPolicy YAML (capacity, startup, bounds, forecast)."),
    out: Path = typer.Option(..., "--out", help="Timeline CSV: timestamp,demand,desired_replicas,ready_replicas."),
    controller: str = typer.Option("careplane", "--controller", help="careplane, hpa, oracle or all."),
    time_column: str = typer.Option("timestamp", "--time-column", help="CSV time column."),
    value_column: str = typer.Option("value", "--value-column", help="CSV demand column (requests/s)."),
    aggregate: int | None = typer.Option(None, "--aggregate", help="Average blocks of this many seconds first."),
    report: Path | None = typer.Option(None, "--report", help="Write an HTML report with PNG plots here."),
) -> None:
    """Replay TRACE through careplane (same decision core as the operator), the Kubernetes HPA and the oracle.

    Prints JSON per controller: violation_pct, excess_pct, replica_hours, cost_vs_oracle, changes.
    """
    err = Console(stderr=True, soft_wrap=True)
    try:
        if controller not in (*CONTROLLERS, "all"):
            raise BacktestError(f"--controller: {controller!r} is not one of careplane, hpa, oracle, all")
        spec = load_policy(policy)
        trace = load_trace(trace_path, time_column=time_column, value_column=value_column, aggregate=aggregate)
        chosen = list(CONTROLLERS) if controller == "all" else [controller]
        result, points = _run(spec, trace, chosen, report is not None)
        try:
            write_timeline(out, trace, result.runs)
        except OSError as exc:
            raise BacktestError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
        if report is not None:
            from careplane.backtest.report import write_report

            index = write_report(report, trace=trace, spec=spec, result=result, points=points)
            err.print(f"report: {index}", highlight=False)
    except (BacktestError, TraceError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    json.dump({name: m.as_dict() for name, m in result.metrics.items()}, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _run(
    spec: ScalingPolicySpec, trace: Trace, chosen: list[str], with_sweep: bool
) -> tuple[Result, dict[str, list[dict[str, float]]]]:
    from careplane.backtest.report import CAREPLANE_QUANTILES, HPA_TARGETS, sweep

    n = len(trace)
    with progress_bars(n) as bars:

        def bar(name: str) -> ProgressFn:
            task = bars.add_task(name, total=n)
            return lambda done: bars.advance(task, done)

        result = backtest(spec, trace, chosen, progress=bar)
        points: dict[str, list[dict[str, float]]] = {}
        if with_sweep:
            points = sweep(spec, trace, result.oracle_hours, progress=bar, hpa_targets=HPA_TARGETS,
                           quantiles=CAREPLANE_QUANTILES)
    return result, points


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_command)
