"""Detectors: registry names, [0, 1] scores, causality, and that a clear anomaly outscores normal data."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from careplane.anomaly.base import Detector
from careplane.anomaly.corpus import run_detector
from careplane.anomaly.likelihood import AnomalyLikelihood
from careplane.anomaly.registry import make_detector
from careplane.anomaly.residual import ForecastResidualDetector, LocalTrendPredictor
from careplane.policy import DetectorName

FAST = ["auto", "forecast_residual", "robust_zscore"]


def _series(n: int = 1200, spike_at: int | None = 1000, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    values = [100.0 + 10.0 * math.sin(i / 20.0) + rng.gauss(0.0, 2.0) for i in range(n)]
    if spike_at is not None:
        values[spike_at] += 60.0
    return values


def test_registry_knows_exactly_the_policy_detector_names() -> None:
    for name in DetectorName:
        detector = make_detector(name.value)
        assert isinstance(detector, Detector)
        assert detector.name == name.value
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("isolation_forest")


@pytest.mark.parametrize("name", FAST)
def test_scores_are_in_unit_interval_and_a_spike_stands_out(name: str) -> None:
    values = _series()
    scores = run_detector(make_detector(name), values)
    assert len(scores) == len(values)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores[1000] > scores[300:1000].max()


@pytest.mark.parametrize("name", FAST)
def test_scores_are_causal(name: str) -> None:
    values = _series()
    full = run_detector(make_detector(name), values)
    prefix = run_detector(make_detector(name), values[:700])
    np.testing.assert_array_equal(prefix, full[:700])


def test_missing_values_score_zero_and_do_not_read_as_zero() -> None:
    values = _series(spike_at=None)
    gapped = list(values)
    for i in range(400, 420):
        gapped[i] = math.nan
    scores = run_detector(make_detector("auto"), gapped)
    assert np.all(scores[400:420] == 0.0)
    # had the gap been read as zero demand, the samples after it would look anomalous
    clean = run_detector(make_detector("auto"), values)
    assert scores[420:430].max() <= clean[300:1200].max()


def test_half_space_trees_wrapper_scores_a_shingle() -> None:
    detector = make_detector("half_space_trees", n_trees=5, window_size=50)
    scores = run_detector(detector, _series(n=300, spike_at=280))
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores[:3].max() == 0.0  # the shingle is not full yet
    assert scores[280] > np.median(scores[100:280])


def test_forecast_residual_accepts_any_forecaster() -> None:
    # the protocol path (forecast(1, q)) must agree with the fast path of the same predictor
    protocol = ForecastResidualDetector(forecaster=LocalTrendPredictor())
    protocol._fast = False
    fast = ForecastResidualDetector(forecaster=LocalTrendPredictor())
    values = _series(n=300, spike_at=250)
    np.testing.assert_allclose(run_detector(protocol, values), run_detector(fast, values), atol=1e-6)


def test_likelihood_is_neutral_while_learning_then_flags_a_jump() -> None:
    lik = AnomalyLikelihood(short_window=5, learning=50)
    rng = random.Random(1)
    early = [lik.update(0.1 * rng.random()) for _ in range(50)]
    assert set(early) == {0.5}
    calm = [lik.update(0.1 * rng.random()) for _ in range(200)]
    jump = [lik.update(1.0) for _ in range(3)]
    assert max(calm) < 0.9999
    assert jump[-1] > 0.99999
    assert AnomalyLikelihood.log_score(jump[-1]) > AnomalyLikelihood.log_score(max(calm))
    assert AnomalyLikelihood.probability(AnomalyLikelihood.log_score(0.999)) == pytest.approx(0.999, abs=1e-6)


def test_forecast_residual_runs_on_a_careplane_forecasting_model() -> None:
    detector = make_detector("forecast_residual", forecaster="seasonal_naive", step_seconds=300.0)
    values = _series(n=400, spike_at=380)
    scores = run_detector(detector, values)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores[380] > scores[100:380].max()


@pytest.mark.parametrize("name", FAST)
def test_scores_do_not_depend_on_units_or_offset(name: str) -> None:
    # requests/s or requests/min, Celsius or Kelvin: the same stream, the same anomalies
    values = _series()
    base = run_detector(make_detector(name), values)
    moved = run_detector(make_detector(name), [60.0 * v + 1e4 for v in values])
    close = np.isclose(base, moved, atol=1e-6)
    assert close.mean() > 0.99  # float rounding may flip a quantisation bin now and then
    assert moved[1000] > moved[300:1000].max()
