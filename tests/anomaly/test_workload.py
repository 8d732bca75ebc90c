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


def _calm(i: int, rng: random.Random, **override: float | None) -> dict[str, float | None]:
    sample: dict[str, float | None] = {
        "demand": 100.0 + rng.gauss(0.0, 3.0),
        "errors": 0.002 + abs(rng.gauss(0.0, 0.0005)),
        "backend:secondary": 0.002 + abs(rng.gauss(0.0, 0.0005)),
    }
    sample.update(override)
    return sample


def test_an_error_anomaly_during_a_demand_anomaly_is_reported_too() -> None:
    """The demo's failure: a long demand anomaly (score 1.0) hid the error signal behind ``signal``."""
    monitor = WorkloadAnomalyMonitor(detector="auto", sensitivity=0.99)
    rng = random.Random(11)
    for i in range(400):
        monitor.update(15.0 * i, _calm(i, rng))
    surge = [monitor.update(15.0 * i, _calm(i, rng, demand=400.0 + rng.gauss(0.0, 3.0))) for i in range(400, 404)]
    assert surge[-1].active and surge[-1].active_signals == ("demand",)
    both = [monitor.update(15.0 * i, _calm(i, rng, demand=400.0 + rng.gauss(0.0, 3.0), errors=0.06,
                                            **{"backend:secondary": 0.6})) for i in range(404, 408)]
    assert {"demand", "errors", "backend:secondary"} <= set(both[-1].active_signals)
    assert both[-1].since == surge[0].since or both[-1].since == min(s.since for s in surge if s.since is not None)
    assert both[-1].signal in both[-1].active_signals


def test_each_signal_ends_on_its_own_and_a_silent_signal_does_not_stay_active() -> None:
    monitor = WorkloadAnomalyMonitor(detector="robust_zscore", sensitivity=0.99, exit_samples=3)
    rng = random.Random(5)
    for i in range(300):
        monitor.update(15.0 * i, _calm(i, rng))
    s = monitor.update(15.0 * 300, _calm(300, rng, errors=0.5, **{"backend:secondary": 0.6}))
    assert {"errors", "backend:secondary"} <= set(s.active_signals)
    # the backend is drained (no traffic: its ratio is unknown) while the service's errors persist
    after = [monitor.update(15.0 * i, _calm(i, rng, errors=0.5, **{"backend:secondary": None}))
             for i in range(301, 306)]
    assert "backend:secondary" in after[1].active_signals  # hysteresis: not before exit_samples quiet updates
    assert "backend:secondary" not in after[-1].active_signals  # a gap is not evidence of an ongoing anomaly
    assert all(a.active for a in after)  # the service-level errors keep the workload's anomaly going
    # a signal left out of an update altogether counts as missing too
    gone = [monitor.update(15.0 * i, {"demand": 100.0 + rng.gauss(0.0, 3.0)}) for i in range(306, 312)]
    assert not gone[-1].active and gone[-1].active_signals == () and gone[-1].since is None
