"""Online anomaly detection: detectors with one shape, likelihood calibration, NAB-style evaluation.

Public entry points:

* ``careplane.anomaly.registry.make_detector(name, **options)``: a detector by its
  ``careplane.policy.DetectorName`` value ("auto", "forecast_residual", "robust_zscore",
  "half_space_trees");
* ``careplane.anomaly.workload.WorkloadAnomalyMonitor``: one workload's multi-signal
  anomaly state (``update(t, signals) -> AnomalySummary``) for the decision core;
* ``careplane.anomaly.evaluation.score_corpus``: the NAB-style scorer.
"""

from careplane.anomaly.base import Detector
from careplane.anomaly.registry import detector_names, make_detector

__all__ = ["Detector", "detector_names", "make_detector"]
