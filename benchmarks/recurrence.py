"""Recurring-peak bound and forecast-horizon costs (issue 7: capacity ready before a recurring spike).

Run: ``nice -n 10 python3 benchmarks/recurrence.py`` (about a minute). Writes
``benchmarks/results/recurrence.json``:

* the recurring-peak bound's memory per policy and its CPU cost per update and
  per bound (uncached: the first decision in a new bucket; cached: the others),
  for the FHIR example's window (15 s steps, 90 + 900 s, daily season);
* why ``MAX_HORIZON_STEPS`` (careplane.decision.models) stays at 24: the CPU cost
  per sample of ``auto`` learning one 15 s NASA sample and forecasting the FHIR
  window (66 steps) with intervals calibrated up to 24 steps (today) vs up to
  all 66 steps. The target (benchmarks/forecast.py) is <= 200 us per sample.

CPU time of this process (``time.process_time``): on a shared machine, wall time
mostly measures the neighbours.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from careplane.shared_data import shared_data_dir

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
RESULTS = ROOT / "results"
STEP = 15.0
WINDOW = 990.0  # crds/examples/fhir-api.yaml: podStartupSeconds 90 + horizonSeconds 900
SEASONS = (86400.0, 604800.0)


def nasa_15s() -> tuple[np.ndarray, np.ndarray]:
    from careplane.traces import load_trace

    CACHE.mkdir(exist_ok=True)
    path = CACHE / "nasa_15.npz"
    if not path.exists():
        trace = load_trace(shared_data_dir() / "traces" / "nasa-1995-per-second.tbz2", aggregate=15)
        np.savez(path, times=trace.times, values=trace.values)
    data = np.load(path)
    return data["times"], data["values"]


def recurrence_costs(times: np.ndarray, values: np.ndarray) -> dict[str, float]:
    from careplane.decision.recurrence import RecurrenceBound

    rb = RecurrenceBound(step_seconds=STEP, window_seconds=WINDOW, season_seconds=86400.0)
    head = 8 * 5760  # eight days of 15 s samples
    begin = time.process_time()
    rb.extend(times[:head], values[:head])
    extend_ms = 1e3 * (time.process_time() - begin)
    n = 20_000
    begin = time.process_time()
    for i in range(head, head + n):
        rb.observe(float(times[i]), float(values[i]))
    observe_us = 1e6 * (time.process_time() - begin) / n
    now, last = float(times[head + n]), float(times[head + n - 1])
    reps = 5000
    begin = time.process_time()
    for _ in range(reps):
        rb._cache_key = None  # force the first-in-bucket path
        rb.bound(now, now + WINDOW, last)
    uncached_us = 1e6 * (time.process_time() - begin) / reps
    begin = time.process_time()
    for _ in range(reps):
        rb.bound(now, now + WINDOW, last)
    cached_us = 1e6 * (time.process_time() - begin) / reps
    return {
        "bucket_seconds": rb.bucket,
        "bytes_per_policy": rb.bytes_per_policy,
        "megabytes_per_1000_policies": rb.bytes_per_policy * 1000 / 1e6,
        "extend_8_days_ms": extend_ms,
        "observe_microseconds": observe_us,
        "bound_uncached_microseconds": uncached_us,
        "bound_cached_microseconds": cached_us,
    }


def horizon_cost(times: np.ndarray, values: np.ndarray, max_horizon: int, updates: int = 3000) -> float:
    """CPU us per learn_one + forecast(window) of ``auto`` fitted on 10 days of 15 s NASA samples."""
    from careplane.forecasting.registry import make_forecaster

    steps = math.ceil(WINDOW / STEP)
    model = make_forecaster("auto", step_seconds=STEP, seasonalities_seconds=SEASONS, max_horizon=max_horizon)
    rows = 10 * 5760
    model.fit(times[:rows], values[:rows])
    for i in range(rows, rows + 500):  # warm-up: the calibration tables fill
        model.learn_one(float(times[i]), float(values[i]))
        model.forecast(steps, 0.9)
    begin = time.process_time()
    for i in range(rows + 500, rows + 500 + updates):
        model.learn_one(float(times[i]), float(values[i]))
        model.forecast(steps, 0.9)
    return 1e6 * (time.process_time() - begin) / updates


def main() -> None:
    times, values = nasa_15s()
    out: dict[str, object] = {"command": "python3 benchmarks/recurrence.py"}
    out["recurrence"] = recurrence_costs(times, values)
    print(out["recurrence"], file=sys.stderr, flush=True)
    steps = math.ceil(WINDOW / STEP)
    out["auto_learn_forecast_window_cpu_microseconds"] = {
        f"max_horizon_{h}": horizon_cost(times, values, h) for h in (24, steps)
    }
    out["window_steps"] = steps
    print(out["auto_learn_forecast_window_cpu_microseconds"], file=sys.stderr, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recurrence.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
