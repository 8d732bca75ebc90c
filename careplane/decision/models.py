"""The stateful model layer: one workload's forecaster and anomaly monitor.

``decide`` is pure and takes model *outputs*; this class owns the models and
turns raw metrics into :class:`Observations` with ``forecast`` and ``anomaly``
filled in. The operator, the backtest and the sandbox all use it, so the same
samples give the same forecasts and anomaly states everywhere.

Timing: ``observe(now, raw, sample_time)`` learns the demand sample measured at
``sample_time`` (the operator's Prometheus reading at ``now``; the backtest's
previous step, since metrics lag one step) and forecasts the steps after it
that fall in the provisioning window [now, now + podStartupSeconds + horizon].
Skipped steps are learned as gaps (NaN), never as zeros.

Every decision's reading (``observe`` and, between samples, ``track``) also feeds
the calibrated reactive bound (careplane.decision.reactive): the reading's excess
one podStartupSeconds + intervalSeconds later, at the policy quantile, and the
choice between that bound and the forecast's by rolling pinball loss.

Every sample also feeds the recurring-peak bound (careplane.decision.recurrence):
what demand rose to over this same window on the last past days (the shortest
declared season longer than the window). The forecast's ``upper`` is never below
it, so a short event that recurs every day at the same time (which a model fitted
on whole days smooths away) is bought ahead; ``ForecastSummary.model_upper`` keeps
the forecaster's own bound and ``recurring`` says where the other came from.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from careplane.decision.calibration import WindowCalibrator
from careplane.decision.hold import HoldChooser
from careplane.decision.reactive import ReactiveCalibrator
from careplane.decision.recurrence import RecurrenceBound, season_for
from careplane.decision.types import AnomalySummary, ForecastSummary, Observations, ReactiveSummary
from careplane.policy import ScaleDownHold, ScalingPolicySpec

# How far ahead the forecaster calibrates its per-step intervals and trains direct models; longer windows
# are still forecast (trained on demand) and their peak is calibrated by the WindowCalibrator, and a short
# recurring event beyond the model's reach is the recurring-peak bound's job (recurrence.py). Kept at 24:
# measured (benchmarks/recurrence.py, `auto`, 15 s NASA samples, forecasting the FHIR example's 66-step
# window) 160 us of CPU per sample at 24 vs 197 us at 66, against the forecast benchmark's 200 us target.
MAX_HORIZON_STEPS = 24
ANOMALY_REPLAY = 10_000  # samples of history the anomaly monitor re-learns on rebuild
# the reactive calibration window: one day of readings (a daily cycle's quiet and busy hours alike)
REACTIVE_WINDOW_SECONDS = 86_400.0
REACTIVE_MIN_WINDOW = 500
# ratios are taken against at least half a replica's worth of demand (a quiet spell is not a zero base)
REACTIVE_FLOOR_REPLICAS = 0.5


class WorkloadModels:
    """Forecaster + anomaly monitor of one ScalingPolicy on a ``step_seconds`` grid."""

    def __init__(self, spec: ScalingPolicySpec, step_seconds: float, *,
                 reading_window_seconds: float | None = None) -> None:
        """``reading_window_seconds``: how long a demand reading averages over (the range of the query's
        ``rate``; 0 for a gauge; None: one step, as the backtest's readings), see careplane.decision.reactive."""
        if not step_seconds > 0:
            raise ValueError(f"step_seconds must be positive, got {step_seconds}")
        self.spec = spec
        self.step = float(step_seconds)
        self.forecaster = None
        self.monitor = None
        self.recurrence: RecurrenceBound | None = None
        if spec.forecast.enabled:
            from careplane.forecasting.registry import make_forecaster

            self.forecaster = make_forecaster(
                spec.forecast.model.value,
                step_seconds=self.step,
                seasonalities_seconds=tuple(spec.forecast.seasonalitySeconds),
                max_horizon=min(MAX_HORIZON_STEPS, self.window_steps(0.0)),
            )
            # the recurring-peak bound (careplane.decision.recurrence) over the same window
            reach = self.window_steps(0.0) * self.step
            season = season_for(reach, spec.forecast.seasonalitySeconds)
            if season is not None:
                self.recurrence = RecurrenceBound(step_seconds=self.step, window_seconds=reach, season_seconds=season)
        if spec.anomaly.enabled:
            from careplane.anomaly.workload import WorkloadAnomalyMonitor

            self.monitor = WorkloadAnomalyMonitor(spec.anomaly.detector.value, spec.anomaly.sensitivity)
        self.calibrator = WindowCalibrator(step_seconds=self.step, quantile=spec.forecast.quantile)
        # the reading that shows the need of capacity asked now: one startup plus one decision later
        self.reactive = ReactiveCalibrator(
            horizon_seconds=spec.demand.podStartupSeconds + spec.intervalSeconds,
            quantile=spec.forecast.quantile,
            floor=REACTIVE_FLOOR_REPLICAS * spec.demand.perReplicaCapacity,
            step_seconds=self.step,
            window=max(REACTIVE_MIN_WINDOW, math.ceil(REACTIVE_WINDOW_SECONDS / spec.intervalSeconds)),
            # until calibrated: the policy's own headroom (the HPA's rule at targetUtilization)
            prior_ratio=1.0 / spec.demand.targetUtilization,
            reading_window_seconds=reading_window_seconds,
        )
        # how long this workload's dips call for holding capacity (at most the declared stabilisation)
        # (policy replicas.scaleDownHold: Fixed keeps the HPA's fixed window, and no chooser)
        self.hold: HoldChooser | None = None
        if spec.replicas.scaleDownHold == ScaleDownHold.LEARNED:
            self.hold = HoldChooser(
                declared_seconds=spec.replicas.scaleDownStabilizationSeconds,
                startup_seconds=spec.demand.podStartupSeconds,
                interval_seconds=spec.intervalSeconds,
                window=self.reactive.excess.window,
            )
        self.last_sample_time: float | None = None
        self._t0: float | None = None
        self._last_anomaly: AnomalySummary | None = None
        self._last_forecast: ForecastSummary | None = None

    def window_steps(self, lag_seconds: float) -> int:
        """Forecast steps after the last sample that reach now + podStartupSeconds + horizon."""
        reach = lag_seconds + self.spec.demand.podStartupSeconds + self.spec.forecast.horizonSeconds
        return max(1, math.ceil(reach / self.step - 1e-9))

    def rebuild(self, times: np.ndarray, values: np.ndarray) -> None:
        """Start from history (after an operator restart), as if the samples had arrived one by one.

        The forecaster bulk-fits all but the last few windows' worth of samples; those are then
        replayed through :meth:`observe` so the window calibrator holds the same excesses as
        in a run that never stopped. The anomaly monitor re-learns the last ``ANOMALY_REPLAY`` samples.
        """
        times = np.asarray(times, dtype=float)
        values = np.asarray(values, dtype=float)
        if len(times) == 0:
            return
        tail = min(len(times), self.calibrator.window + 2 * self.window_steps(0.0))
        head = len(times) - tail
        if head > 0 and self.recurrence is not None:
            self.recurrence.extend(times[:head], values[:head])
        if head > 0:
            if self.forecaster is not None:
                self.forecaster.fit(times[:head], values[:head])
                self._t0 = float(times[0])
            if self.monitor is not None:
                # the detectors adapt within a few thousand samples; replaying weeks of
                # 15 s samples would only slow an operator restart down
                start = max(0, head - ANOMALY_REPLAY)
                for t, y in zip(times[start:head], values[start:head], strict=True):
                    self.monitor.update(float(t), {"demand": None if math.isnan(y) else float(y)})
            self.last_sample_time = float(times[head - 1])
        for t, y in zip(times[head:], values[head:], strict=True):
            self.observe(float(t), Observations(demand=float(y), current_replicas=None, ready_replicas=None))

    def observe(self, now: float, raw: Observations, sample_time: float | None = None) -> Observations:
        """Learn the new samples and return ``raw`` with ``forecast`` and ``anomaly`` filled in."""
        t = now if sample_time is None else float(sample_time)
        demand = raw.demand if raw.demand is not None and math.isfinite(raw.demand) and raw.demand >= 0 else None
        fresh = self.last_sample_time is None or t > self.last_sample_time
        forecast: ForecastSummary | None = None
        if self.forecaster is not None:
            if fresh:
                self.forecaster.learn_one(t, math.nan if demand is None else demand)
                if self.recurrence is not None:
                    self.recurrence.observe(t, demand)
                index = self._index(t)
                self.calibrator.observe(index, demand)
                forecast = self._last_forecast = self._summary(now - t, index, t)
            else:
                forecast = self._last_forecast
        anomaly: AnomalySummary | None = None
        if self.monitor is not None and fresh:
            signals: dict[str, float | None] = {"demand": demand}
            if raw.latency_seconds is not None:
                signals["latency"] = raw.latency_seconds
            if raw.error_rate is not None:
                signals["errors"] = raw.error_rate
            for name, rate in raw.backend_error_rates.items():
                signals[f"backend:{name}"] = rate
            anomaly = self._last_anomaly = self.monitor.update(t, signals)
        elif self.monitor is not None:
            anomaly = self._last_anomaly
        if fresh:
            self.last_sample_time = t
        reactive = self.track(now, demand)
        return replace(raw, demand=demand, forecast=forecast, anomaly=anomaly, reactive=reactive)

    def track(self, now: float, reading: float | None) -> ReactiveSummary | None:
        """Learn a demand reading taken at ``now`` (every decision's, also between samples) for the
        calibrated reactive bound, and return that bound. A repeated ``now`` learns nothing."""
        f = self._last_forecast
        bound = self.reactive.observe(now, reading, f.upper if f else None)
        if self.hold is None:
            return bound
        hold = self.hold.observe(now, reading, bound.upper if bound is not None else None)
        if bound is None:
            return None
        # a shorter hold buys its coverage back at the declared hold's cost (careplane.decision.hold)
        return replace(bound, upper=bound.upper * hold.scale, ratio=bound.ratio * hold.scale,
                       hold_seconds=hold.seconds)

    def _index(self, t: float) -> int:
        if self._t0 is None:
            self._t0 = t
        return round((t - self._t0) / self.step)

    def _summary(self, lag_seconds: float, index: int, sample_time: float) -> ForecastSummary | None:
        assert self.forecaster is not None
        steps = self.window_steps(max(0.0, lag_seconds))
        result = self.forecaster.forecast(steps, self.spec.forecast.quantile)
        # only the steps at or after now matter (earlier ones are already past)
        skip = max(0, min(steps - 1, math.ceil(max(0.0, lag_seconds) / self.step - 1e-9) - 1))
        mean, lower, upper = result.mean[skip:], result.lower[skip:], result.upper[skip:]
        finite = np.isfinite(mean) & np.isfinite(upper) & np.isfinite(lower)
        if not finite.any():
            return None
        error = getattr(self.forecaster, "model_error", None)
        error = error() if callable(error) else error
        peak_mean = float(mean[finite].max())
        self.calibrator.issue(index + 1 + skip, index + steps, peak_mean)
        calibrated = self.calibrator.upper(peak_mean, self.spec.forecast.quantile)
        model_upper = float(upper[finite].max()) if calibrated is None else calibrated
        recurring = None
        if self.recurrence is not None:
            now = sample_time + max(0.0, lag_seconds)
            reach = now + self.spec.demand.podStartupSeconds + self.spec.forecast.horizonSeconds
            recurring = self.recurrence.bound(now, reach, sample_time)
        return ForecastSummary(
            mean=peak_mean,
            # a recurring event the forecaster smoothed away still sets the bound (recurrence.py)
            upper=max(model_upper, recurring.peak) if recurring is not None else model_upper,
            lower=float(lower[finite].min()),
            horizon_seconds=self.spec.forecast.horizonSeconds,
            model=str(getattr(self.forecaster, "chosen", None) or self.forecaster.name),
            model_error=float(error) if isinstance(error, int | float) and math.isfinite(error) else None,
            recurring=recurring,
            model_upper=model_upper,
        )
