"""Build a forecaster by its policy name (``careplane.policy.ForecastModel`` values) — the one factory everyone calls."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from careplane.forecasting.online import OnlineForecaster

# policy name -> "module:Class" (imported lazily: statsmodels and river are slow to import)
MODELS: dict[str, str] = {
    "auto": "careplane.forecasting.auto:AutoForecaster",
    "seasonal_naive": "careplane.forecasting.seasonal:SeasonalNaive",
    "holt_winters": "careplane.forecasting.holt_winters:HoltWinters",
    "sarimax": "careplane.forecasting.sarimax:HarmonicSarimax",
    "lag_regression": "careplane.forecasting.lag_regression:LagRegression",
    "fourier": "careplane.forecasting.fourier:FourierForecaster",
    "river": "careplane.forecasting.river_model:RiverForecaster",
}
# baselines for the benchmark and the CLI, not policy choices
BASELINES: dict[str, str] = {
    "naive": "careplane.forecasting.seasonal:Naive",
}


def available() -> list[str]:
    return [*MODELS, *BASELINES]


def make_forecaster(
    name: str,
    *,
    step_seconds: float,
    seasonalities_seconds: Sequence[float] = (86400, 604800),
    seed: int = 0,
    max_horizon: int = 24,
) -> OnlineForecaster:
    """A fresh forecaster ``name`` on a ``step_seconds`` grid with the given seasons.

    ``max_horizon`` (steps) is how far ahead intervals are calibrated and
    direct models trained up front; longer forecasts still work (trained on demand).
    Raises ``ValueError`` for an unknown name.
    """
    target = MODELS.get(name) or BASELINES.get(name)
    if target is None:
        raise ValueError(f"unknown forecast model {name!r}; choose one of {', '.join(available())}")
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    model: OnlineForecaster = cls(
        step_seconds=step_seconds, seasonalities_seconds=seasonalities_seconds, seed=seed, max_horizon=max_horizon
    )
    return model
