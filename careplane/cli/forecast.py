"""``careplane forecast eval``: rolling-origin evaluation of a forecaster on a recorded trace.

The interface is fixed (outside evaluation drives it): predictions go to a CSV
(``timestamp,actual,forecast,lower,upper``), metrics to stdout as one JSON
object, progress to stderr; bad input exits 2 with a one-line message.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from careplane.traces import Trace, TraceError, load_trace

EXIT_BAD_INPUT = 2

forecast_app = typer.Typer(help="Demand forecasting: evaluate models on recorded traces.", no_args_is_help=True)


class BadInput(Exception):
    """A one-line message naming the option or row at fault (exit code 2)."""


def parse_seasonality(text: str) -> list[float]:
    """``86400,604800`` -> [86400.0, 604800.0]; raises BadInput naming --seasonality."""
    seasons = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise BadInput(f"--seasonality: {part!r} is not a number of seconds") from None
        if not math.isfinite(value) or value <= 0:
            raise BadInput(f"--seasonality: {part!r} must be a positive number of seconds")
        seasons.append(value)
    if not seasons:
        raise BadInput("--seasonality: give at least one period in seconds")
    return seasons


def test_start_row(trace: Trace, test_from: str | None, test_fraction: float | None) -> int:
    """First test row from exactly one of --test-from / --test-fraction."""
    if (test_from is None) == (test_fraction is None):
        raise BadInput("give exactly one of --test-from and --test-fraction")
    if test_from is not None:
        start = trace.index_at(test_from)
        if start >= len(trace):
            raise BadInput(f"--test-from {test_from}: no row at or after it (empty test set)")
        return start
    assert test_fraction is not None
    if not 0 < test_fraction < 1:
        raise BadInput(f"--test-fraction: must be between 0 and 1 (exclusive), got {test_fraction}")
    start = math.floor(len(trace) * (1 - test_fraction))
    if start >= len(trace):
        raise BadInput(f"--test-fraction {test_fraction}: the test set is empty")
    return start


def check_inputs(trace: Trace, seasons: list[float], start: int, horizon: int, quantile: float) -> None:
    if horizon < 1:
        raise BadInput(f"--horizon: must be at least 1 step, got {horizon}")
    if not 0.5 < quantile < 1:
        raise BadInput(f"--quantile: must be between 0.5 and 1 (exclusive), got {quantile}")
    step = trace.step_seconds
    for season in seasons:
        if season < 2 * step:
            raise BadInput(f"--seasonality: {season:g} s is shorter than two steps of {step:g} s")
    span = float(trace.times[-1] - trace.times[0]) + step
    shortest = min(seasons)
    if span < 2 * shortest:
        raise BadInput(f"{trace.source}: the trace covers {span:g} s, shorter than two seasons of {shortest:g} s (see --seasonality)")
    if start - horizon < 1:
        raise BadInput(f"--horizon {horizon}: the training part has {start} rows; it needs more than the horizon")
    if not np.isfinite(trace.values[: start - horizon + 1]).any():
        raise BadInput("the training part (rows before the test start) has no values, only gaps")


def mase_season(trace: Trace, seasons: list[float], train_rows: int) -> int:
    """The longest season (in steps) the training part covers at least once plus one step; else 1."""
    step = trace.step_seconds
    usable = [round(s / step) for s in seasons if train_rows > round(s / step)]
    return max(usable, default=1)


def _json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@forecast_app.command("eval")
def eval_command(
    trace_path: Path = typer.Argument(..., metavar="TRACE", help="CSV (time,value; empty value = gap) or per-second .txt."),
    horizon: int = typer.Option(..., "--horizon", help="Steps ahead: the forecast for row t uses rows up to t - N."),
    out: Path = typer.Option(..., "--out", help="Where to write timestamp,actual,forecast,lower,upper."),
    test_from: str | None = typer.Option(None, "--test-from", help="First test row (ISO 8601 or seconds)."),
    test_fraction: float | None = typer.Option(None, "--test-fraction", help="Last fraction of rows to test on."),
    time_column: str = typer.Option("timestamp", "--time-column"),
    value_column: str = typer.Option("value", "--value-column"),
    aggregate: int | None = typer.Option(None, "--aggregate", help="Average blocks of this many seconds."),
    model: str = typer.Option("auto", "--model", help="auto, seasonal_naive, holt_winters, sarimax, lag_regression, fourier, river, naive."),
    seasonality: str = typer.Option("86400,604800", "--seasonality", help="Season lengths in seconds, comma separated."),
    quantile: float = typer.Option(0.9, "--quantile", help="Upper quantile; the interval is [1-q, q]."),
) -> None:
    """Fit on the rows before the test start, forecast every test row N steps ahead, print metrics as JSON."""
    from careplane.forecasting.evaluation import mase_scale, metrics, rolling_forecasts
    from careplane.forecasting.registry import available, make_forecaster

    err = Console(stderr=True, soft_wrap=True)
    try:
        if model not in available():
            raise BadInput(f"--model: unknown model {model!r}; choose one of {', '.join(available())}")
        seasons = parse_seasonality(seasonality)
        trace = load_trace(trace_path, time_column=time_column, value_column=value_column, aggregate=aggregate)
        start = test_start_row(trace, test_from, test_fraction)
        check_inputs(trace, seasons, start, horizon, quantile)
    except (BadInput, TraceError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    forecaster = make_forecaster(
        model, step_seconds=trace.step_seconds, seasonalities_seconds=seasons, max_horizon=min(horizon, 64)
    )
    n = len(trace)
    first_origin = start - horizon
    with Progress(
        TextColumn(f"forecast {model} h={horizon}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rows"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty() and n - first_origin < 2000,
    ) as progress:
        task = progress.add_task("eval", total=n - 1 - first_origin)
        every = max(1, (n - first_origin) // 200)

        def tick(origin: int) -> None:
            if (origin - first_origin) % every == 0:
                progress.update(task, completed=origin - first_origin)

        result = rolling_forecasts(forecaster, trace.times, trace.values, start, [horizon], quantile, progress=tick)
    mean, lower, upper = result.mean[horizon], result.lower[horizon], result.upper[horizon]
    actual = trace.values[start:]
    scale = mase_scale(trace.values[:start], mase_season(trace, seasons, start))
    scores = metrics(actual, mean, lower, upper, scale)

    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "actual", "forecast", "lower", "upper"])
        for i in range(n - start):
            writer.writerow(
                [trace.labels[start + i]] + ["" if not math.isfinite(x) else repr(float(x)) for x in (actual[i], mean[i], lower[i], upper[i])]
            )
    report = {
        "r2": _json_number(scores["r2"]),
        "mae": _json_number(scores["mae"]),
        "rmse": _json_number(scores["rmse"]),
        "mase": _json_number(scores["mase"]),
        "coverage": _json_number(scores["coverage"]),
        "fit_seconds": round(result.fit_seconds, 4),
        "update_microseconds": round(result.update_microseconds, 2),
    }
    typer.echo(json.dumps(report))


def register(app: typer.Typer) -> None:
    app.add_typer(forecast_app, name="forecast")
