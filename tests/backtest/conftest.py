"""A small synthetic demand trace and policy for fast backtests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from careplane.policy import ScalingPolicySpec
from careplane.traces import Trace

STEP = 60.0


def synthetic(n: int = 720, seed: int = 3) -> Trace:
    """Hourly rhythm + Poisson noise + one surge + a gap: everything a backtest must handle."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * STEP
    rate = 40 + 25 * np.sin(2 * np.pi * t / 3600.0)
    rate[400:420] *= 3.0
    values = rng.poisson(rate * 60) / 60.0
    values[200:205] = np.nan
    return Trace(t, values, [str(int(x)) for x in t], STEP, "synthetic")


def policy_doc(model: str = "seasonal_naive", **forecast: Any) -> dict[str, Any]:
    return {
        "apiVersion": "careplane.io/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {
            "targetRef": {"name": "w"},
            "intervalSeconds": 60,
            "replicas": {"min": 1, "max": 100, "maxScaleUpStep": 100, "maxScaleDownStep": 100},
            "demand": {"query": "q", "perReplicaCapacity": 5.0, "targetUtilization": 0.7, "podStartupSeconds": 120},
            "forecast": {"model": model, "horizonSeconds": 0, "seasonalitySeconds": [3600], "quantile": 0.9, **forecast},
        },
    }


@pytest.fixture
def trace() -> Trace:
    return synthetic()


@pytest.fixture
def spec() -> ScalingPolicySpec:
    return ScalingPolicySpec.model_validate(policy_doc()["spec"])


@pytest.fixture
def files(tmp_path: Path, trace: Trace) -> dict[str, Path]:
    csv = tmp_path / "trace.csv"
    lines = ["timestamp,value"] + [f"{int(t)},{'' if np.isnan(v) else v}" for t, v in zip(trace.times, trace.values, strict=True)]
    csv.write_text("\n".join(lines) + "\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_doc()))
    return {"trace": csv, "policy": policy, "dir": tmp_path}
