"""Surge scenarios as demand curves: the single source for Locust shapes, drills and the demo's history.

Pure standard library on purpose: this module is imported by Locust (its own
process, gevent-patched) and by careplane (the drill report and the sandbox's
backfilled history), and must drag neither's imports into the other.

Rates are in the policy's demand units per second (requests, device messages
or claims), the numbers a ScalingPolicy's ``demand.query`` reads. Locust turns
them into real HTTP requests by dividing by the units one request carries
(``units_per_request``: a batch size, or the sandbox's sampling weight).

Times are fractions of the drill's duration, so a 3-minute CI drill and a
10-minute demo show the same story. A scenario marked ``recurring`` happens
every day at the same time of day (a scheduled vaccination clinic): the
sandbox writes it into the backfilled history, so a seasonal forecast knows
it is coming. The others are unforecast.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

RateFn = Callable[[float], float]  # fraction of the drill in [0, 1] -> demand units/s

# Typical demand of each demo workload (units/s) outside surges: about 60-70 % of
# what the policy's minimum replicas serve, where a real service would sit.
BASELINE: dict[str, float] = {
    "fhir-api": 60.0,  # 2 replicas x 50 req/s
    "lab-orders": 36.0,  # 2 x 30
    "telehealth": 30.0,  # 2 x 25
    "vitals-ingestion": 380.0,  # 3 x 200 messages/s
    "billing-batch": 6.0,  # claims/s; ForecastOnly, replicas stay as deployed
}

# Units one request of a batch workload carries: uniform sizes between half and one and a half times the mean
# (users.py draws them; the sandbox's history gives its counters the same spread).
BATCH_UNITS: dict[str, float] = {"vitals-ingestion": 40.0, "billing-batch": 20.0}
BATCH_CV = 1.0 / math.sqrt(12.0)  # coefficient of variation of a uniform size on [0.5, 1.5] x mean


def batch_size(workload: str, draw: Callable[[int, int], int]) -> int:
    """One batch's size for ``workload`` with ``draw(lo, hi)`` (e.g. random.randint)."""
    mean = BATCH_UNITS[workload]
    return draw(round(mean / 2), round(mean * 1.5))


def flat(level: float) -> RateFn:
    return lambda f: level


def step(base: float, peak: float, start: float, end: float, rise: float = 0.01) -> RateFn:
    """base, then peak from ``start`` to ``end`` (a near-vertical edge ``rise`` wide), then base."""

    def rate(f: float) -> float:
        if f < start or f >= end + rise:
            return base
        if f < start + rise:
            return base + (peak - base) * (f - start) / rise
        if f >= end:
            return peak - (peak - base) * (f - end) / rise
        return peak

    return rate


def ramp(base: float, peak: float, up_start: float, up_end: float, down_start: float, down_end: float) -> RateFn:
    """A smooth (cosine) rise to peak and fall back: a season compressed into minutes."""

    def rate(f: float) -> float:
        if f <= up_start or f >= down_end:
            return base
        if f < up_end:
            x = (f - up_start) / (up_end - up_start)
        elif f <= down_start:
            x = 1.0
        else:
            x = 1.0 - (f - down_start) / (down_end - down_start)
        return base + (peak - base) * (1 - math.cos(math.pi * x)) / 2

    return rate


def bursts(base: float, peak: float, windows: tuple[tuple[float, float], ...]) -> RateFn:
    """Several square bursts (devices reconnecting together)."""
    steps = [step(base, peak, a, b, rise=0.005) for a, b in windows]
    return lambda f: max(s(f) for s in steps)


def thinned_arrival(after: float, rate_at: Callable[[float], float], peak: float, rng: random.Random,
                    max_candidates: int = 100_000) -> float:
    """The next arrival after ``after`` of a Poisson process whose rate follows ``rate_at`` (at most ``peak``).

    Lewis-Shedler thinning: candidates come at the constant rate ``peak``, and one at time t is kept with
    probability rate_at(t) / peak. The curve of a drill is known ahead (a function of time), so a paced
    user that sleeps until its next arrival wakes up for a surge that begins while it sleeps. Drawing the
    interval from the rate at the time a user fell asleep did not: each of a pool sized for the peak slept
    a baseline interval (about a minute), and a 22-second device-storm burst reached the service at a third
    of its rate (measured: Locust peaked at 20 of 57 requests/s). ``rate_at`` above ``peak`` is kept always.
    """
    if not peak > 0:
        raise ValueError(f"peak must be positive, got {peak}")
    t = after
    for _ in range(max_candidates):
        t += rng.expovariate(peak)
        if rng.random() * peak < rate_at(t):
            return t
    return t  # a curve at zero for ages: one stray request then is harmless


@dataclass(frozen=True)
class Fault:
    """Inject errors/latency into one routing backend of a workload between two fractions of the drill."""

    workload: str
    backend: str
    start: float
    end: float
    error_rate: float = 0.5
    latency_seconds: float = 0.0


