"""The sandbox's arrival-rate estimate and the latency it drives: honest whatever the sampling weight.

All on a simulated clock (CapacityModel and the estimator take times as arguments): no HTTP, no sleeping.
"""

from __future__ import annotations

import math
import random

import pytest
from scipy import integrate, optimize, stats

from careplane.sandbox.arrival_rate import ArrivalRateEstimator, rate_change_statistic
from careplane.sandbox.workloads import BEHAVIOURS, SAMPLING_WEIGHT, CapacityModel, ServiceBehaviour


def erlang_c_formula(c: int, a: float) -> float:
    """P(wait) in M/M/c from the textbook sum (independent of the module's Erlang B recursion)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def sojourn_p95(c: int, lam: float, mu_total: float, service: float, sigma: float = 0.25) -> float:
    """p95 of service x LogNormal(0, sigma) + the M/M/c wait (0 w.p. 1 - C, else Exp(mu_total - lam))."""
    pw, theta = erlang_c_formula(c, lam * c / mu_total), mu_total - lam
    s = stats.lognorm(s=sigma, scale=service)

    def cdf(t: float) -> float:
        tail, _ = integrate.quad(lambda u: s.pdf(u) * math.exp(-theta * (t - u)), 0.0, t, limit=200)
        return float(s.cdf(t)) - pw * tail

    return float(optimize.brentq(lambda t: cdf(t) - 0.95, 1e-6, 60.0))


def drive(model: CapacityModel, ready: int, real_rate: float, units: float, seconds: float, seed: int,
          start: float = 0.0) -> list[float]:
    """Poisson real arrivals through the calls Workload.handle makes; the sampled latencies."""
    rng, arrivals = random.Random(seed), random.Random(seed + 99)
    t, out = start, list[float]()
    while True:
        t += arrivals.expovariate(real_rate)
        if t >= start + seconds:
            return out
        model.queued_units(t, ready, None)
        model.admit(t, units)
        out.append(model.sample_latency(t, ready, units, rng))


def p95(xs: list[float]) -> float:
    return sorted(xs)[int(0.95 * len(xs))]


@pytest.mark.parametrize("service", ["telehealth", "fhir-api", "lab-orders"])
def test_p95_at_60_percent_with_weight_20_is_the_erlang_c_p95(service: str) -> None:
    """The demo's case: 2 replicas at 60 %, one real request per 20. A 5 s window read telehealth's p95 as ~0.4 s."""
    beh = BEHAVIOURS[service]
    capacity = {"telehealth": 25.0, "fhir-api": 50.0, "lab-orders": 30.0}[service]
    mu, lam = 2 * capacity, 0.6 * 2 * capacity
    expected = sojourn_p95(2 * beh.slots_per_replica, lam, mu, beh.service_seconds)
    got = []
    for seed in range(3):
        model = CapacityModel(capacity, beh, started=0.0)
        got.append(p95(drive(model, 2, lam / SAMPLING_WEIGHT, SAMPLING_WEIGHT, 1200.0, seed)[60:]))
    assert sorted(got)[1] == pytest.approx(expected, rel=0.15), (got, expected)
    assert max(got) < 1.4 * expected


def test_a_9x_step_is_read_within_20_percent_in_5_seconds() -> None:
    """Telehealth at 60 % (1.5 real arrivals/s) stepping to 9x: the estimate follows within seconds."""
    weight, low, step_at = float(SAMPLING_WEIGHT), 1.5, 300.0
    high = 9 * low
    late = []
    for seed in range(30):
        rng, est, t, found = random.Random(seed), ArrivalRateEstimator(0.0), 0.0, math.inf
        reading_at_10s = None
        while t < step_at + 10.0:
            t += rng.expovariate(low if t < step_at else high)
            est.admit(t, weight)
            r = est.rate(t) / (high * weight)
            if t >= step_at and found == math.inf and abs(r - 1.0) <= 0.2:
                found = t - step_at
            if t >= step_at + 8.0 and reading_at_10s is None:
                reading_at_10s = r
        assert found <= 5.0, (seed, found)
        late.append(reading_at_10s)
    assert sum(abs(r - 1.0) <= 0.2 for r in late if r is not None) >= 26  # and it stays there


def test_steady_load_keeps_a_long_window() -> None:
    """A steady Poisson load restarts the window rarely, and the estimate's spread is ~1/sqrt(arrivals)."""
    rng, est, t, readings = random.Random(7), ArrivalRateEstimator(0.0), 0.0, []
    while t < 3600.0:
        t += rng.expovariate(1.5)
        est.admit(t, 20.0)
        if t > 120.0:
            readings.append(est.rate(t) / 30.0)
    readings.sort()
    assert est.restarts <= 6
    q05, q50, q95 = (readings[int(q * len(readings))] for q in (0.05, 0.5, 0.95))
    assert 0.95 < q50 < 1.06
    assert q95 - q05 < 0.45  # 60 s x 1.5/s = 90 arrivals: +-1.645 x 0.105; a 5 s window gives ~1.2


