"""Scoring in the drill reports: reaction times and per-minute SLO compliance on hand-made series."""

from __future__ import annotations

import numpy as np

from careplane.sandbox.demo import EXAMPLES
from careplane.sandbox.drill_report import summarise_history
from careplane.sandbox.locust_runner import load_scenarios
from careplane.sandbox.report import reaction
from careplane.sandbox.workloads import load_policies

SC = load_scenarios()
POLICIES = {p.metadata.name: p for p in load_policies([EXAMPLES])}


def _series(times: np.ndarray, changes: list[tuple[float, float]], start: float) -> np.ndarray:
    out = np.full(times.size, changes[0][1])
    for t, v in changes:
        out[times >= start + t] = v
    return out


def test_recurring_surge_passes_only_with_capacity_ready_before_onset() -> None:
    surge = SC.Surge("fhir-api", 0.5, 0.8, recurring=True)
    start, duration = 1000.0, 600.0  # onset at +300 s, needs ceil(540 / 50) = 11 replicas
    t = np.arange(start, start + duration, 5.0)
    desired = _series(t, [(0, 2), (150, 12)], start)
    early_ready = _series(t, [(0, 2), (250, 12)], start)
    late_ready = _series(t, [(0, 2), (320, 12)], start)
    good = reaction(POLICIES["fhir-api"], surge, start, duration, t, desired, early_ready, 540.0)
    late = reaction(POLICIES["fhir-api"], surge, start, duration, t, desired, late_ready, 540.0)
    assert (good.required_replicas, good.decision_seconds, good.ready_seconds, good.passed) == (11, -150, -50, True)
    assert (late.ready_seconds, late.passed) == (20, False)
    assert good.max_replicas_during == 12


def test_unforecast_surge_needs_a_decision_within_two_intervals_and_a_retry_storm_must_not_be_chased() -> None:
    start, duration = 0.0, 600.0
    t = np.arange(start, duration, 5.0)
    storm = SC.Surge("vitals-ingestion", 0.3, 0.45)  # onset 180 s; 15 s interval -> 30 s allowed
    needs = 2280.0  # 6 x 380 messages/s -> 12 replicas of 200
    quick = reaction(POLICIES["vitals-ingestion"], storm, start, duration, t, _series(t, [(0, 4), (205, 12)], start),
                     _series(t, [(0, 4), (250, 12)], start), needs)
    slow = reaction(POLICIES["vitals-ingestion"], storm, start, duration, t, _series(t, [(0, 4), (215, 12)], start),
                    _series(t, [(0, 4), (260, 12)], start), needs)
    assert (quick.decision_seconds, quick.passed) == (25, True)
    assert (slow.decision_seconds, slow.passed) == (35, False)
    # a second burst that finds the first one's replicas still ready needs no decision; one that finds them
    # gone (ready reached earlier, scaled down before the onset) does
    kept = reaction(POLICIES["vitals-ingestion"], storm, start, duration, t, _series(t, [(0, 12)], start),
                    _series(t, [(0, 4), (100, 12)], start), needs)
    gone = reaction(POLICIES["vitals-ingestion"], storm, start, duration, t, _series(t, [(0, 12), (120, 4)], start),
                    _series(t, [(0, 4), (100, 12), (120, 4)], start), needs)
    assert (kept.decision_seconds, kept.ready_seconds, kept.passed) == (None, -80, True)
    assert (gone.decision_seconds, gone.passed) == (None, False)
    retry = SC.Surge("vitals-ingestion", 0.4, 0.48, anomalous=True)
    calm = reaction(POLICIES["vitals-ingestion"], retry, start, duration, t, _series(t, [(0, 4), (250, 6)], start),
                    _series(t, [(0, 4)], start), 1900.0)
    chased = reaction(POLICIES["vitals-ingestion"], retry, start, duration, t, _series(t, [(0, 4), (250, 10)], start),
                      _series(t, [(0, 4)], start), 1900.0)
    assert (calm.required_replicas, calm.passed, chased.passed) == (10, True, False)


def test_client_side_minutes_score_latency_and_errors_by_phase() -> None:
    start = 10_000.0
    rows = []
    total = failed = 0
    for second in range(180):
        total += 10
        p95_ms = 120.0 if second < 60 or second >= 120 else 450.0  # the middle minute is slow
        if 130 <= second < 135:
            failed += 2  # a few failures in the last minute: 10 of 600 = 1.7 % > 1 %
        rows.append({"Timestamp": str(start + second), "Total Request Count": str(total),
                     "Total Failure Count": str(failed), "95%": str(p95_ms)})
    summary = summarise_history(rows, start, 180.0, [(start + 60, start + 120)], 0.3, 0.01, "x", "http://h")
    assert (summary.requests, summary.failed) == (1800, 10)
    assert {k: (p.minutes, p.compliant) for k, p in summary.phases.items()} == {
        "before": (1, 1), "during": (1, 0), "after": (1, 0)}
    assert summary.p95_max_seconds == 0.45


def test_a_burst_shorter_than_two_intervals_is_scored_on_its_reaction_not_cut_off_at_its_end() -> None:
    """A 15 s burst (0.1 of a 150 s drill): the decision 20 s after onset is within 2 x 15 s and counts."""
    start, duration = 0.0, 150.0
    t = np.arange(start, duration, 1.0)
    burst = SC.Surge("vitals-ingestion", 0.3, 0.4)  # 45 s to 60 s
    needs = 2280.0
    late_but_ok = reaction(POLICIES["vitals-ingestion"], burst, start, duration, t,
                           _series(t, [(0, 4), (65, 12)], start), _series(t, [(0, 4)], start), needs)
    too_late = reaction(POLICIES["vitals-ingestion"], burst, start, duration, t,
                        _series(t, [(0, 4), (80, 12)], start), _series(t, [(0, 4)], start), needs)
    assert (late_but_ok.decision_seconds, late_but_ok.passed) == (20, True)
    assert (too_late.decision_seconds, too_late.passed) == (35, False)
