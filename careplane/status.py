"""The ScalingPolicy status: what careplane tells the SRE about each decision.

Written by the operator (``kubectl get sp`` columns read from it) and by the
sandbox; its schema is part of the generated CRD.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ConditionType(StrEnum):
    READY = "Ready"
    TARGET_FOUND = "TargetFound"
    METRICS_AVAILABLE = "MetricsAvailable"
    CONFLICT = "Conflict"
    ANOMALY_DETECTED = "AnomalyDetected"


class _Status(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Status):
    """A Kubernetes-style condition."""

    type: Annotated[
        ConditionType, Field(description="Ready, TargetFound, MetricsAvailable, Conflict or AnomalyDetected.")
    ]
    status: Annotated[str, Field(pattern="^(True|False|Unknown)$", description="True, False or Unknown.")]
    reason: Annotated[str, Field(max_length=1024, description="CamelCase reason for the last transition.")] = ""
    message: Annotated[str, Field(max_length=32768, description="Human-readable detail.")] = ""
    lastTransitionTime: Annotated[str | None, Field(description="RFC 3339 time the status last changed.")] = None


class DemandStatus(_Status):
    """Measured and forecast demand."""

    current: Annotated[float | None, Field(description="Last measured demand in requests/s.")] = None
    forecast: Annotated[float | None, Field(description="Forecast mean demand over the horizon.")] = None
    forecastUpper: Annotated[
        float | None, Field(description="Forecast quantile (policy's forecast.quantile) over the horizon.")
    ] = None
    horizonSeconds: Annotated[int | None, Field(description="Horizon the forecast covers.")] = None
    model: Annotated[str | None, Field(description="Model in use (what auto chose).")] = None
    modelError: Annotated[
        float | None, Field(description="Rolling out-of-sample error (MASE) of the model in use.")
    ] = None
    recurringPeak: Annotated[
        float | None,
        Field(description="Demand past seasons rose to over this same window (today's base plus their median rise), "
                          "when at least 3 of them agree; forecastUpper is never below it."),
    ] = None
    recurringSeasons: Annotated[
        str | None, Field(description="How many past seasons showed that rise: 'k of K'.")
    ] = None


class AnomalyStatus(_Status):
    """The workload's anomaly state."""

    score: Annotated[float | None, Field(description="Anomaly probability in [0, 1].")] = None
    active: Annotated[bool | None, Field(description="Whether an anomaly is in progress (with hysteresis).")] = None
    signal: Annotated[str | None, Field(description="Signal that drove the score: demand, latency or errors.")] = None
    since: Annotated[str | None, Field(description="RFC 3339 time the active anomaly started.")] = None


class CircuitBreakerStatus(_Status):
    """Circuit-breaker values careplane last set."""

    maxPendingRequests: Annotated[int | None, Field(description="http1MaxPendingRequests.")] = None
    consecutive5xxErrors: Annotated[int | None, Field(description="outlierDetection.consecutive5xxErrors.")] = None


class RoutingStatus(_Status):
    """Routing weights careplane last set."""

    weights: Annotated[dict[str, int], Field(description="Weight per backend name.")] = Field(default_factory=dict)


class LastDecision(_Status):
    """The most recent decision and why."""

    time: Annotated[str | None, Field(description="RFC 3339 time of the decision.")] = None
    replicas: Annotated[int | None, Field(description="Replicas decided.")] = None
    reason: Annotated[str | None, Field(description="Which term set the replica count, in words.")] = None


class ScalingPolicyStatus(_Status):
    """Status subresource of a ScalingPolicy."""

    observedGeneration: Annotated[int | None, Field(description="metadata.generation last acted on.")] = None
    currentReplicas: Annotated[int | None, Field(description="Replicas the target has.")] = None
    desiredReplicas: Annotated[int | None, Field(description="Replicas careplane wants.")] = None
    conditions: Annotated[list[Condition], Field(description="Current conditions.")] = Field(default_factory=list)
    demand: Annotated[DemandStatus | None, Field(description="Demand and forecast.")] = None
    anomaly: Annotated[AnomalyStatus | None, Field(description="Anomaly state.")] = None
    circuitBreaker: Annotated[CircuitBreakerStatus | None, Field(description="Circuit breaker.")] = None
    routing: Annotated[RoutingStatus | None, Field(description="Routing weights.")] = None
    lastDecision: Annotated[LastDecision | None, Field(description="Last decision.")] = None