def test_silence_reads_as_no_load_within_seconds() -> None:
    rng, est, t = random.Random(3), ArrivalRateEstimator(0.0), 0.0
    while t < 200.0:
        t += rng.expovariate(5.0)
        est.admit(t, 20.0)
    assert est.rate(t) == pytest.approx(100.0, rel=0.25)
    assert est.rate(t + 4.0) < 10.0  # a 200-arrival window without the change test would still read ~80


def test_rate_change_statistic_is_the_poisson_likelihood_ratio() -> None:
    """Compared with the log-likelihoods scipy computes: one rate for both parts vs one each."""
    for older, d1, recent, d2 in ((30, 20.0, 12, 2.0), (5, 10.0, 0, 3.0), (40, 30.0, 4, 3.0)):
        pooled = (older + recent) / (d1 + d2)
        l0 = stats.poisson.logpmf(older, pooled * d1) + stats.poisson.logpmf(recent, pooled * d2)
        l1 = stats.poisson.logpmf(older, older) + stats.poisson.logpmf(recent, max(recent, 1e-300))  # MLE means
        assert rate_change_statistic(older, d1, recent, d2) == pytest.approx(2 * (l1 - l0), rel=1e-6, abs=1e-9)
    assert rate_change_statistic(20, 10.0, 4, 2.0) == pytest.approx(0.0, abs=1e-12)


def test_overload_grows_the_backlog_and_60_percent_does_not() -> None:
    """At 120 % the queue piles up (the cap is the route timeout's worth: 500 units); at 60 % it does not."""
    beh = BEHAVIOURS["telehealth"]
    backlogs, medians = [], []
    for seed in range(8):
        over = CapacityModel(25.0, beh, started=0.0)
        drive(over, 2, 1.2 * 50 / SAMPLING_WEIGHT, SAMPLING_WEIGHT, 120.0, seed=seed)
        backlogs.append(over.backlog)
        late = drive(over, 2, 1.2 * 50 / SAMPLING_WEIGHT, SAMPLING_WEIGHT, 30.0, seed=seed + 10, start=120.0)
        medians.append(sorted(late)[len(late) // 2])
        steady = CapacityModel(25.0, beh, started=0.0)
        drive(steady, 2, 0.6 * 50 / SAMPLING_WEIGHT, SAMPLING_WEIGHT, 600.0, seed=seed)
        assert steady.backlog < 5.0  # 0.1 s of work: nothing piles up at 60 %
    # The true excess (10 units/s) fills the cap in 50 s. The backlog grows only while the overload is
    # significant in the window's ~1.8 real arrivals/s (and a run's own arrivals may fall short of 120 %).
    assert sorted(backlogs)[4] >= 400.0 and sum(b > 250.0 for b in backlogs) >= 6, backlogs
    assert sorted(medians)[4] > 5.0, medians  # a typical request then waits behind the backlog


def test_a_surge_far_over_capacity_fills_the_queue_at_its_true_pace() -> None:
    """3x capacity: the one-standard-error margin hardly slows the backlog (true excess 100 units/s)."""
    model = CapacityModel(25.0, BEHAVIOURS["telehealth"], started=0.0)
    drive(model, 2, 30.0 / SAMPLING_WEIGHT, SAMPLING_WEIGHT, 120.0, seed=4)  # 60 % first: a long window
    drive(model, 2, 150.0 / SAMPLING_WEIGHT, SAMPLING_WEIGHT, 4.0, seed=5, start=120.0)
    assert 200.0 < model.backlog <= 500.0  # ~400 after 4 s less the second the change test needs


def test_batch_services_latency_follows_the_true_rate() -> None:
    """Vitals (batches of 20-60 messages, no weight) at 60 %: the estimate gives the latency the true rate gives."""

    class TrueRate:
        def admit(self, t: float, units: float) -> None:
            pass

        def rate(self, now: float) -> float:
            return 0.6 * 600.0

        def relative_error(self, now: float) -> float:
            return 0.0

    beh: ServiceBehaviour = BEHAVIOURS["vitals-ingestion"]
    rate = 0.6 * 600.0 / 40.0
    est = p95(_batches(CapacityModel(200.0, beh, started=0.0), rate))
    oracle = p95(_batches(CapacityModel(200.0, beh, started=0.0, rate_estimator=TrueRate()), rate))
    assert est == pytest.approx(oracle, rel=0.1)


def _batches(model: CapacityModel, real_rate: float) -> list[float]:
    rng, t, out = random.Random(5), 0.0, []
    while t < 600.0:
        t += rng.expovariate(real_rate)
        units = float(rng.randint(20, 60))
        model.queued_units(t, 3, None)
        model.admit(t, units)
        out.append(model.sample_latency(t, 3, units, rng))
    return out
