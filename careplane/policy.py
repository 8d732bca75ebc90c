"""The ScalingPolicy model: what an SRE declares, with the CRD's defaults and rules.

This module is the single source of the ScalingPolicy schema. The CRD in
``crds/scalingpolicy.yaml`` is generated from these models (``careplane crd``)
and a test keeps the committed file in sync, so the API server and
``careplane validate`` accept and reject the same documents.

Field names are camelCase because they are the CRD's field names; Python code
reads them as attributes (``policy.spec.replicas.maxScaleUpStep``).
"""

from __future__ import annotations

import re
import zoneinfo
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from careplane.rules import Rule, check_rules

API_GROUP = "careplane.io"
API_VERSION = "v1alpha1"
KIND = "ScalingPolicy"
PLURAL = "scalingpolicies"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CRON_FIVE_FIELDS = r"^\s*\S+(\s+\S+){4}\s*$"


class Mode(StrEnum):
    ACTIVE = "Active"
    FORECAST_ONLY = "ForecastOnly"
    PAUSED = "Paused"


class Criticality(StrEnum):
    CRITICAL = "critical"
    STANDARD = "standard"
    BATCH = "batch"


class ForecastModel(StrEnum):
    AUTO = "auto"
    SEASONAL_NAIVE = "seasonal_naive"
    HOLT_WINTERS = "holt_winters"
    SARIMAX = "sarimax"
    LAG_REGRESSION = "lag_regression"
    FOURIER = "fourier"
    RIVER = "river"


class DetectorName(StrEnum):
    AUTO = "auto"
    FORECAST_RESIDUAL = "forecast_residual"
    ROBUST_ZSCORE = "robust_zscore"
    HALF_SPACE_TREES = "half_space_trees"


class RoutingKind(StrEnum):
    VIRTUAL_SERVICE = "VirtualService"
    HTTP_ROUTE = "HTTPRoute"


class ScaleDownHold(StrEnum):
    LEARNED = "Learned"
    FIXED = "Fixed"


class FallbackAction(StrEnum):
    HOLD = "hold"
    REPLICAS = "replicas"


