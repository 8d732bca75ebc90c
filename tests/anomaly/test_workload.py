"""WorkloadAnomalyMonitor: multi-signal score, driving signal, hysteresis, missing samples."""

from __future__ import annotations

import random

from careplane.anomaly.workload import WorkloadAnomalyMonitor


def _feed(monitor: WorkloadAnomalyMonitor, n: int, latency: float = 0.1, start: int = 0, seed: int = 3) -> list:
    rng = random.Random(seed + start)
    out = []
    for i in range(start, start + n):
        out.append(
            monitor.update(
                15.0 * i,
                {
                    "demand": 100.0 + rng.gauss(0.0, 3.0),
                    "latency": latency + rng.gauss(0.0, 0.004),
                    "errors": None if i % 9 == 0 else 0.01 + rng.gauss(0.0, 0.001),
                    "backend:blue": 0.0,
                },
            )
        )
    return out


def test_latency_surge_activates_with_the_right_signal_and_since() -> None:
    monitor = WorkloadAnomalyMonitor(detector="auto", sensitivity=0.99)
    calm = _feed(monitor, 400)
    assert not any(s.active for s in calm[200:])  # no false alarm on calm data
    surge = _feed(monitor, 20, latency=0.5, start=400)
    first = next(i for i, s in enumerate(surge) if s.active)
    assert surge[first].signal == "latency"
    assert surge[first].since == 15.0 * (400 + first)
    assert surge[-1].active and surge[-1].since == surge[first].since  # no flapping while it lasts
    assert set(surge[-1].signal_scores) == {"demand", "latency", "errors", "backend:blue"}


def test_anomaly_ends_only_after_staying_quiet() -> None:
    monitor = WorkloadAnomalyMonitor(detector="robust_zscore", sensitivity=0.9, exit_samples=5)
    _feed(monitor, 300)
    _feed(monitor, 3, latency=2.0, start=300)
    after = _feed(monitor, 60, start=303)
    states = [s.active for s in after]
    assert states[0] or states[1]  # still active right after the surge
    off = states.index(False)
    assert off >= 4  # at least exit_samples quiet updates before it ends
    assert not any(states[off:])
    assert after[off].since is None


def test_missing_samples_are_skipped_not_zero() -> None:
    monitor = WorkloadAnomalyMonitor()
    _feed(monitor, 300)
    summary = monitor.update(4500.0, {"demand": None, "latency": None, "errors": None})
    assert summary.score == 0.0 and summary.signal is None and not summary.active
    # the next real sample is judged against the history, not against a zero
    after = _feed(monitor, 5, start=301)
    assert all(s.signal_scores["demand"] < 0.99 for s in after)


def test_latency_drop_is_good_news_not_an_anomaly() -> None:
    monitor = WorkloadAnomalyMonitor(sensitivity=0.99)
    _feed(monitor, 400)
    drop = _feed(monitor, 20, latency=0.01, start=400)
    assert all(s.signal_scores["latency"] == 0.0 for s in drop[1:])
    assert not any(s.active and s.signal == "latency" for s in drop)


def test_every_detector_speaks_probability_to_the_monitor() -> None:
    # robust_zscore scores are surprise-scaled; the monitor converts them back to a probability,
    # so sensitivity 0.99 means the same thing as with auto: a 6-sigma latency surge is caught
    monitor = WorkloadAnomalyMonitor(detector="robust_zscore", sensitivity=0.99)
    calm = _feed(monitor, 300)
    assert not any(s.active for s in calm[50:])
    surge = _feed(monitor, 5, latency=0.1 + 6 * 0.004 * 1.5, start=300)
    assert any(s.active and s.signal == "latency" for s in surge)
