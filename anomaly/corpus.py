"""Load a NAB-layout corpus (``data/<category>/<file>.csv`` + ``labels/combined_windows.json``)
and run a detector over a series."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from careplane.anomaly.base import Detector
from careplane.anomaly.evaluation import LabelledFile, load_windows, window_indices


@dataclass(frozen=True)
class CorpusFile:
    name: str  # relative to data/, e.g. "realTraffic/speed_6005.csv"
    category: str
    timestamps: list[str]
    values: np.ndarray  # NaN for missing / non-numeric
    labels: LabelledFile
    step_seconds: float = 300.0  # median spacing of the rows


def load_corpus(root: Path) -> list[CorpusFile]:
    """Every labelled CSV under ``root/data`` (sorted by name)."""
    root = Path(root)
    windows = load_windows(root / "labels" / "combined_windows.json")
    files = []
    for name in sorted(windows):
        path = root / "data" / name
        if not path.exists():
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        stamps = frame["timestamp"].tolist()
        values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
        parsed = pd.to_datetime(frame["timestamp"])
        times = parsed.dt.to_pydatetime().tolist()
        spacing = parsed.diff().dt.total_seconds().dropna()
        step = float(spacing.median()) if len(spacing) else 300.0
        labelled = LabelledFile(name=name, rows=len(values), windows=window_indices(times, windows[name]))
        files.append(
            CorpusFile(
                name=name,
                category=name.split("/")[0],
                timestamps=stamps,
                values=values,
                labels=labelled,
                step_seconds=step if step > 0 else 300.0,
            )
        )
    return files


def run_detector(detector: Detector, values: Iterable[float]) -> np.ndarray:
    """Score then learn each value; a missing value (NaN/inf) is skipped and scores 0."""
    out: list[float] = []
    append = out.append
    update: Callable[[float], float] | None = getattr(detector, "update", None)
    score_one, learn_one = detector.score_one, detector.learn_one
    isfinite = math.isfinite
    for x in values:
        x = float(x)
        if not isfinite(x):
            append(0.0)
            continue
        if update is not None:
            s = update(x)
        else:
            s = score_one(x)
            learn_one(x)
        append(0.0 if s != s else (0.0 if s < 0.0 else 1.0 if s > 1.0 else s))
    return np.array(out, dtype=float)
