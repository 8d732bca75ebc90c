"""NAB-style scoring (DESIGN.md "NAB-style anomaly scoring"), faithful to NAB's own sweeper.

Rules, as NAB's ``nab/sweeper.py`` applies them:

* probation: the first ``min(floor(0.15 * rows), 0.15 * 5000)`` rows of a file are not scored;
* a row inside a window at index i (window rows l..r, width w = r - l + 1) is worth
  ``tpWeight * S(-(r - i + 1) / w) / S(-1)``, S(p) = 2 / (1 + e^(5p)) - 1;
  a window's value is its best detected row (the earliest), or ``-fnWeight`` if none;
  a window all inside probation does not count at all;
* a row outside every window is worth ``fpWeight * S(|i - r_prev| / (w_prev - 1))``
  (r_prev, w_prev: the last window that ended before it; -fpWeight if none; S = -1 past 3);
* a detection is a row with ``score >= threshold``; one threshold per profile for the
  whole corpus, chosen by sweeping every distinct score (NAB's optimiser);
* normalised score = 100 (raw - null) / (perfect - null): null detects nothing
  (-fnWeight per counted window), perfect = tpWeight per labelled window.

Hand-written because NAB is not packaged (it is a research repository pinned
to Python 2/old pandas); this module is small and unit-tested on hand-computed
cases.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

PROBATION_PERCENT = 0.15

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11},
}


def scaled_sigmoid(position: float) -> float:
    """NAB's S(p): 0.9866 at p = -1 (window start), 0 at p = 0 (just past the end), -1 beyond p = 3."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(rows: int, percent: float = PROBATION_PERCENT) -> float:
    """NAB's probationary length: min(floor(percent * rows), percent * 5000) (750 rows at 15%)."""
    return min(math.floor(percent * rows), percent * 5000)


@dataclass(frozen=True)
class LabelledFile:
    """One corpus file's windows as row-index ranges (inclusive) and its row count."""

    name: str
    rows: int
    windows: tuple[tuple[int, int], ...]


@dataclass
class FileRows:
    """Per-row NAB quantities of one file (independent of scores and threshold)."""

    weight: np.ndarray  # sweep score of a detection at the row (weighted by the profile)
    window: np.ndarray  # global window id for rows inside a window, -1 outside, -2 in probation


def window_indices(
    timestamps: Sequence[datetime], windows: Sequence[tuple[datetime, datetime]]
) -> tuple[tuple[int, int], ...]:
    """Map window (start, end) times to inclusive row ranges (rows whose time lies within)."""
    times = np.array([np.datetime64(t) for t in timestamps])
    out = []
    for start, end in windows:
        lo = int(np.searchsorted(times, np.datetime64(start), side="left"))
        hi = int(np.searchsorted(times, np.datetime64(end), side="right")) - 1
        if hi >= lo:
            out.append((lo, hi))
    return tuple(out)


def file_rows(f: LabelledFile, profile: Mapping[str, float], first_window_id: int) -> FileRows:
    """NAB's ``calcSweepScore`` for one file, vectorised."""
    n = f.rows
    tp, fp = profile["tpWeight"], profile["fpWeight"]
    max_tp = scaled_sigmoid(-1.0)
    weight = np.full(n, -fp)  # before any window: -fpWeight
    window = np.full(n, -1, dtype=np.int64)
    idx = np.arange(n, dtype=float)
    sig = np.vectorize(scaled_sigmoid, otypes=[float])
    for k, (lo, hi) in enumerate(f.windows):
        width = hi - lo + 1
        weight[lo : hi + 1] = sig(-(hi - idx[lo : hi + 1] + 1) / width) * tp / max_tp
        window[lo : hi + 1] = first_window_id + k
        end = f.windows[k + 1][0] if k + 1 < len(f.windows) else n
        if end > hi + 1:
            # NAB divides by (width - 1); a one-row window would divide by zero there too
            past = np.abs(hi - idx[hi + 1 : end]) / max(width - 1, 1e-12)
            weight[hi + 1 : end] = sig(past) * fp
    window[: math.ceil(probation_length(n))] = -2
    return FileRows(weight=weight, window=window)


