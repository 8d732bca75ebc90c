"""Demand forecasting: models with one shape, automatic selection, capacity planning.

Entry points: :func:`~careplane.forecasting.registry.make_forecaster` (a model by
its policy name), :func:`~careplane.forecasting.capacity.replicas_needed` and
:func:`~careplane.forecasting.capacity.summarize` (a forecast to replicas / to
the decision core's ``ForecastSummary``). Heavy libraries (statsmodels, river)
load only when a model that needs them is built.
"""

from careplane.forecasting.base import Forecast, Forecaster

__all__ = ["Forecast", "Forecaster"]
