"""Demand forecasting: models with one shape, automatic selection, capacity planning."""

from careplane.forecasting.base import Forecast, Forecaster

__all__ = ["Forecast", "Forecaster"]
