"""Anomaly benchmark: NAB-style scores and speed of every detector on the dev split.

    nice -n 10 python3 benchmarks/anomaly.py [--data /work/shared/data/nab] [--detector auto ...]

Writes benchmarks/results/anomaly.json (the same as ``careplane anomaly benchmark``),
plus a single-core speed figure for ``auto`` measured on one long file alone.
Targets (issue 4): auto standard >= 76, low FP >= 71, low FN >= 79, >= 20,000 points/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from careplane.anomaly.base import Detector
from careplane.anomaly.benchmark import benchmark_detector, write_results
from careplane.anomaly.corpus import CorpusFile, load_corpus, run_detector
from careplane.anomaly.registry import detector_names, make_detector
from careplane.shared_data import shared_data_dir

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = shared_data_dir() / "nab"
TARGETS = {"standard": 76.0, "reward_low_FP_rate": 71.0, "reward_low_FN_rate": 79.0, "points_per_second": 20000.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--detector", action="append", choices=detector_names(), help="repeatable; default: all")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/anomaly.json")
    parser.add_argument(
        "--forecaster",
        action="append",
        default=[],
        help="also score forecast_residual and auto with their residual driven by this careplane.forecasting "
        "model (repeatable), recorded as forecast_residual[MODEL] and auto[MODEL]",
    )
    args = parser.parse_args()
    files = load_corpus(args.data)
    names = args.detector or detector_names()
    results = []
    for name in names:
        start = time.perf_counter()
        r = benchmark_detector(name, files)
        print(
            f"{name:18s} standard {r.scores['standard']:5.1f}  low FP {r.scores['reward_low_FP_rate']:5.1f}  "
            f"low FN {r.scores['reward_low_FN_rate']:5.1f}  {r.points_per_second:10,.0f} points/s  "
            f"LOCO {r.leave_one_category_out}  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        results.append(r.as_json())
    for model in args.forecaster:
        start = time.perf_counter()

        for base in ("forecast_residual", "auto"):

            def factory(f: CorpusFile, model: str = model, base: str = base) -> Detector:
                return make_detector(base, forecaster=model, step_seconds=f.step_seconds)

            r = benchmark_detector(base, files, factory=factory)
            r.detector = f"{base}[{model}]"
            print(
                f"{r.detector:18s} standard {r.scores['standard']:5.1f}  low FP {r.scores['reward_low_FP_rate']:5.1f}  "
                f"low FN {r.scores['reward_low_FN_rate']:5.1f}  {r.points_per_second:10,.0f} points/s  "
                f"LOCO {r.leave_one_category_out}  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
            results.append(r.as_json())
    # speed of auto alone on the longest file, best of 3 (the corpus figure includes other load on shared cores)
    longest = max(files, key=lambda f: len(f.values))
    best = best_wall = 0.0
    for _ in range(3):
        start, wall = time.process_time(), time.perf_counter()
        run_detector(make_detector("auto"), longest.values)
        best = max(best, len(longest.values) / (time.process_time() - start))
        best_wall = max(best_wall, len(longest.values) / (time.perf_counter() - wall))
    print(
        f"auto alone on {longest.name} ({len(longest.values)} rows): {best:,.0f} points per CPU-second, "
        f"{best_wall:,.0f} points per wall-second (best of 3; the wall figure includes other load)"
    )
    write_results(
        args.out,
        results,
        {
            "corpus": str(args.data),
            "files": len(files),
            "rows": sum(len(f.values) for f in files),
            "python": sys.version.split()[0],
            "targets": TARGETS,
            "auto_points_per_cpu_second_single_file_best_of_3": round(best, 1),
            "auto_points_per_wall_second_single_file_best_of_3": round(best_wall, 1),
            "speed_note": "points_per_second = points per CPU-second of one process (one core); cores are shared",
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