@dataclass
class CorpusScore:
    """Best-threshold result for one profile."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float  # normalised
    tp: int = 0  # windows detected
    fn: int = 0
    fp: int = 0  # false-positive rows
    per_file: dict[str, float] = field(default_factory=dict)  # raw score per file at the threshold


def _corpus_rows(files: Sequence[LabelledFile], profile: Mapping[str, float]) -> tuple[list[FileRows], int]:
    rows, wid = [], 0
    for f in files:
        rows.append(file_rows(f, profile, wid))
        wid += len(f.windows)
    return rows, wid


def sweep(scores: np.ndarray, rows: FileRows, n_windows: int, fn_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score for every candidate threshold (every distinct score, descending).

    Returns (thresholds, raw_scores): at threshold ``thresholds[j]`` every row with
    ``score >= thresholds[j]`` is a detection. The first entry is "detect nothing".
    """
    scored = rows.window != -2
    s, w, win = scores[scored], rows.weight[scored], rows.window[scored]
    counted = np.unique(win[win >= 0])
    order = np.argsort(-s, kind="stable")
    s, w, win = s[order], w[order], win[order]
    best = np.full(n_windows, -np.inf)
    best[counted] = -fn_weight
    total = float(best[counted].sum())
    fp_sum = 0.0
    thresholds = [math.inf]
    raws = [total]
    i, m = 0, len(s)
    while i < m:
        t = s[i]
        while i < m and s[i] == t:
            k = win[i]
            if k < 0:
                fp_sum += w[i]
            elif w[i] > best[k]:
                total += w[i] - best[k]
                best[k] = w[i]
            i += 1
        thresholds.append(float(t))
        raws.append(total + fp_sum)
    return np.array(thresholds), np.array(raws)


def score_corpus(
    files: Sequence[LabelledFile],
    scores: Sequence[np.ndarray],
    profiles: Mapping[str, Mapping[str, float]] = PROFILES,
    threshold: float | None = None,
) -> dict[str, CorpusScore]:
    """Score a detector's per-file scores; per profile the best single corpus-wide threshold
    (or the given ``threshold``)."""
    out: dict[str, CorpusScore] = {}
    all_scores = np.concatenate([np.asarray(s, dtype=float) for s in scores]) if scores else np.zeros(0)
    for pname, profile in profiles.items():
        per_file_rows, n_windows = _corpus_rows(files, profile)
        rows = FileRows(
            weight=np.concatenate([r.weight for r in per_file_rows]) if per_file_rows else np.zeros(0),
            window=np.concatenate([r.window for r in per_file_rows]) if per_file_rows else np.zeros(0, dtype=np.int64),
        )
        fn_w, tp_w = profile["fnWeight"], profile["tpWeight"]
        thresholds, raws = sweep(all_scores, rows, n_windows, fn_w)
        counted = len(np.unique(rows.window[rows.window >= 0]))
        null = -fn_w * counted
        perfect = tp_w * n_windows
        if threshold is None:
            j = int(np.argmax(raws))  # ties: the highest threshold (fewest detections)
        else:
            j = int(np.searchsorted(-thresholds, -threshold, side="right")) - 1
        thr, raw = float(thresholds[j]), float(raws[j])
        detected = all_scores >= thr
        scored = rows.window != -2
        fp = int(np.sum(detected & scored & (rows.window == -1)))
        hit = np.unique(rows.window[detected & (rows.window >= 0)])
        per_file: dict[str, float] = {}
        for f, r, s in zip(files, per_file_rows, scores, strict=True):
            per_file[f.name] = file_raw(np.asarray(s, dtype=float) >= thr, r, fn_w)
        denom = perfect - null
        out[pname] = CorpusScore(
            profile=pname,
            threshold=thr,
            raw=raw,
            null=null,
            perfect=perfect,
            score=100.0 * (raw - null) / denom if denom else 0.0,
            tp=len(hit),
            fn=counted - len(hit),
            fp=fp,
            per_file=per_file,
        )
    return out


def file_raw(detected: np.ndarray, rows: FileRows, fn_weight: float) -> float:
    """Raw NAB score of one file's detections."""
    scored = rows.window != -2
    total = float(np.sum(rows.weight[detected & scored & (rows.window == -1)]))
    for k in np.unique(rows.window[rows.window >= 0]):
        in_k = detected & (rows.window == k)
        total += float(rows.weight[in_k].max()) if in_k.any() else -fn_weight
    return total


def load_windows(path: Path) -> dict[str, list[tuple[datetime, datetime]]]:
    """NAB's ``combined_windows.json``: file (relative to data/) -> [(start, end)]."""
    raw = json.loads(Path(path).read_text())
    return {
        name: [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in wins] for name, wins in raw.items()
    }


def load_profiles(path: Path) -> dict[str, dict[str, float]]:
    """NAB's ``profiles.json``: profile -> cost matrix."""
    raw = json.loads(Path(path).read_text())
    return {name: {k: float(v) for k, v in p["CostMatrix"].items()} for name, p in raw.items()}