@dataclass(frozen=True)
class Surge:
    """A window the drill report scores separately (before / during / after)."""

    workload: str
    start: float
    end: float
    recurring: bool = False  # in the daily pattern (backfilled history): capacity must be ready before it
    anomalous: bool = False  # a retry storm: must NOT be chased with replicas
    # How long the recurring surge lasts in the real daily pattern (the history): a drill compresses
    # a 20-minute booking rush into a fraction of minutes, the days before it were not compressed.
    history_seconds: float = 1200.0
    # The SRE knows the campaign's time and has put it in the policy's ``schedules`` (a replica floor for the
    # surge's peak at targetUtilization, starting a pod startup ahead): the sandbox writes that window on the
    # drill's clock, as it writes the history. Without it, capacity ahead comes from the forecast alone.
    scheduled: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    primary: str  # the workload --host points at
    rates: Mapping[str, RateFn]
    surges: tuple[Surge, ...] = ()
    faults: tuple[Fault, ...] = ()
    default_duration: float = 600.0
    extra: Mapping[str, str] = field(default_factory=dict)

    def rate(self, workload: str, fraction: float) -> float:
        fn = self.rates.get(workload)
        return max(0.0, fn(min(1.0, max(0.0, fraction)))) if fn else 0.0

    def peak(self, workload: str, samples: int = 400) -> float:
        return max(self.rate(workload, i / samples) for i in range(samples + 1))


def _background(*skip: str) -> dict[str, RateFn]:
    return {w: flat(v) for w, v in BASELINE.items() if w not in skip}


B = BASELINE
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "flu-season",
            "Respiratory season: clinical traffic ramps to ~3x over weeks (here minutes) and recedes.",
            "fhir-api",
            {
                "fhir-api": ramp(B["fhir-api"], 3 * B["fhir-api"], 0.1, 0.5, 0.7, 0.95),
                "lab-orders": ramp(B["lab-orders"], 3 * B["lab-orders"], 0.15, 0.55, 0.7, 0.95),
                "telehealth": ramp(B["telehealth"], 3.5 * B["telehealth"], 0.1, 0.45, 0.7, 0.95),
            },
            surges=(Surge("fhir-api", 0.1, 0.95),),
        ),
        Scenario(
            "vaccination-campaign",
            "A vaccination clinic opens booking at a known time every day: a 9x step on the FHIR API "
            "(in the history every day, and in the policy's schedules).",
            "fhir-api",
            {"fhir-api": step(B["fhir-api"], 9 * B["fhir-api"], 0.5, 0.8)},
            surges=(Surge("fhir-api", 0.5, 0.8, recurring=True, scheduled=True),),
        ),
        Scenario(
            "device-storm",
            "A ward's bedside monitors reconnect together after a network blip and flush their buffers.",
            "vitals-ingestion",
            {"vitals-ingestion": bursts(B["vitals-ingestion"], 6 * B["vitals-ingestion"], ((0.3, 0.45), (0.65, 0.75)))},
            surges=(Surge("vitals-ingestion", 0.3, 0.45), Surge("vitals-ingestion", 0.65, 0.75)),
        ),
        Scenario(
            "regional-degradation",
            "The secondary region starts failing half its requests; routing must shift away and come back.",
            "fhir-api",
            {"fhir-api": flat(1.2 * B["fhir-api"])},
            surges=(Surge("fhir-api", 0.25, 0.6),),
            faults=(Fault("fhir-api", "secondary", 0.25, 0.6, error_rate=0.6),),
        ),
        Scenario(
            "retry-storm",
            "A brief error burst, then the devices retry in a tight loop: an anomalous 5x spike that must not "
            "blow up replicas (the errors came first; in an overload the demand does).",
            "vitals-ingestion",
            {"vitals-ingestion": step(B["vitals-ingestion"], 5 * B["vitals-ingestion"], 0.4, 0.48, rise=0.002)},
            surges=(Surge("vitals-ingestion", 0.4, 0.48, anomalous=True),),
            faults=(Fault("vitals-ingestion", "default", 0.32, 0.4, error_rate=0.5),),
        ),
        Scenario(
            "showcase",
            "The demo: every workload at its baseline, a regional degradation of the FHIR API's secondary "
            "region, then the daily vaccination-clinic spike, then a device storm.",
            "fhir-api",
            {
                **_background(),
                "fhir-api": step(B["fhir-api"], 9 * B["fhir-api"], 0.5, 0.8),
                "vitals-ingestion": bursts(B["vitals-ingestion"], 5 * B["vitals-ingestion"], ((0.85, 0.93),)),
            },
            surges=(
                Surge("fhir-api", 0.5, 0.8, recurring=True),
                Surge("vitals-ingestion", 0.85, 0.93),
            ),
            faults=(Fault("fhir-api", "secondary", 0.12, 0.35, error_rate=0.6),),
        ),
    )
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
