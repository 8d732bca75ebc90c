"""Online anomaly detection: detectors with one shape, likelihood calibration, NAB-style evaluation."""

from careplane.anomaly.base import Detector

__all__ = ["Detector"]
