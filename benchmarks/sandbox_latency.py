"""Is the sandbox's latency the load's or the estimator's? Writes benchmarks/results/sandbox_latency.json.

Drives each demo workload's ``CapacityModel`` with a simulated clock (no
HTTP, no sleeping): Poisson real arrivals at a steady load (60/70/80/95 % of the
minimum replicas' capacity), each carrying the units it does in the demo (the
sampling weight, or a batch of messages/claims), for 10 simulated minutes;
each arrival goes through the same calls ``Workload.handle`` makes
(queued_units, admit, sample_latency). Three arrival-rate estimators:

* ``fixed-5s``: the sandbox's estimator before issue 7's fix (units in the last 5 s / 5 s);
* ``adaptive``: ``ArrivalRateEstimator`` (a window of ~200 real arrivals, restarted at a detected change,
  whose backlog grows only while the overload is significant, ``CapacityModel.excess_rate``);
* ``oracle``: the true rate; the latency the model gives when it knows the load.

Reported per workload and load: p95 of all sampled latencies, the share of
minutes whose p95 meets the policy's latency SLO, the window restarts, and
for the request services the exact M/M/c (Erlang C) sojourn p95 (service
time + wait at the true rate, from the formula). Also the step response: the
seconds after a 9x step until the adaptive estimate is first within 20 % of
the new rate (median and share within 5 s over seeds), and how far the
estimate lags a linear 9x ramp (median relative error).

    nice -n 10 python benchmarks/sandbox_latency.py          # ~25 s
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scipy import integrate, optimize, stats

from careplane.sandbox.arrival_rate import ArrivalRateEstimator, RateEstimator
from careplane.sandbox.demo import EXAMPLES
from careplane.sandbox.locust_runner import load_scenarios
from careplane.sandbox.workloads import SAMPLING_WEIGHT, CapacityModel, WorkloadProfile, erlang_c, load_policies

RESULTS = Path(__file__).resolve().parent / "results" / "sandbox_latency.json"
LOADS = (0.6, 0.7, 0.8, 0.95)


class FixedWindowRate:
    """The estimator the sandbox had before: units arrived in the last 5 s over 5 s (1 s at start)."""

    WINDOW_SECONDS = 5.0

    def __init__(self, started: float) -> None:
        self.started = started
        self.arrivals: list[tuple[float, float]] = []

    def admit(self, t: float, units: float) -> None:
        self.arrivals.append((t, units))

    def rate(self, now: float) -> float:
        while self.arrivals and self.arrivals[0][0] < now - self.WINDOW_SECONDS:
            self.arrivals.pop(0)
        span = min(self.WINDOW_SECONDS, max(1.0, now - self.started))
        return sum(u for _, u in self.arrivals) / span

    def relative_error(self, now: float) -> float:
        return 0.0  # the old backlog grew by the whole excess of the estimate


class OracleRate:
    """The true arrival rate (units/s): what the model would use if it knew the load."""

    def __init__(self, rate: float) -> None:
        self.true_rate = rate

    def admit(self, t: float, units: float) -> None:
        pass

    def rate(self, now: float) -> float:
        return self.true_rate

    def relative_error(self, now: float) -> float:
        return 0.0


def sojourn_p95(servers: int, lam: float, mu: float, service_seconds: float, sigma: float = 0.25) -> float:
    """p95 of S + W: S = service_seconds x LogNormal(0, sigma), W the M/M/c wait (Erlang C) at lam of mu."""
    c = erlang_c(servers, lam * servers / mu)
    theta = mu - lam
    s_dist = stats.lognorm(s=sigma, scale=service_seconds)

    def cdf(t: float) -> float:
        tail, _ = integrate.quad(lambda u: s_dist.pdf(u) * math.exp(-theta * (t - u)), 0.0, t, limit=200)
        return float(s_dist.cdf(t)) - c * tail

    return float(optimize.brentq(lambda t: cdf(t) - 0.95, 1e-6, 60.0))


def units_sampler(profile: WorkloadProfile, batch_units: dict[str, float]) -> tuple[Callable[[random.Random], float], float]:
    """(draw one real request's units, mean units): the demo's batch sizes or the sampling weight."""
    if profile.behaviour.batch_field:
        mean = batch_units[profile.name]
        lo, hi = round(mean / 2), round(mean * 1.5)
        return (lambda rng: float(rng.randint(lo, hi))), (lo + hi) / 2
    weight = float(profile.behaviour.request_weight)
    return (lambda rng: weight), weight


def simulate(profile: WorkloadProfile, replicas: int, load: float, estimator: str, seconds: float, seed: int,
             batch_units: dict[str, float]) -> dict[str, Any]:
    mu = replicas * profile.per_replica_capacity
    draw, mean_units = units_sampler(profile, batch_units)
    real_rate = load * mu / mean_units
    rates: dict[str, Callable[[], RateEstimator]] = {
        "fixed-5s": lambda: FixedWindowRate(0.0),
        "adaptive": lambda: ArrivalRateEstimator(0.0),
        "oracle": lambda: OracleRate(load * mu),
    }
    est = rates[estimator]()
    model = CapacityModel(profile.per_replica_capacity, profile.behaviour, started=0.0, rate_estimator=est)
    rng, arrivals = random.Random(seed), random.Random(seed + 1000)
    t = 0.0
    latencies: list[float] = []
    per_minute: dict[int, list[float]] = {}
    timeout = profile.behaviour.timeout_seconds
    while True:
        t += arrivals.expovariate(real_rate)
        if t >= seconds:
            break
        units = draw(arrivals)
        model.queued_units(t, replicas, None)
        model.admit(t, units)
        latency = min(model.sample_latency(t, replicas, units, rng), timeout)
        latencies.append(latency)
        per_minute.setdefault(int(t // 60), []).append(latency)
    latencies.sort()
    out: dict[str, Any] = {
        "p95_seconds": round(latencies[int(0.95 * len(latencies))], 4),
        "real_requests": len(latencies),
        "minute_p95s": [round(sorted(v)[int(0.95 * len(v))], 4) for _, v in sorted(per_minute.items())],
    }
    if isinstance(est, ArrivalRateEstimator):
        out["window_restarts"] = est.restarts
    return out


def step_response(profile: WorkloadProfile, replicas: int, base_load: float, factor: float, seeds: int) -> dict[str, Any]:
    """Seconds after a ``factor``x step until the adaptive estimate is first within 20 % of the new rate (30 s max)."""
    mu = replicas * profile.per_replica_capacity
    weight = float(profile.behaviour.request_weight)
    delays = []
    for seed in range(seeds):
        rng = random.Random(seed)
        est = ArrivalRateEstimator(0.0)
        t, step_at, found = 0.0, 300.0, math.inf
        low, high = base_load * mu / weight, base_load * factor * mu / weight
        while t < step_at + 30.0:
            t += rng.expovariate(low if t < step_at else high)
            est.admit(t, weight)
            if t >= step_at and abs(est.rate(t) - high * weight) <= 0.2 * high * weight:
                found = t - step_at
                break
        delays.append(found)
    median = statistics.median(delays)
    return {"base_load": round(base_load, 4), "factor": factor, "real_rate_before": round(base_load * mu / weight, 3),
            "seeds": seeds, "share_within_5s": round(sum(d <= 5.0 for d in delays) / seeds, 3),
            "median_seconds": round(median, 2) if math.isfinite(median) else None,
            "not_within_30s": sum(not math.isfinite(d) for d in delays)}


def ramp_tracking(low: float, high: float, ramp_seconds: float, weight: float, seeds: int) -> dict[str, Any]:
    """Relative error of the adaptive estimate while real arrivals ramp linearly from ``low`` to ``high``/s."""
    errors: list[float] = []
    t0 = 300.0

    def true_rate(x: float) -> float:
        return low if x < t0 else min(high, low + (high - low) * (x - t0) / ramp_seconds)

    for seed in range(seeds):
        rng, est, t = random.Random(seed), ArrivalRateEstimator(0.0), 0.0
        while t < t0 + ramp_seconds:
            t += rng.expovariate(high)  # Lewis-Shedler thinning, as the Locust users pace themselves
            if rng.random() * high < true_rate(t):
                est.admit(t, weight)
                if t > t0 + 10.0:
                    errors.append(est.rate(t) / (weight * true_rate(t)) - 1.0)
    errors.sort()
    return {"real_rate_from": low, "real_rate_to": high, "ramp_seconds": ramp_seconds,
            "median_relative_error": round(statistics.median(errors), 3),
            "p05_p95_relative_error": [round(errors[int(0.05 * len(errors))], 3),
                                       round(errors[int(0.95 * len(errors))], 3)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=600.0, help="simulated seconds per run")
    parser.add_argument("--seeds", type=int, default=3, help="runs per workload, load and estimator")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    batch_units = dict(load_scenarios().BATCH_UNITS)
    t0 = time.time()
    results: dict[str, Any] = {"simulated_seconds": args.seconds, "seeds": args.seeds, "workloads": {}}
    for pol in load_policies([EXAMPLES]):
        replicas = max(2, pol.spec.replicas.min)
        prof = WorkloadProfile.from_policy(pol, replicas)
        slo = pol.spec.slo.latencyTargetSeconds if pol.spec.slo else None
        rows: dict[str, Any] = {"replicas": replicas, "capacity": replicas * prof.per_replica_capacity,
                                "latency_slo_seconds": slo, "unit": prof.behaviour.unit, "loads": {}}
        for load in LOADS:
            row: dict[str, Any] = {}
            if not prof.behaviour.batch_field:
                mu = replicas * prof.per_replica_capacity
                row["erlang_c_p95_seconds"] = round(sojourn_p95(replicas * prof.behaviour.slots_per_replica,
                                                                load * mu, mu, prof.behaviour.service_seconds), 4)
            for estimator in ("fixed-5s", "adaptive", "oracle"):
                runs = [simulate(prof, replicas, load, estimator, args.seconds, seed, batch_units)
                        for seed in range(args.seeds)]
                minutes = [m for r in runs for m in r["minute_p95s"]]
                entry: dict[str, Any] = {
                    "p95_seconds_median": round(statistics.median(r["p95_seconds"] for r in runs), 4),
                    "p95_seconds_runs": [r["p95_seconds"] for r in runs],
                    "real_requests_per_run": round(statistics.mean(r["real_requests"] for r in runs)),
                    "worst_minute_p95_seconds": max(minutes),
                }
                if slo is not None:
                    entry["minutes_within_slo"] = round(sum(m <= slo for m in minutes) / len(minutes), 3)
                if estimator == "adaptive":
                    entry["window_restarts_per_run"] = [r["window_restarts"] for r in runs]
                row[estimator] = entry
            rows["loads"][f"{load:.2f}"] = row
            print(pol.metadata.name, load, {k: (v["p95_seconds_median"] if isinstance(v, dict) else v)
                                            for k, v in row.items()}, flush=True)
        results["workloads"][pol.metadata.name] = rows
    tele = next(p for p in load_policies([EXAMPLES]) if p.metadata.name == "telehealth")
    tprof = WorkloadProfile.from_policy(tele, 2)
    results["step_response_telehealth"] = [step_response(tprof, 2, base, 9.0, 50) for base in (0.6 / 9, 0.1, 0.6)]
    results["ramp_tracking_telehealth"] = [ramp_tracking(1.5, 13.5, ramp, SAMPLING_WEIGHT, 10) for ramp in (60.0, 120.0, 300.0)]
    results["wall_seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["step_response_telehealth"]), json.dumps(results["ramp_tracking_telehealth"]),
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
