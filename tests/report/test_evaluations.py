"""What pruning takes away, across seeds, from constructed records (prunebench.report.evaluations): the
pruning-identified exemplars, agreement, per-class change, the classes changed beyond the overall change, the
corruption and calibration differences; shown on request only, every default output unchanged."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from prunebench.report import compare, render
from prunebench.report.evaluations import changed_classes, pruning_identified_exemplars
from prunebench.results import (
    CalibrationRecord,
    EvaluationRecord,
    ForgettingRecord,
    ResultRecord,
    RobustnessRecord,
    decode_labels,
    encode_labels,
    load_records,
)
from prunebench.testing import make_protocol, make_record, write_run

LABELS = [0, 0, 1, 1, 2, 2, 3, 3]
DENSE = [[0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 1, 1, 2, 2, 3, 0], [0, 1, 1, 1, 2, 2, 3, 3]]  # seeds 0, 1, 2
# Modes over the seeds: example 2 is 2 (pruned) against 1 (dense): a PIE; example 3 ties 3, 2, 1, which the lowest
# class (1) breaks: not a PIE; example 5 is 0 against 2: a PIE; example 7: 3 against 3.
PRUNED = [[0, 0, 3, 3, 2, 0, 3, 3], [0, 0, 2, 2, 2, 0, 3, 0], [0, 1, 2, 1, 2, 0, 3, 3]]


def recall(predicted: list[int], c: int) -> float:
    mine = [i for i, y in enumerate(LABELS) if y == c]
    return sum(predicted[i] == c for i in mine) / len(mine)


def forgetting(seed: int) -> ForgettingRecord:
    p, d = PRUNED[seed], DENSE[seed]
    return ForgettingRecord(
        class_top1=[recall(p, c) for c in range(4)],
        dense_class_top1=[recall(d, c) for c in range(4)],
        agreement=sum(a == b for a, b in zip(p, d, strict=True)) / len(p),
        predictions=encode_labels(p, 4),
        dense_predictions=encode_labels(d, 4),
        labels=encode_labels(LABELS, 4),
    )


def with_evaluations(r: ResultRecord, seed: int) -> ResultRecord:
    evaluation = EvaluationRecord(
        robustness=RobustnessRecord(
            seed=0,
            severities=[1, 5],
            top1={"contrast": [0.7, 0.5 + 0.02 * seed], "gaussian_noise": [0.65, 0.55]},
            dense_top1={"contrast": [0.8, 0.6 + 0.01 * seed], "gaussian_noise": [0.7, 0.6]},
            mean_top1=(1.9 + 0.02 * seed) / 4,  # the mean of top1's entries
            dense_mean_top1=(2.7 + 0.01 * seed) / 4,
        ),
        calibration=CalibrationRecord(bins=15, ece=0.05 + 0.01 * seed, nll=0.3, dense_ece=0.02, dense_nll=0.25),
        forgetting=forgetting(seed),
    )
    return r.model_copy(update={"evaluation": evaluation})


def records(evaluated: bool) -> list[ResultRecord]:
    proto = make_protocol()
    out = []
    for seed in range(3):
        for label, top1 in (("a", 0.9), ("b", 0.88), ("c", 0.85)):
            r = make_record(proto, label, 0.9, seed, top1 + 0.001 * seed)
            out.append(with_evaluations(r, seed) if evaluated and label == "a" else r)
    return out


def test_label_strings_round_trip_with_one_or_two_bytes_a_class() -> None:
    assert decode_labels(encode_labels([0, 9, 255], 256), 256) == [0, 9, 255]
    assert decode_labels(encode_labels([0, 999, 256], 1000), 1000) == [0, 999, 256]
    assert len(encode_labels(list(range(6)), 10)) == 8  # 6 bytes in base64


def test_pruning_identified_exemplars_by_hand() -> None:
    assert pruning_identified_exemplars(PRUNED, DENSE) == [2, 5]
    assert pruning_identified_exemplars(DENSE, DENSE) == []
    assert pruning_identified_exemplars([[1], [2]], [[2], [2]]) == [0]  # a tie of 1 and 2 is 1: not the dense 2


def test_a_row_over_seeds_by_hand(tmp_path: Path) -> None:
    run = write_run(tmp_path, make_protocol(), records(evaluated=True))
    board = compare(load_records([run]), show=("robustness", "calibration", "forgetting")).boards[0]
    (row,) = [e for e in board.evaluations if e.method == "a" and e.sparsity_target == 0.9]
    assert row.pies == 2 and row.test_examples == 8
    assert row.pie_top1_dense == 1.0 and row.pie_top1_pruned == 0.0  # the dense models all right there, pruned wrong
    assert row.agreement == pytest.approx((5 / 8 + 5 / 8 + 6 / 8) / 3)
    # class 1: dense 1, 1, 1 and pruned 0, 0, 0.5; class 2: dense 1 and pruned 0.5 at every seed
    assert row.class_delta == pytest.approx([0.0, -5 / 6, -0.5, 0.0])
    assert row.changed_classes == 0  # two examples a class: one example (0.5) is the least spread assumed
    assert row.corruption_top1 == pytest.approx((1.9 * 3 + 0.06) / 12)
    assert row.corruption_delta is not None and row.corruption_delta.mean == pytest.approx(-0.2 + 0.01 / 4)
    # beyond the clean change, (0.9 + 0.001 s) - (0.95 + 0.01 s) at seed s: -0.15 + 0.0115 s
    assert row.corruption_excess is not None and row.corruption_excess.mean == pytest.approx(-0.15 + 0.0115)
    assert row.corruption_delta_by_name["contrast"] == pytest.approx((-0.1 + (-0.1 + 0.01)) / 2)
    assert row.ece_delta is not None and row.ece_delta.mean == pytest.approx(0.04)
    dense = board.evaluations[0]
    assert dense.kind == "dense" and dense.ece == pytest.approx(0.02) and dense.corruption_top1 == pytest.approx(0.6775)
    others = [e for e in board.evaluations if e.method in ("b", "c") or e.sparsity_target == 0.5]
    assert others and all(e.agreement is None and e.corruption_top1 is None for e in others)  # they have none
    text = render(compare(load_records([run]), show=("forgetting",)), "markdown")
    assert "| a | 0.9 | 66.67 | 2 (25.0%) | 100 / 0 | 1: -83.3 | 0/4 |" in text


def test_the_order_of_the_records_changes_nothing_and_a_bad_prediction_string_is_said(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", make_protocol(), records(evaluated=True))
    show = ("forgetting",)
    forward = json.loads(render(compare(load_records([run]), show=show), "json"))["tables"][0]["evaluations"]
    backward = render(compare(list(reversed(load_records([run]))), show=show), "json")
    assert json.loads(backward)["tables"][0]["evaluations"] == forward
    short = [
        r.model_copy(update={"evaluation": EvaluationRecord(forgetting=forgetting(r.seed).model_copy(
            update={"predictions": encode_labels(PRUNED[r.seed][:5], 4)}))}) if r.method.label == "a" else r
        for r in records(evaluated=True)
    ]  # fmt: skip
    bad = write_run(tmp_path / "bad", make_protocol(), short)
    board = compare(load_records([bad]), show=show).boards[0]
    (row,) = [e for e in board.evaluations if e.method == "a" and e.sparsity_target == 0.9]
    assert row.pies is None and row.forgetting_note is not None and "not one per test example" in row.forgetting_note


def test_classes_changed_beyond_the_overall_change() -> None:
    # Class 0 falls 0.20, 0.21, 0.19 while the model falls 0.05, 0.05, 0.06; classes 1 and 2 fall as the model does.
    overall = {0: -0.05, 1: -0.05, 2: -0.06}
    falls = {0: -0.20, 1: -0.21, 2: -0.19}
    by_seed = {
        s: ForgettingRecord(
            class_top1=[0.7 + falls[s], 0.9 + overall[s], 0.8 + overall[s]],
            dense_class_top1=[0.7, 0.9, 0.8],
            agreement=0.9,
            predictions="",
            dense_predictions="",
            labels="",
        )
        for s in range(3)
    }
    counts = Counter({0: 1000, 1: 1000, 2: 1000})
    assert changed_classes(by_seed, overall, counts) == 1
    assert changed_classes({s: by_seed[s] for s in (0, 1)}, overall, counts) is None  # two seeds: no test


def test_the_default_outputs_are_the_same_with_or_without_evaluations(tmp_path: Path) -> None:
    plain = write_run(tmp_path / "plain", make_protocol(), records(evaluated=False))
    evaluated = write_run(tmp_path / "evaluated", make_protocol(), records(evaluated=True))
    for fmt in ("markdown", "json", "csv", "rich", "html"):
        a = render(compare(load_records([plain])), fmt).replace(str(plain), "RUN")
        b = render(compare(load_records([evaluated])), fmt).replace(str(evaluated), "RUN")
        assert a == b, fmt
    shown = render(compare(load_records([evaluated]), show=("robustness",)), "json")
    assert '"evaluations"' in shown and "corruption_delta_by_name" in shown


def test_an_unknown_evaluation_is_an_error_naming_the_known_ones(tmp_path: Path) -> None:
    from prunebench.errors import ResultsError

    run = write_run(tmp_path, make_protocol(), records(evaluated=True))
    with pytest.raises(ResultsError, match="robustness, calibration, forgetting"):
        compare(load_records([run]), show=("robust",))
