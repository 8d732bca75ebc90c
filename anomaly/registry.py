"""Detectors by name: the names are exactly ``careplane.policy.DetectorName``'s values."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from careplane.anomaly.auto import AutoDetector, default_views
from careplane.anomaly.base import Detector
from careplane.anomaly.residual import ForecastResidualDetector
from careplane.anomaly.zscore import RobustZScoreDetector


def _forecast_residual(**options: Any) -> ForecastResidualDetector:
    """``forecaster="<name>"`` drives the detector with a model from ``careplane.forecasting``
    (``step_seconds`` = the series' step; ``forecaster_options`` go to ``make_forecaster``).

    Without it the detector uses its built-in plain-Python predictor (fast enough
    for per-sample scoring; see :mod:`careplane.anomaly.residual`).
    """
    name = options.pop("forecaster", None)
    extra = options.pop("forecaster_options", {})
    if name is None:
        return ForecastResidualDetector(**options)
    registry = importlib.import_module("careplane.forecasting.registry")
    step = float(options.get("step_seconds", 60.0))
    forecaster = registry.make_forecaster(str(name), step_seconds=step, **extra)
    return ForecastResidualDetector(forecaster=forecaster, **options)


def _auto(**options: Any) -> Detector:
    """``forecaster="<name>"`` (with ``step_seconds``) swaps auto's residual view for one driven
    by that ``careplane.forecasting`` model; other options go to :class:`AutoDetector`."""
    if "forecaster" not in options:
        return AutoDetector(**options)
    residual = _forecast_residual(
        forecaster=options.pop("forecaster"),
        step_seconds=options.pop("step_seconds", 60.0),
        forecaster_options=options.pop("forecaster_options", {}),
    )
    history = int(options.get("seasonal_history", 3000))
    return AutoDetector(views=default_views(residual, seasonal_history=history), **options)


def _half_space_trees(**options: Any) -> Detector:
    """Imported on demand: river is slow to import and only this baseline needs it."""
    from careplane.anomaly.hst import HalfSpaceTreesDetector

    return HalfSpaceTreesDetector(**options)


DETECTORS: dict[str, Callable[..., Detector]] = {
    "auto": _auto,
    "forecast_residual": _forecast_residual,
    "robust_zscore": RobustZScoreDetector,
    "half_space_trees": _half_space_trees,
}


def detector_names() -> list[str]:
    return list(DETECTORS)


def make_detector(name: str, **options: Any) -> Detector:
    """A new detector ``name`` (a ``DetectorName`` value) built with ``options``; ValueError if unknown."""
    key = str(getattr(name, "value", name))
    try:
        factory = DETECTORS[key]
    except KeyError:
        raise ValueError(f"unknown detector {key!r}; choose one of {', '.join(DETECTORS)}") from None
    return factory(**options)
