"""``careplane anomaly score`` / ``benchmark``: exact interface, bad input, causality through the CLI."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

from typer.testing import CliRunner

from careplane.cli.app import app

runner = CliRunner()


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def _rows(n: int, seed: int = 5) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        value = 50.0 + 5.0 * math.sin(i / 12.0) + rng.gauss(0.0, 1.0) + (40.0 if i == n - 20 else 0.0)
        out.append((f"2024-01-{1 + i // 288:02d} {(i % 288) // 12:02d}:{(i % 12) * 5:02d}:00", f"{value:.3f}"))
    return out


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_score_writes_one_row_per_input_row_and_is_causal(tmp_path: Path) -> None:
    rows = _rows(800)
    full = _write(tmp_path / "full.csv", rows)
    part = _write(tmp_path / "part.csv", rows[:500])
    result = runner.invoke(app, ["anomaly", "score", str(full), "--out", str(tmp_path / "full.out.csv")])
    assert result.exit_code == 0, result.output
    runner.invoke(app, ["anomaly", "score", str(part), "--out", str(tmp_path / "part.out.csv"), "--detector", "auto"])
    out_full, out_part = _read(tmp_path / "full.out.csv"), _read(tmp_path / "part.out.csv")
    assert len(out_full) == 800 and list(out_full[0]) == ["timestamp", "value", "anomaly_score"]
    assert [r["timestamp"] for r in out_full] == [t for t, _ in rows]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in out_full)
    assert [r["anomaly_score"] for r in out_full[:500]] == [r["anomaly_score"] for r in out_part]
    spike = float(out_full[780]["anomaly_score"])
    assert spike == max(float(r["anomaly_score"]) for r in out_full[300:])


def test_bad_values_are_skipped_scored_zero_and_counted(tmp_path: Path) -> None:
    rows = _rows(300)
    rows[100] = (rows[100][0], "n/a")
    rows[101] = (rows[101][0], "")
    src = _write(tmp_path / "bad.csv", rows)
    result = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0
    assert "skipped 2" in result.stderr
    out = _read(tmp_path / "o.csv")
    assert len(out) == 300
    assert out[100]["anomaly_score"] == "0.0" and out[101]["anomaly_score"] == "0.0"


def test_empty_file_missing_column_and_unknown_detector_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = runner.invoke(app, ["anomaly", "score", str(empty), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "empty" in result.stderr
    header_only = tmp_path / "header.csv"
    header_only.write_text("timestamp,value\n")
    assert runner.invoke(app, ["anomaly", "score", str(header_only), "--out", str(tmp_path / "o.csv")]).exit_code == 2
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("time,val\n1,2\n")
    result = runner.invoke(app, ["anomaly", "score", str(wrong), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "no column" in result.stderr
    ok = _write(tmp_path / "ok.csv", _rows(10))
    result = runner.invoke(app, ["anomaly", "score", str(ok), "--out", str(tmp_path / "o.csv"), "--detector", "magic"])
    assert result.exit_code == 2 and "--detector" in result.stderr
    result = runner.invoke(app, ["anomaly", "score", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2


def test_benchmark_scores_a_small_corpus_and_writes_json(tmp_path: Path) -> None:
    data = tmp_path / "nab"
    (data / "data" / "cat").mkdir(parents=True)
    (data / "labels").mkdir()
    rows = _rows(1000)
    _write(data / "data" / "cat" / "a.csv", rows)
    # the spike is at row 980: a window around it
    (data / "labels" / "combined_windows.json").write_text(
        json.dumps({"cat/a.csv": [[rows[950][0] + ".000000", rows[999][0] + ".000000"]]})
    )
    out = tmp_path / "res.json"
    result = runner.invoke(
        app, ["anomaly", "benchmark", "--data", str(data), "--detector", "robust_zscore", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    (res,) = payload["results"]
    assert res["detector"] == "robust_zscore" and res["rows"] == 1000
    assert res["counts"]["standard"]["tp"] == 1  # the spike is found
    assert res["scores"]["standard"] > 50.0
    assert "robust_zscore" in result.stdout


def test_binary_file_is_bad_input_not_a_crash(tmp_path: Path) -> None:
    src = tmp_path / "bin.csv"
    src.write_bytes(b"timestamp,value\n\xff\xfe,1\n")
    result = runner.invoke(app, ["anomaly", "score", str(src), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "UTF-8" in result.stderr
