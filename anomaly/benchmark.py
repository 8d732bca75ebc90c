"""Score detectors on a NAB-layout corpus: the engine of ``careplane anomaly benchmark``
and ``benchmarks/anomaly.py``.

Besides the three NAB profiles it reports leave-one-category-out standard scores
(the corpus minus each category, threshold re-swept): a detector whose score
collapses when one category is removed is leaning on that category, which is
our guard against tuning to the dev split.

Speed is points per CPU-second of this process (``time.process_time``): the
machine's cores are shared, and wall-clock rates would measure the neighbours.
One process runs on one core, so this is the single-core rate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from careplane.anomaly.base import Detector
from careplane.anomaly.corpus import CorpusFile, run_detector
from careplane.anomaly.evaluation import PROFILES, score_corpus
from careplane.anomaly.registry import detector_names, make_detector


@dataclass
class DetectorResult:
    detector: str
    scores: dict[str, float]  # profile -> normalised NAB score
    thresholds: dict[str, float]
    counts: dict[str, dict[str, int]]  # profile -> tp/fn/fp
    points_per_second: float  # per CPU-second (single core)
    rows: int
    leave_one_category_out: dict[str, float] = field(default_factory=dict)  # category left out -> standard score

    def as_json(self) -> dict[str, Any]:
        return {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "detector": self.detector,
            "scores": self.scores,
            "thresholds": self.thresholds,
            "counts": self.counts,
            "points_per_second": self.points_per_second,
            "rows": self.rows,
            "leave_one_category_out_standard": self.leave_one_category_out,
        }


def benchmark_detector(
    name: str,
    files: Sequence[CorpusFile],
    profiles: dict[str, dict[str, float]] = PROFILES,
    on_file: Callable[[CorpusFile], None] | None = None,
    factory: Callable[[CorpusFile], Detector] | None = None,
) -> DetectorResult:
    """Run detector ``name`` (fresh per file, default settings, or built by ``factory``) over
    every file and score it. ``factory`` sees the file only to learn its sampling step."""
    scores: list[np.ndarray] = []
    elapsed = 0.0
    for f in files:
        detector = factory(f) if factory is not None else make_detector(name)
        start = time.process_time()
        scores.append(run_detector(detector, f.values))
        elapsed += time.process_time() - start
        if on_file is not None:
            on_file(f)
    labels = [f.labels for f in files]
    result = score_corpus(labels, scores, profiles)
    rows = sum(len(f.values) for f in files)
    loo: dict[str, float] = {}
    categories = sorted({f.category for f in files})
    if len(categories) > 1:
        for category in categories:
            keep = [i for i, f in enumerate(files) if f.category != category]
            sub = score_corpus([labels[i] for i in keep], [scores[i] for i in keep], {"standard": profiles["standard"]})
            loo[category] = round(sub["standard"].score, 2)
    return DetectorResult(
        detector=name,
        scores={p: round(r.score, 2) for p, r in result.items()},
        thresholds={p: r.threshold for p, r in result.items()},
        counts={p: {"tp": r.tp, "fn": r.fn, "fp": r.fp} for p, r in result.items()},
        points_per_second=round(rows / elapsed, 1) if elapsed > 0 else float("inf"),
        rows=rows,
        leave_one_category_out=loo,
    )


def write_results(path: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Write the benchmark JSON; detectors not re-run this time keep their previous results
    (half_space_trees takes minutes, so it is usually run on its own)."""
    fresh = {r["detector"] for r in results}
    merged = list(results)
    if path.exists():
        try:
            previous = json.loads(path.read_text()).get("results", [])
        except (OSError, ValueError):
            previous = []
        merged += [r for r in previous if isinstance(r, dict) and r.get("detector") not in fresh]
    order = detector_names()
    merged.sort(key=lambda r: order.index(r["detector"]) if r["detector"] in order else len(order))
    payload = {**meta, "results": merged}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return payload
