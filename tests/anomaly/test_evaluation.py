"""The NAB-style evaluator on small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from careplane.anomaly.evaluation import (
    PROFILES,
    LabelledFile,
    file_raw,
    file_rows,
    probation_length,
    scaled_sigmoid,
    score_corpus,
)

STD = PROFILES["standard"]
MAX_TP = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # S(-1)


def _one(rows: int = 1000, windows: tuple[tuple[int, int], ...] = ((500, 599),)) -> LabelledFile:
    return LabelledFile(name="f.csv", rows=rows, windows=windows)


def _scores(rows: int, hits: list[int]) -> np.ndarray:
    s = np.zeros(rows)
    s[hits] = 1.0
    return s


def test_scaled_sigmoid_matches_nab_constants() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert probation_length(1000) == 150
    assert probation_length(4032) == 604
    assert probation_length(22000) == 750


def test_perfect_scores_100_and_null_scores_0() -> None:
    f = _one(windows=((300, 349), (600, 699)))
    perfect = score_corpus([f], [_scores(1000, [300, 600])])["standard"]
    null = score_corpus([f], [np.zeros(1000)], threshold=0.5)["standard"]
    assert perfect.score == pytest.approx(100.0)
    assert perfect.raw == pytest.approx(2.0)
    assert null.raw == pytest.approx(-2.0)
    assert null.score == pytest.approx(0.0)


def test_early_detection_beats_late_detection() -> None:
    f = _one()
    rows = file_rows(f, STD, 0)
    early = file_raw(_scores(1000, [500]).astype(bool), rows, 1.0)
    late = file_raw(_scores(1000, [599]).astype(bool), rows, 1.0)
    middle = file_raw(_scores(1000, [550]).astype(bool), rows, 1.0)
    assert early == pytest.approx(1.0)
    # last row: p = -(599 - 599 + 1) / 100
    assert late == pytest.approx(scaled_sigmoid(-0.01) / MAX_TP)
    assert early > middle > late > 0.0
    # only the earliest detection counts: adding a late one changes nothing
    both = file_raw(_scores(1000, [500, 599]).astype(bool), rows, 1.0)
    assert both == pytest.approx(early)


def test_false_positive_far_from_windows_costs_full_weight() -> None:
    f = _one()
    rows = file_rows(f, STD, 0)
    far_after = file_raw(_scores(1000, [500, 950]).astype(bool), rows, 1.0)  # 351 rows > 3 widths past
    before = file_raw(_scores(1000, [200, 500]).astype(bool), rows, 1.0)  # before any window
    assert far_after == pytest.approx(1.0 - 0.11)
    assert before == pytest.approx(1.0 - 0.11)
    # just past the window it costs less: S(|599 - 605| / 99) * 0.11, NAB's (width - 1) denominator
    near = file_raw(_scores(1000, [500, 605]).astype(bool), rows, 1.0)
    assert near == pytest.approx(1.0 + 0.11 * scaled_sigmoid(6 / 99))
    assert far_after < near


def test_probation_rows_are_not_scored_and_probation_windows_do_not_count() -> None:
    f = _one(windows=((10, 20), (500, 599)))
    result = score_corpus([f], [_scores(1000, [5, 500])])["standard"]
    # the detection at row 5 is in probation (not an FP); the window at 10-20 is not counted
    assert result.raw == pytest.approx(1.0)
    assert result.null == pytest.approx(-1.0)
    assert result.perfect == pytest.approx(2.0)  # NAB: tpWeight per labelled window


def test_one_threshold_for_the_whole_corpus_is_the_best_one() -> None:
    a = _one()
    b = LabelledFile(name="g.csv", rows=1000, windows=((400, 499),))
    sa = np.zeros(1000)
    sa[500] = 0.9  # a hit in a at 0.9
    sb = np.zeros(1000)
    sb[400] = 0.6  # a hit in b at 0.6
    sb[[200, 210, 220]] = 0.8  # three far FPs in b at 0.8
    result = score_corpus([a, b], [sa, sb])["standard"]
    # threshold 0.6 catches both windows and the 3 FPs: 2 - 0.33 beats 1 - 1 (0.9) and 1 - 1 - 0.33 (0.8)
    assert result.threshold == pytest.approx(0.6)
    assert result.raw == pytest.approx(2.0 - 3 * 0.11)
    assert (result.tp, result.fn, result.fp) == (2, 0, 3)
    # with a given threshold the sweep is not used
    fixed = score_corpus([a, b], [sa, sb], threshold=0.85)["standard"]
    assert fixed.raw == pytest.approx(1.0 - 1.0)


def test_low_fn_profile_doubles_the_cost_of_a_miss() -> None:
    f = _one(windows=((300, 349), (600, 699)))
    s = _scores(1000, [300])
    low_fn = score_corpus([f], [s], {"low_fn": PROFILES["reward_low_FN_rate"]})["low_fn"]
    assert low_fn.raw == pytest.approx(1.0 - 2.0)
    assert low_fn.score == pytest.approx(100.0 * (-1.0 + 4.0) / (2.0 + 4.0))
