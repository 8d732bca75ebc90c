"""``careplane forecast eval``: the exact interface, causality on a truncated copy, exit 2 on bad input."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from careplane.cli.forecast import register

from .conftest import seasonal_counts


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """test root"""

    register(root)
    return root


def write_csv(path: Path, times: np.ndarray, values: np.ndarray) -> Path:
    with path.open("w") as handle:
        handle.write("timestamp,value\n")
        for t, v in zip(times, values, strict=True):
            stamp = datetime.fromtimestamp(1_600_000_000 + t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"{stamp},{'' if np.isnan(v) else v}\n")
    return path


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["forecast", "eval", *args])
    return result.exit_code, result.stdout, result.stderr


def read_predictions(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_eval_writes_predictions_and_metrics(app: typer.Typer, tmp_path: Path) -> None:
    times, values = seasonal_counts(24 * 21)
    values[300:305] = np.nan  # gaps are handled, not rejected
    trace = write_csv(tmp_path / "t.csv", times, values)
    out = tmp_path / "p.csv"
    code, stdout, _ = run(app, str(trace), "--horizon", "2", "--test-fraction", "0.1", "--out", str(out), "--model", "lag_regression")
    assert code == 0, stdout
    report = json.loads(stdout)
    assert set(report) == {"r2", "mae", "rmse", "mase", "coverage", "fit_seconds", "update_microseconds"}
    assert report["r2"] > 0.5 and 0.5 < report["coverage"] <= 1.0
    rows = read_predictions(out)
    assert list(rows[0]) == ["timestamp", "actual", "forecast", "lower", "upper"]
    assert len(rows) == len(values) - int(len(values) * 0.9)
    assert all(float(r["lower"]) <= float(r["upper"]) for r in rows)


def test_truncated_trace_gives_identical_forecasts(app: typer.Typer, tmp_path: Path) -> None:
    times, values = seasonal_counts(24 * 18, seed=5)
    full = write_csv(tmp_path / "full.csv", times, values)
    short = write_csv(tmp_path / "short.csv", times[:-40], values[:-40])
    test_from = datetime.fromtimestamp(1_600_000_000 + times[350], tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    outs = []
    for name, trace in (("a", full), ("b", short)):
        out = tmp_path / f"{name}.csv"
        code, stdout, _ = run(app, str(trace), "--horizon", "3", "--test-from", test_from, "--out", str(out))
        assert code == 0, stdout
        outs.append(read_predictions(out))
    a, b = outs
    assert len(b) == len(a) - 40
    assert a[: len(b)] == b


@pytest.mark.parametrize(
    ("content", "args", "needle"),
    [
        ("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,abc\n", [], "row 3"),
        ("timestamp,value\n2020-01-01 01:00:00,1\n2020-01-01 00:00:00,2\n", [], "row 3"),
        ("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:00:00,2\n", [], "row 3"),
    ],
)
def test_bad_rows_exit_2(app: typer.Typer, tmp_path: Path, content: str, args: list[str], needle: str) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text(content)
    code, _stdout, stderr = run(app, str(trace), "--horizon", "1", "--test-fraction", "0.5", "--out", str(tmp_path / "p.csv"), *args)
    assert code == 2
    assert needle in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--test-fraction", "0.2", "--test-from", "2020-01-01"], "exactly one of"),
        ([], "exactly one of"),
        (["--test-fraction", "1.5"], "--test-fraction"),
        (["--test-from", "2099-01-01 00:00:00"], "--test-from"),
        (["--test-fraction", "0.2", "--seasonality", "86400,abc"], "--seasonality"),
        (["--test-fraction", "0.2", "--seasonality", "60"], "--seasonality"),
        (["--test-fraction", "0.2", "--seasonality", "2592000"], "two seasons"),
        (["--test-fraction", "0.2", "--model", "prophet"], "--model"),
        (["--test-fraction", "0.2", "--quantile", "0.3"], "--quantile"),
        (["--test-fraction", "0.01", "--horizon", "500"], "--horizon"),
        (["--test-fraction", "0.2", "--value-column", "demand"], "--value-column"),
    ],
)
def test_bad_options_exit_2(app: typer.Typer, tmp_path: Path, args: list[str], needle: str) -> None:
    times, values = seasonal_counts(24 * 15)
    trace = write_csv(tmp_path / "t.csv", times, values)
    base = ["--out", str(tmp_path / "p.csv")]
    if "--horizon" not in args:
        base += ["--horizon", "1"]
    code, _, stderr = run(app, str(trace), *base, *args)
    assert code == 2, stderr
    assert needle in stderr and len(stderr.strip().splitlines()) == 1


def test_per_second_txt_with_aggregate(app: typer.Typer, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    seconds = 3 * 86400 + 37  # a trailing partial block is dropped
    phase = np.sin(2 * np.pi * np.arange(seconds) / 86400.0)
    counts = rng.poisson(2.0 * (1.2 + phase))
    trace = tmp_path / "t.txt"
    trace.write_text(" ".join(map(str, counts)))
    out = tmp_path / "p.csv"
    code, stdout, stderr = run(app, str(trace), "--horizon", "1", "--aggregate", "600", "--test-fraction", "0.2", "--seasonality", "86400", "--model", "seasonal_naive", "--out", str(out))
    assert code == 0, stderr
    assert len(read_predictions(out)) == 432 - int(432 * 0.8)
    assert json.loads(stdout)["mase"] is not None