class _Model(BaseModel):
    """Base of every spec object: unknown fields are errors (a typo is not silently ignored)."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_default=True)
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Any:
        check_rules(self, self.rules)
        return self


class TargetRef(_Model):
    """The workload careplane scales: any object with a ``/scale`` subresource."""

    apiVersion: Annotated[
        str, Field(min_length=1, max_length=253, description="API version of the target, e.g. apps/v1.")
    ] = "apps/v1"
    kind: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            pattern=r"^[A-Z][A-Za-z0-9]*$",
            description="Kind of the target (Deployment, StatefulSet, Rollout, ...); it must have a /scale subresource.",
        ),
    ] = "Deployment"
    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=DNS_SUBDOMAIN,
            description="Name of the target in the policy's namespace.",
        ),
    ]


class ReplicaBounds(_Model):
    """Hard bounds and rate limits on the replica count."""

    min: Annotated[int, Field(ge=0, le=10000, description="Fewest replicas careplane ever asks for.")] = 1
    max: Annotated[int, Field(ge=1, le=10000, description="Most replicas careplane ever asks for.")]
    maxScaleUpStep: Annotated[int, Field(ge=1, le=10000, description="Most replicas added by one decision.")] = 10
    maxScaleDownStep: Annotated[int, Field(ge=1, le=10000, description="Most replicas removed by one decision.")] = 2
    scaleDownStabilizationSeconds: Annotated[
        int,
        Field(
            ge=0,
            le=86400,
            description="Scale down only to the highest recommendation of this many past seconds (as the HPA); "
            "with scaleDownHold Learned, the longest such hold.",
        ),
    ] = 300
    scaleDownHold: Annotated[
        ScaleDownHold,
        Field(
            description="Fixed (default): always hold scaleDownStabilizationSeconds, as the HPA. Learned: hold "
            "less only while this workload's own history shows that a shorter hold, with the saved cost spent on "
            "headroom, missed significantly fewer steps; never longer than declared (it pays on spiky workloads "
            "run at low cost, see the README)."
        ),
    ] = ScaleDownHold.FIXED

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("self.min <= self.max", lambda s: s.min <= s.max, "min must be <= max", "min"),
    )


class Demand(_Model):
    """How demand is measured and what one replica serves."""

    query: Annotated[
        str,
        Field(
            min_length=1,
            max_length=4096,
            description="PromQL giving demand in requests/s; careplane confines it to the policy's namespace.",
        ),
    ]
    perReplicaCapacity: Annotated[
        float, Field(gt=0, le=1e9, description="Requests/s one replica serves within its SLO.")
    ]
    targetUtilization: Annotated[
        float,
        Field(gt=0, le=1, description="Utilisation the reactive floor aims at (the HPA's target)."),
    ] = 0.7
    podStartupSeconds: Annotated[
        int, Field(ge=0, le=3600, description="Seconds from asking for a replica to it serving traffic.")
    ] = 60


class SLO(_Model):
    """Optional service-level signals; they feed anomaly detection and the circuit breaker."""

    latencyQuery: Annotated[
        str | None, Field(min_length=1, max_length=4096, description="PromQL giving latency in seconds.")
    ] = None
    latencyTargetSeconds: Annotated[float | None, Field(gt=0, le=3600, description="Latency objective in seconds.")] = (
        None
    )
    errorRateQuery: Annotated[
        str | None, Field(min_length=1, max_length=4096, description="PromQL giving the error ratio (0..1).")
    ] = None
    maxErrorRate: Annotated[float | None, Field(ge=0, le=1, description="Highest acceptable error ratio.")] = None

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "!has(self.latencyQuery) || has(self.latencyTargetSeconds)",
            lambda s: s.latencyQuery is None or s.latencyTargetSeconds is not None,
            "latencyTargetSeconds is required when latencyQuery is set",
            "latencyTargetSeconds",
        ),
        Rule(
            "!has(self.errorRateQuery) || has(self.maxErrorRate)",
            lambda s: s.errorRateQuery is None or s.maxErrorRate is not None,
            "maxErrorRate is required when errorRateQuery is set",
            "maxErrorRate",
        ),
    )


class ForecastSpec(_Model):
    """Demand forecasting: predictive capacity is provisioned podStartupSeconds + horizon ahead."""

    enabled: Annotated[bool, Field(description="Use forecasts for predictive scaling.")] = True
    horizonSeconds: Annotated[int, Field(ge=0, le=86400, description="How far past pod startup to provision for.")] = (
        900
    )
    seasonalitySeconds: Annotated[
        list[Annotated[int, Field(ge=60, le=31536000)]],
        Field(max_length=4, description="Season lengths in seconds (e.g. 86400 daily, 604800 weekly)."),
    ] = Field(default_factory=lambda: [86400, 604800])
    model: Annotated[ForecastModel, Field(description="Forecasting model; auto picks by rolling error.")] = (
        ForecastModel.AUTO
    )
    quantile: Annotated[
        float,
        Field(ge=0.5, le=0.999, description="Forecast quantile capacity is provisioned for."),
    ] = 0.9
    historySeconds: Annotated[
        int,
        Field(ge=3600, le=31536000, description="History read from Prometheus to rebuild models on start."),
    ] = 1209600


class AnomalySpec(_Model):
    """Online anomaly detection on demand, latency and error signals."""

    enabled: Annotated[bool, Field(description="Detect anomalies and let them shape decisions.")] = True
    detector: Annotated[DetectorName, Field(description="Detector; auto combines them.")] = DetectorName.AUTO
    sensitivity: Annotated[
        float,
        Field(ge=0.5, le=0.99999, description="Anomaly probability above which a sample is anomalous."),
    ] = 0.99


class IntRange(_Model):
    """An inclusive integer range."""

    min: Annotated[int, Field(ge=0, le=1000000, description="Lowest value.")]
    max: Annotated[int, Field(ge=0, le=1000000, description="Highest value.")]

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule("self.min <= self.max", lambda s: s.min <= s.max, "min must be <= max", "min"),
    )


class IntRangeWithDefault(IntRange):
    """An inclusive integer range with the value used when nothing is wrong."""

    default: Annotated[int, Field(ge=0, le=1000000, description="Value in normal operation.")]

    rules: ClassVar[tuple[Rule, ...]] = (
        *IntRange.rules,
        Rule(
            "self.min <= self.default && self.default <= self.max",
            lambda s: s.min <= s.default <= s.max,
            "default must lie within [min, max]",
            "default",
        ),
    )


class CircuitBreakerSpec(_Model):
    """An Istio DestinationRule whose connection pool and outlier detection careplane tunes."""

    destinationRule: Annotated[
        str,
        Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="DestinationRule name."),
    ]
    pendingRequestsPerReplica: Annotated[
        int, Field(ge=1, le=100000, description="maxPendingRequests follows ready replicas times this.")
    ] = 20
    maxPendingRequests: Annotated[IntRange, Field(description="Bounds of http1MaxPendingRequests.")] = Field(
        default_factory=lambda: IntRange(min=10, max=2000)
    )
    consecutive5xxErrors: Annotated[
        IntRangeWithDefault, Field(description="Bounds of outlierDetection.consecutive5xxErrors.")
    ] = Field(default_factory=lambda: IntRangeWithDefault(min=3, max=20, default=10))
    baseEjectionSeconds: Annotated[
        int, Field(ge=1, le=3600, description="outlierDetection.baseEjectionTime in seconds.")
    ] = 30
    maxEjectionPercent: Annotated[int, Field(ge=0, le=100, description="outlierDetection.maxEjectionPercent.")] = 50


class Backend(_Model):
    """One weighted backend (VirtualService route destination or HTTPRoute backendRef)."""

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=DNS_SUBDOMAIN,
            description="Subset name (VirtualService) or Service name (HTTPRoute).",
        ),
    ]
    weight: Annotated[int, Field(ge=0, le=100, description="Weight in normal operation.")]
    minWeight: Annotated[int, Field(ge=0, le=100, description="Lowest weight careplane may set.")] = 0
    maxWeight: Annotated[int, Field(ge=0, le=100, description="Highest weight careplane may set.")] = 100

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.minWeight <= self.weight",
            lambda s: s.minWeight <= s.weight,
            "weight must be >= minWeight",
            "weight",
        ),
        Rule(
            "self.weight <= self.maxWeight",
            lambda s: s.weight <= s.maxWeight,
            "weight must be <= maxWeight",
            "weight",
        ),
    )


class RoutingSpec(_Model):
    """Weights of an Istio VirtualService or Gateway API HTTPRoute."""

    kind: Annotated[RoutingKind, Field(description="VirtualService or HTTPRoute.")] = RoutingKind.VIRTUAL_SERVICE
    name: Annotated[
        str,
        Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Route object name."),
    ]
    backends: Annotated[
        list[Backend],
        Field(min_length=2, max_length=16, description="Backends whose weights careplane sets."),
    ]
    maxShiftPerStep: Annotated[int, Field(ge=1, le=100, description="Most weight points moved per decision.")] = 10
    backendErrorRateQuery: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=4096,
            description="PromQL giving the error ratio (0..1) per backend: one series per backend, its label "
            "`backend` naming it, e.g. sum by (backend) (rate(errors[1m])) / sum by (backend) (rate(requests[1m])). "
            "A backend whose error rate is anomalous loses weight to the healthy ones and regains it gradually.",
        ),
    ] = None

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.backends.map(b, b.weight).sum() == 100",
            lambda s: sum(b.weight for b in s.backends) == 100,
            "backend weights must sum to 100",
            "backends",
        ),
        Rule(
            "self.backends.all(b, self.backends.exists_one(c, c.name == b.name))",
            lambda s: len({b.name for b in s.backends}) == len(s.backends),
            "backend names must be unique",
            "backends",
        ),
    )


class Schedule(_Model):
    """A recurring window with a replica floor (clinic hours, nightly batch)."""

    cron: Annotated[
        str,
        Field(
            min_length=9,
            max_length=128,
            pattern=CRON_FIVE_FIELDS,
            description="Five-field cron expression for the window's start.",
        ),
    ]
    durationSeconds: Annotated[int, Field(ge=60, le=604800, description="How long the window lasts after each start.")]
    minReplicas: Annotated[int, Field(ge=0, le=10000, description="Replica floor inside the window.")]
    timezone: Annotated[
        str, Field(min_length=1, max_length=64, description="IANA time zone of the cron expression.")
    ] = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid five-field cron expression, e.g. '0 7 * * 1-5'")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. 'America/Chicago' or 'UTC'") from exc
        return value


class Fallback(_Model):
    """What to do when demand cannot be measured. Missing metrics never read as zero demand."""

    onMetricsUnavailable: Annotated[
        FallbackAction, Field(description="hold keeps the current replicas; replicas sets fallback.replicas.")
    ] = FallbackAction.HOLD
    replicas: Annotated[
        int | None, Field(ge=0, le=10000, description="Replicas to run while metrics are unavailable.")
    ] = None

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.onMetricsUnavailable != 'replicas' || has(self.replicas)",
            lambda s: s.onMetricsUnavailable != FallbackAction.REPLICAS or s.replicas is not None,
            "replicas is required when onMetricsUnavailable is 'replicas'",
            "replicas",
        ),
    )


class ScalingPolicySpec(_Model):
    """What careplane does for one workload."""

    targetRef: Annotated[TargetRef, Field(description="The scalable workload.")]
    mode: Annotated[
        Mode,
        Field(description="Active acts; ForecastOnly only writes recommendations to status; Paused does nothing."),
    ] = Mode.ACTIVE
    criticality: Annotated[
        Criticality,
        Field(description="critical never goes below min and is served first; batch may be squeezed first."),
    ] = Criticality.STANDARD
    intervalSeconds: Annotated[int, Field(ge=5, le=3600, description="Seconds between reconciles.")] = 15
    replicas: Annotated[ReplicaBounds, Field(description="Replica bounds and rate limits.")]
    demand: Annotated[Demand, Field(description="Demand signal and per-replica capacity.")]
    slo: Annotated[SLO | None, Field(description="Optional latency and error signals.")] = None
    forecast: Annotated[ForecastSpec, Field(description="Demand forecasting.")] = Field(default_factory=ForecastSpec)
    anomaly: Annotated[AnomalySpec, Field(description="Online anomaly detection.")] = Field(default_factory=AnomalySpec)
    circuitBreaker: Annotated[
        CircuitBreakerSpec | None, Field(description="Optional Istio DestinationRule tuning.")
    ] = None
    routing: Annotated[RoutingSpec | None, Field(description="Optional routing weights.")] = None
    schedules: Annotated[list[Schedule], Field(max_length=32, description="Recurring replica floors.")] = Field(
        default_factory=list
    )
    fallback: Annotated[Fallback, Field(description="Behaviour when metrics are unavailable.")] = Field(
        default_factory=Fallback
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.schedules.all(s, s.minReplicas <= self.replicas.max)",
            lambda s: all(x.minReplicas <= s.replicas.max for x in s.schedules),
            "every schedule's minReplicas must be <= replicas.max",
            "schedules",
        ),
        Rule(
            "!has(self.fallback.replicas) || (self.fallback.replicas >= self.replicas.min"
            " && self.fallback.replicas <= self.replicas.max)",
            lambda s: s.fallback.replicas is None or s.replicas.min <= s.fallback.replicas <= s.replicas.max,
            "fallback.replicas must lie within [replicas.min, replicas.max]",
            "fallback.replicas",
        ),
    )


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata careplane reads; everything else is kept as-is."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    namespace: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)] = "default"


class ScalingPolicy(BaseModel):
    """A whole ScalingPolicy document as applied with kubectl."""

    model_config = ConfigDict(extra="allow")

    apiVersion: Annotated[str, Field(pattern="^" + re.escape(f"{API_GROUP}/{API_VERSION}") + "$")] = (
        f"{API_GROUP}/{API_VERSION}"
    )
    kind: Annotated[str, Field(pattern=f"^{KIND}$")] = KIND
    metadata: ObjectMeta
    spec: ScalingPolicySpec
