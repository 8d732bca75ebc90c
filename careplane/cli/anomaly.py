"""``careplane anomaly score`` and ``careplane anomaly benchmark``.

``score`` is the interface outside evaluation uses (NAB files in, NAB-style
scores out), so it reads the CSV with the csv module and writes every input
row back with its original timestamp text: one output row per input row.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from careplane.anomaly.registry import detector_names, make_detector

EXIT_BAD_INPUT = 2
DEFAULT_DATA = Path("../shared/data/nab")
DEFAULT_OUT = Path("benchmarks/results/anomaly.json")

anomaly_app = typer.Typer(
    help="Online anomaly detection: score a series, benchmark detectors NAB-style.", no_args_is_help=True
)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(EXIT_BAD_INPUT)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def read_series(path: Path) -> tuple[list[str], list[str], list[float]]:
    """(timestamp texts, value texts, values with NaN for missing/non-numeric). Raises typer.Exit(2)."""
    try:
        return _read_series(path)
    except UnicodeDecodeError as exc:
        raise _fail(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise _fail(f"{path}: not valid CSV: {exc}") from None


def _read_series(path: Path) -> tuple[list[str], list[str], list[float]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # tolerate a byte-order mark
    except OSError as exc:
        raise _fail(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise _fail(f"{path}: empty file (expected a header 'timestamp,value' and rows)")
        names = [cell.strip().lower() for cell in header]
        for column in ("timestamp", "value"):
            if column not in names:
                raise _fail(f"{path}: row 1: no column '{column}' in header {','.join(header)}")
        ti, vi = names.index("timestamp"), names.index("value")
        stamps: list[str] = []
        texts: list[str] = []
        values: list[float] = []
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            stamp = row[ti] if ti < len(row) else ""
            text = row[vi] if vi < len(row) else ""
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            stamps.append(stamp)
            texts.append(text)
            values.append(value if math.isfinite(value) else math.nan)
    if not values:
        raise _fail(f"{path}: no data rows after the header")
    return stamps, texts, values


@anomaly_app.command("score")
def score(
    input_csv: Path = typer.Argument(..., metavar="INPUT.csv", help="CSV with columns timestamp,value (a NAB file)."),
    out: Path = typer.Option(..., "--out", help="Output CSV: timestamp,value,anomaly_score (one row per input row)."),
    detector: str = typer.Option("auto", "--detector", help=f"One of: {', '.join(detector_names())}."),
) -> None:
    """Score each row causally (a row's score uses only rows up to it); missing values score 0."""
    if detector not in detector_names():
        raise _fail(f"--detector: unknown detector {detector!r}; choose one of {', '.join(detector_names())}")
    stamps, texts, values = read_series(input_csv)
    model = make_detector(detector)
    err = Console(stderr=True, soft_wrap=True)
    scores: list[float] = []
    skipped = 0
    with _progress(err) as progress:
        task = progress.add_task(f"scoring {input_csv.name}", total=len(values))
        for i, x in enumerate(values):
            if x != x:
                skipped += 1
                scores.append(0.0)
            else:
                s = model.score_one(x)
                model.learn_one(x)
                scores.append(0.0 if s != s else min(1.0, max(0.0, s)))
            if i % 2000 == 1999:
                progress.update(task, completed=i + 1)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "value", "anomaly_score"])
            for stamp, text, s in zip(stamps, texts, scores, strict=True):
                writer.writerow([stamp, text, repr(round(s, 10))])
    except OSError as exc:
        raise _fail(f"--out {out}: cannot write: {exc.strerror or exc}") from None
    if skipped:
        err.print(
            f"{input_csv}: skipped {skipped} missing or non-numeric value(s) (scored 0)", markup=False, highlight=False
        )


@anomaly_app.command("benchmark")
def benchmark(
    data: Path = typer.Option(
        DEFAULT_DATA, "--data", help="NAB-layout corpus: data/<category>/*.csv + labels/combined_windows.json."
    ),
    detectors: list[str] = typer.Option(
        ["auto", "forecast_residual", "robust_zscore", "half_space_trees"],
        "--detector",
        help="Detector(s) to score (repeatable); default: all.",
    ),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Where to write the JSON results."),
) -> None:
    """Score detectors on the corpus with the NAB-style evaluator; print a table and write JSON."""
    from careplane.anomaly.benchmark import benchmark_detector, write_results
    from careplane.anomaly.corpus import CorpusFile, load_corpus

    for name in detectors:
        if name not in detector_names():
            raise _fail(f"--detector: unknown detector {name!r}; choose one of {', '.join(detector_names())}")
    if not (data / "labels" / "combined_windows.json").is_file():
        raise _fail(f"--data {data}: no labels/combined_windows.json")
    files = load_corpus(data)
    if not files:
        raise _fail(f"--data {data}: no labelled CSV files under data/")
    err = Console(stderr=True, soft_wrap=True)
    results = []
    with _progress(err) as progress:
        for name in detectors:
            task = progress.add_task(f"{name}", total=len(files))

            def advance(_file: CorpusFile, task: TaskID = task) -> None:
                progress.advance(task)

            results.append(benchmark_detector(name, files, on_file=advance))
    table = Table(title=f"NAB-style scores, {len(files)} files, {sum(len(f.values) for f in files)} rows")
    for column in ("detector", "standard", "low FP", "low FN", "points/s", "worst leave-one-category-out"):
        table.add_column(column, justify="right" if column != "detector" else "left")
    for r in results:
        worst = (
            min(r.leave_one_category_out.items(), key=lambda kv: kv[1]) if r.leave_one_category_out else ("-", math.nan)
        )
        table.add_row(
            r.detector,
            f"{r.scores['standard']:.1f}",
            f"{r.scores['reward_low_FP_rate']:.1f}",
            f"{r.scores['reward_low_FN_rate']:.1f}",
            f"{r.points_per_second:,.0f}",
            f"{worst[1]:.1f} (without {worst[0]})",
        )
    Console().print(table)
    write_results(
        out,
        [r.as_json() for r in results],
        {
            "corpus": str(data),
            "files": len(files),
            "rows": sum(len(f.values) for f in files),
            "python": sys.version.split()[0],
            "speed_note": "points_per_second = points per CPU-second of one process (one core); cores are shared",
        },
    )
    err.print(f"wrote {out}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(anomaly_app, name="anomaly")
