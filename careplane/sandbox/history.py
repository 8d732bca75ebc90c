"""Days of believable demand history for the demo workloads, to backfill into Prometheus with promtool.

Why: careplane rebuilds its forecasters from ``historySeconds`` of the policy's
own query on start. Without history the first minutes of a demo would show a
cold forecaster; with it, "forecast-driven scaling" is visible from minute one.

The history is the scenario's baseline shaped by a clinic-day rhythm (low at
night, high in clinic hours, quieter at weekends), scaled so that the level at
the drill's start equals the live baseline (no jump at the seam), with the
noise the live traffic has, and, for surges marked ``recurring`` (the daily
vaccination clinic), the same surge starting at the same time of day on every
past day, lasting its real length (``Surge.history_seconds``: the drill
compresses a 20-minute rush into a fraction of its duration; the past days
were not compressed).
That is the pattern a seasonal forecaster must pick up to have capacity ready
before today's surge.

Why the history has the live traffic's texture: the operator's anomaly
monitor re-learns the last hours of history and then judges live samples
against them. Live demand is Poisson arrivals of real requests (each carrying
``units_per_request`` units: the sampling weight, or a batch) scraped every
``fine_step`` seconds; a history with smoother noise, or on a coarse 20 s grid
(read at the operator's 15 s steps it repeats values every fourth reading),
made every live sample look anomalous: the demand anomaly was active at the
baseline for whole drills (measured: score 1.0 from the seam on, on
vitals-ingestion and fhir-api), which in turn made the replica decision treat
the device storm as a benign spike. So the counts are Poisson (batches with
their spread) and the last ``fine_seconds`` are written at the scrape interval.

Series are written with the labels the live workloads' series carry after the
scrape (``service`` and the policy's ``namespace``), so the policies' queries
(confined to their namespace by the operator) read history and live data as
one signal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from careplane.sandbox.prometheus import Series, demand_history_series

# workload -> (counter the policy's demand query reads, labels of its busiest live series). The history is
# written as that very series (plus job and instance), so the live counter continues it: at the seam
# Prometheus sees a counter reset, which rate() handles, and the demand signal has no dip or double count.
DEMAND_SERIES: dict[str, tuple[str, dict[str, str]]] = {
    "fhir-api": ("http_requests_total", {"route": "/Patient/{id}", "method": "GET", "code": "200"}),
    "lab-orders": ("http_requests_total", {"route": "/DiagnosticReport/{id}", "method": "GET", "code": "200"}),
    "telehealth": ("http_requests_total", {"route": "/sessions/{id}/heartbeat", "method": "POST", "code": "201"}),
    "vitals-ingestion": ("vitals_messages_total", {}),
    "billing-batch": ("billing_claims_processed_total", {}),
}


def clinic_rhythm(epoch_seconds: np.ndarray) -> np.ndarray:
    """Relative demand by time of day and weekday (UTC): 0.35 at night, 1.0 mid-clinic-day, weekends x0.6."""
    hours = (epoch_seconds % 86400) / 3600.0
    day = 0.35 + 0.65 * np.clip(np.sin(np.pi * (hours - 6.0) / 14.0), 0.0, None)  # 06:00-20:00 bump
    weekday: np.ndarray = ((epoch_seconds // 86400).astype(np.int64) + 3) % 7  # 1970-01-01: Thursday; 0 = Monday
    return day * np.where(weekday >= 5, 0.6, 1.0)


def history_series(
    scenario: Any,
    namespaces: Mapping[str, str],
    backends: Mapping[str, str],
    instances: Mapping[str, str],
    history_end: float,
    drill_start: float,
    drill_duration: float,
    days: float = 7.0,
    step_seconds: float = 20.0,
    seed: int = 7,
    units_per_request: Mapping[str, tuple[float, float]] | None = None,
    fine_seconds: float = 7200.0,
    fine_step: float = 2.0,
) -> list[Series]:
    """One demand counter per workload of ``scenario`` for ``days`` up to ``history_end`` (now).

    ``namespaces``: workload -> policy namespace; ``backends``: workload -> the
    backend label to use (the primary routing backend, or "default");
    ``instances``: workload -> the ``host:port`` it will be scraped at.
    ``step_seconds`` must leave at least two samples in the shortest rate()
    window of the policies (1 m), hence 20 s; the last ``fine_seconds`` are on
    ``fine_step`` (the live scrape interval). ``units_per_request``: workload ->
    (mean units one real request carries, coefficient of variation of that
    size); missing workloads count single units.
    """
    rng = np.random.default_rng(seed)
    count = math.floor(days * 86400.0 / step_seconds)
    coarse = history_end - fine_seconds - step_seconds * np.arange(count, -1, -1, dtype=float)
    coarse = coarse[coarse > history_end - days * 86400.0]
    fine = history_end - fine_step * np.arange(math.floor(fine_seconds / fine_step) - 1, -1, -1, dtype=float)
    times = np.concatenate([coarse, fine])  # the last sample is history_end
    dt = np.diff(times, prepend=times[0] - step_seconds)
    rhythm = clinic_rhythm(times) / float(clinic_rhythm(np.array([drill_start]))[0])
    out: list[Series] = []
    for workload, fn in scenario.rates.items():
        if workload not in namespaces:
            continue
        base = fn(0.0)
        demand = base * rhythm
        for surge in scenario.surges:
            if surge.workload != workload or not surge.recurring:
                continue
            peak = max(fn(surge.start + (surge.end - surge.start) * k / 20) for k in range(1, 20))
            offset = (times - drill_start) % 86400.0  # seconds since "the drill's time of day"
            lo = surge.start * drill_duration
            hi = lo + max((surge.end - surge.start) * drill_duration, surge.history_seconds)
            inside = (offset >= lo) & (offset < hi)
            demand = np.where(inside, peak, demand)
        mean, cv = (units_per_request or {}).get(workload, (1.0, 0.0))
        requests = rng.poisson(np.maximum(0.0, demand) * dt / mean)  # real requests in each step
        units = requests * mean + rng.standard_normal(times.size) * np.sqrt(requests) * mean * cv
        observed = np.maximum(0.0, units) / dt
        name, extra = DEMAND_SERIES.get(workload, ("http_requests_total", {"route": "/", "method": "GET", "code": "200"}))
        if name == "http_requests_total":
            extra = {**extra, "backend": backends.get(workload, "default")}
        labels = {"service": workload, "namespace": namespaces[workload], "job": "workloads",
                  "instance": instances.get(workload, "history"), **extra}
        out.append(demand_history_series(times.tolist(), observed.tolist(), labels=labels, name=name))
    return out


def series_count(series: Iterable[Series]) -> int:
    return sum(len(s.samples) for s in series)
