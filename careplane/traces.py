"""Load recorded demand traces: the one input format of forecast eval, anomaly scoring and backtest.

Two formats:

* CSV with a time column and a value column. Times are ISO 8601 (``2014-02-14
  14:30:00``, naive read as UTC) or numbers (seconds since the epoch). An empty
  value is a gap (NaN): unknown, never zero.
* ``.txt`` (or a ``.tbz2`` holding one) with one number per second, separated by white space (the NASA
  trace). Timestamps are seconds since the start of the file (0, 1, 2, ...);
  ``aggregate`` averages each full block of that many values, dropping a
  trailing partial block.

Rows are kept as recorded (NAB's realTraffic files are irregular); the
``step_seconds`` of a trace is the median spacing of its rows.

Bad input raises :class:`TraceError` with a one-line message naming the row
or option, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import math
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd


class TraceError(ValueError):
    """A trace that cannot be used; the message names the row, column or option."""


@dataclass(frozen=True)
class Trace:
    """A demand series: ``times`` in seconds (epoch for CSV, offset for .txt), ``values`` with NaN gaps."""

    times: np.ndarray
    values: np.ndarray
    labels: list[str]
    step_seconds: float
    source: str = ""

    def __len__(self) -> int:
        return len(self.values)

    def head(self, n: int) -> Trace:
        """The first ``n`` rows (for causality checks: a prefix must give the same answers)."""
        return Trace(self.times[:n], self.values[:n], self.labels[:n], self.step_seconds, self.source)

    def index_at(self, timestamp: str) -> int:
        """Index of the first row at or after ``timestamp`` (ISO 8601 or seconds)."""
        t = parse_time(timestamp, option="--test-from")
        return int(np.searchsorted(self.times, t, side="left"))


def parse_time(text: str, *, option: str = "timestamp") -> float:
    """Seconds from an ISO 8601 string (naive = UTC) or a plain number."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise TraceError(f"{option}: {text!r} is neither ISO 8601 (2015-07-10 14:24:00) nor seconds") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def load_trace(
    path: str | Path,
    *,
    time_column: str = "timestamp",
    value_column: str = "value",
    aggregate: int | None = None,
) -> Trace:
    """Read a CSV or per-second ``.txt`` trace (see the module docstring)."""
    path = Path(path)
    if aggregate is not None and aggregate < 1:
        raise TraceError(f"--aggregate: must be a positive number of seconds, got {aggregate}")
    if not path.exists():
        raise TraceError(f"{path}: no such file")
    if path.suffix == ".txt" or path.name.endswith((".tbz2", ".tar.bz2")):
        trace = _load_txt(path)
    else:
        trace = _load_csv(path, time_column, value_column)
    if aggregate and aggregate > 1:
        trace = _aggregate(trace, aggregate)
    if len(trace) == 0:
        raise TraceError(f"{path}: the trace has no rows")
    return trace


def _load_txt(path: Path) -> Trace:
    text = _read_text(path)
    tokens = text.split()
    try:
        values = np.array(tokens, dtype=float)
    except ValueError:
        for i, token in enumerate(tokens):
            try:
                float(token)
            except ValueError:
                raise TraceError(f"{path}: value {i + 1} ({token!r}) is not a number") from None
        raise
    times = np.arange(len(values), dtype=float)
    return Trace(times, values, [str(int(t)) for t in times], 1.0, str(path))


def _read_text(path: Path) -> str:
    """A .txt file, or the single .txt member of a .tbz2 archive (how the NASA trace ships)."""
    if path.suffix == ".txt":
        return path.read_text()
    with tarfile.open(path) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".txt")]
        if len(members) != 1:
            raise TraceError(f"{path}: expected one .txt file in the archive, found {len(members)}")
        handle = archive.extractfile(members[0])
        assert handle is not None
        return handle.read().decode()


def _load_csv(path: Path, time_column: str, value_column: str) -> Trace:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise TraceError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: not a readable CSV ({exc})") from None
    for column, option in ((time_column, "--time-column"), (value_column, "--value-column")):
        if column not in frame.columns:
            raise TraceError(f"{path}: no column {column!r} (set {option}; columns are {', '.join(frame.columns)})")
    labels = [s.strip() for s in frame[time_column].tolist()]
    raw_values = frame[value_column].tolist()
    times = np.empty(len(labels))
    values = np.empty(len(labels))
    for i, (label, raw) in enumerate(zip(labels, raw_values, strict=True)):
        row = i + 2  # 1-based, after the header line
        try:
            times[i] = parse_time(label)
        except TraceError:
            raise TraceError(f"{path}: row {row}: timestamp {label!r} is not ISO 8601 or seconds") from None
        text = raw.strip()
        if text == "" or text.lower() in ("nan", "null", "none", "na"):
            values[i] = math.nan
            continue
        try:
            values[i] = float(text)
        except ValueError:
            raise TraceError(f"{path}: row {row}: value {raw!r} is not a number (leave it empty for a gap)") from None
    if len(times) > 1:
        diffs = np.diff(times)
        bad = np.flatnonzero(diffs <= 0)
        if bad.size:
            row = int(bad[0]) + 3
            what = "duplicates" if diffs[bad[0]] == 0 else "is earlier than"
            raise TraceError(f"{path}: row {row}: timestamp {labels[bad[0] + 1]!r} {what} the row before")
        step = float(np.median(diffs))
    else:
        step = 1.0
    return Trace(times, values, labels, step, str(path))


def _aggregate(trace: Trace, block: int) -> Trace:
    """Average each full block of ``block`` rows; a trailing partial block is dropped.

    ``block`` is in seconds; for a CSV it is converted to rows by its step.
    """
    rows = max(1, round(block / trace.step_seconds))
    full = len(trace) // rows
    if full == 0:
        raise TraceError(f"--aggregate {block}: the trace is shorter than one block")
    values = trace.values[: full * rows].reshape(full, rows)
    with np.errstate(invalid="ignore"):
        # a block with any gap is averaged over its known values; an all-gap block stays a gap
        counts = np.sum(~np.isnan(values), axis=1)
        sums = np.nansum(values, axis=1)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    times = trace.times[: full * rows : rows]
    labels = trace.labels[: full * rows : rows]
    return Trace(times, means, labels, trace.step_seconds * rows, trace.source)
