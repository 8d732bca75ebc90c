"""Scenarios, the backfilled history, and a real Locust drill (its own process) against the workloads."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests
from typer.testing import CliRunner

from careplane.cli.app import app
from careplane.sandbox.demo import EXAMPLES
from careplane.sandbox.history import clinic_rhythm, history_series
from careplane.sandbox.locust_runner import LOADTESTS, load_scenarios, locustfile
from careplane.sandbox.workloads import BEHAVIOURS, SAMPLING_WEIGHT

SC = load_scenarios()


def test_every_scenario_has_a_locustfile_naming_its_shape_and_known_workloads() -> None:
    for name, scenario in SC.SCENARIOS.items():
        text = locustfile(name).read_text()
        assert f'scenario_name = "{name}"' in text and "(ScenarioShape)" in text
        assert set(scenario.rates) <= set(BEHAVIOURS) and scenario.primary in scenario.rates
        for item in (*scenario.surges, *scenario.faults):
            assert item.workload in scenario.rates and 0 <= item.start < item.end <= 1
    for required in ("flu-season", "vaccination-campaign", "device-storm", "regional-degradation", "retry-storm"):
        assert required in SC.SCENARIOS


def test_vaccination_campaign_is_a_step_at_a_known_time() -> None:
    sc = SC.get("vaccination-campaign")
    base = SC.BASELINE["fhir-api"]
    assert sc.rate("fhir-api", 0.49) == base and sc.rate("fhir-api", 0.7) == 9 * base
    assert sc.rate("fhir-api", 0.95) == base
    assert sc.surges[0].recurring
    retry = SC.get("retry-storm").surges[0]
    assert retry.anomalous and not retry.recurring


def test_paced_arrivals_follow_a_surge_at_once_by_thinning() -> None:
    """A pool sized for the peak: each user sleeps until its next arrival. A burst that begins while they
    sleep must reach the service at its rate from its first seconds (the device storm's 22 s bursts)."""
    import random

    base, peak, onset, end = 9.5, 57.0, 100.0, 122.0  # requests/s of vitals batches: 380 -> 2280 messages/s
    curve = SC.step(base, peak, onset / 200.0, end / 200.0, rise=0.0)
    users, rng = 570, random.Random(3)  # a pool open-loop up to a 10 s latency at the peak
    arrivals: list[float] = []
    for _ in range(users):
        t = 0.0
        while t < 200.0:
            t = SC.thinned_arrival(t, lambda x: curve(x / 200.0) / users, peak / users, rng)
            arrivals.append(t)
    times = np.array(arrivals)

    def rate(a: float, b: float) -> float:
        return float(((times >= a) & (times < b)).sum()) / (b - a)

    assert abs(rate(20.0, 100.0) - base) < 4 * math.sqrt(base / 80.0)  # Poisson: within 4 sigma of the curve
    assert abs(rate(onset, onset + 5.0) - peak) < 4 * math.sqrt(peak / 5.0)  # at the peak from the first 5 s
    assert abs(rate(end + 1.0, 200.0) - base) < 4 * math.sqrt(base / 77.0)
    # the check has teeth: the old pacing (an interval drawn from the rate when the user fell asleep) lags
    lagging: list[float] = []
    for _ in range(users):
        t = rng.expovariate(base / users)
        while t < 200.0:
            lagging.append(t)
            t += rng.expovariate(curve(t / 200.0) / users)
    old = np.array(lagging)
    assert ((old >= onset) & (old < onset + 5.0)).sum() / 5.0 < 0.5 * peak


def test_a_known_campaign_becomes_a_schedule_window_a_pod_startup_ahead_of_the_onset() -> None:
    """The SRE's lever for a campaign at a known time: a replica floor for its peak, opened early enough."""
    from careplane.decision.schedules import schedule_floor
    from careplane.policy import ScalingPolicy
    from careplane.sandbox.demo import EXAMPLES, campaign_schedule, policy_object

    sc = SC.get("vaccination-campaign")
    surge = sc.surges[0]
    assert surge.scheduled and not any(s.scheduled for s in SC.get("showcase").surges)  # the demo shows forecasts
    doc = policy_object(EXAMPLES / "fhir-api.yaml")[0]
    policy = ScalingPolicy.model_validate(doc)
    start_at, duration = 1_795_300_017.0, 150.0  # onset at +75 s
    window = campaign_schedule(policy, surge, sc.peak("fhir-api"), start_at, duration)
    assert window["minReplicas"] == math.ceil(540 / (50 * 0.7))  # the peak at targetUtilization: 16
    with_window = ScalingPolicy.model_validate({**doc, "spec": {**doc["spec"], "schedules": [window]}})
    schedules = with_window.spec.schedules
    onset, end = start_at + 0.5 * duration, start_at + 0.8 * duration
    # active from a pod startup plus two intervals before the onset until the surge is over, not a day long
    assert schedule_floor(schedules, onset - 90 - 2 * 15)[0] == 16
    assert all(schedule_floor(schedules, t)[0] == 16 for t in np.arange(onset - 120, end + 1, 5.0))
    assert schedule_floor(schedules, end + 120)[0] == 0 and schedule_floor(schedules, onset - 200)[0] == 0


def test_history_repeats_the_recurring_surge_daily_and_meets_the_live_baseline() -> None:
    sc = SC.get("vaccination-campaign")
    start, duration, step = 1_800_000_000.0, 600.0, 20.0
    series = history_series(sc, {"fhir-api": "clinical"}, {"fhir-api": "primary"}, {"fhir-api": "127.0.0.1:1"},
                            history_end=start - 30, drill_start=start, drill_duration=duration, days=3,
                            step_seconds=step)
    assert len(series) == 1
    s = series[0]
    assert s.labels["namespace"] == "clinical" and s.labels["instance"] == "127.0.0.1:1" and s.kind == "counter"
    t = np.array([x[0] for x in s.samples])
    v = np.array([x[1] for x in s.samples])
    rate = np.diff(v) / np.diff(t)
    mid = t[1:]
    for day in (1, 2, 3):
        onset = start - day * 86400 + 0.5 * duration
        inside = (mid > onset + 40) & (mid < onset + sc.surges[0].history_seconds - 20)
        before = (mid > onset - 900) & (mid < onset - 60)
        assert inside.any() and before.any()
        assert rate[inside].mean() > 5 * rate[before].mean()  # the surge is in every past day
    # At the seam the history's level is the live baseline (rhythm normalised at the drill start).
    assert abs(rate[-30:].mean() / SC.BASELINE["fhir-api"] - 1) < 0.1
    assert 0.2 < clinic_rhythm(np.array([start]))[0] <= 1.0


def test_drill_against_a_base_url_plays_the_fault_and_reports_client_side(tmp_path: Path) -> None:
    """`careplane drill regional-degradation --host URL`: real Locust, real HTTP, fault injected on schedule."""
    ports_file = tmp_path / "ports.json"
    wl = subprocess.Popen([sys.executable, "-m", "careplane.sandbox.workloads", "--policies", str(EXAMPLES),
                           "--ports-file", str(ports_file), "--initial-replicas", "fhir-api=20"],
                          start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ports_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        host = f"http://127.0.0.1:{json.loads(ports_file.read_text())['fhir-api']['port']}"
        duration = 20.0
        report = tmp_path / "report"
        result = CliRunner().invoke(app, ["drill", "regional-degradation", "--host", host, "--duration",
                                          str(duration), "--report", str(report), "--request-weight", "2"])
        assert result.exit_code == 0, result.output
        summary = json.loads((report / "summary.json").read_text())
        events = {e["event"]: e for e in summary["events"]}
        start = events["start"]["start"]
        # Faults at 25 % and 60 % of the drill, applied to the sandbox's control endpoint.
        assert events["fault-on"]["outcome"] == "applied" and events["fault-off"]["outcome"] == "applied"
        assert abs(events["fault-on"]["t"] - (start + 0.25 * duration)) < 2.5
        assert abs(events["fault-off"]["t"] - (start + 0.6 * duration)) < 2.5
        # Locust offered the scenario's demand: 72 units/s / 2 units per request over 20 s.
        expected = 1.2 * SC.BASELINE["fhir-api"] / 2 * duration
        assert 0.7 * expected < summary["requests"] < 1.3 * expected
        metrics = requests.get(host + "/metrics", timeout=5).text

        def count(backend: str, code: str) -> float:
            lines = [ln for ln in metrics.splitlines() if ln.startswith("http_requests_total{")
                     and f'backend="{backend}"' in ln and f'code="{code}"' in ln]
            return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines) / SAMPLING_WEIGHT  # counted per modeled request

        assert count("secondary", "503") > 0 and count("primary", "503") == 0  # only the degraded region failed
        # Client and server agree within the binomial spread: the server counts each modeled request a real one
        # stands for as failing independently (workloads.py), the client sees the real one (and a request cut
        # off when Locust stops is seen by the server only).
        sent = count("secondary", "200") + count("secondary", "503")
        assert abs(summary["failed"] - count("secondary", "503")) <= 2 + 3 * math.sqrt(0.25 * sent)
        assert 0.04 < count("secondary", "200") / max(1.0, count("primary", "200")) < 0.2  # the 90/10 split
    finally:
        wl.terminate()
        wl.wait(timeout=10)


def test_loadtests_do_not_import_careplane() -> None:
    """Locust's process must stay free of aiohttp/kopf/kubernetes: the locustfiles only import each other."""
    for path in LOADTESTS.glob("*.py"):
        imports = re.findall(r"^(?:from|import) (\S+)", path.read_text(), re.M)
        assert not [m for m in imports if m.split(".")[0] in {"careplane", "aiohttp", "kopf", "kubernetes"}], path


def test_unknown_scenario_is_a_usage_error_naming_the_choices() -> None:
    for args in (["drill", "flu"], ["demo", "--scenario", "flu"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2
        assert "unknown scenario 'flu'" in result.output and "vaccination-campaign" in result.output
