"""Boards of a causal LM rank by perplexity, lower being better: the leader, the paired differences, the pivot's
best cell, and every format's headers and numbers (unpercented); a comparison of a classifier and a causal LM
shows each board with its own metric; the one module deciding it agrees with prunebench.tasks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from statistics import fmean

import pytest

from prunebench.errors import ResultsError
from prunebench.report import COLUMNS, Leaderboard, Row, compare, render
from prunebench.report.metric import format_delta, format_value, ranking_metric, task_metric
from prunebench.report.pivot import pivot, pivot_markdown
from prunebench.results import load_records
from prunebench.tasks import TASKS
from prunebench.testing import BOARD, A, make_protocol, make_record, write_run

# Test perplexities at sparsity 0.9 (seeds 0, 1, 2): b is best (lowest) and a worst, far apart; c between, noisy.
PPL = {"a": [40.0, 41.0, 42.5], "b": [30.0, 30.5, 31.2], "c": [33.0, 38.0, 35.0]}
BASE = [30.0, 31.0, 32.0]  # the dense models' (make_record's default: 30 + seed)


def lm_board(tmp_path: Path) -> Leaderboard:
    proto = make_protocol()
    records = [make_record(proto, m, 0.9, s, 0.4, perplexity=v[s]) for m, v in PPL.items() for s in range(3)]
    write_run(tmp_path / "lm", proto, records)
    (board,) = compare(load_records([tmp_path / "lm"])).boards
    return board


def method(board: Leaderboard, label: str) -> Row:
    return next(r for r in board.rows if r.method == label and r.sparsity_target == 0.9)


def test_the_lowest_perplexity_leads_and_the_others_are_ranked_below_it(tmp_path: Path) -> None:
    board = lm_board(tmp_path)
    assert board.task == "causal_lm" and board.metric == TASKS["causal_lm"].ranking
    b, a = method(board, "b"), method(board, "a")
    assert (b.rank, b.vs_leader_verdict) == (1, "leader")  # ignoring the direction, a (highest) would lead
    assert (a.rank, a.vs_leader_verdict, a.vs_leader_method) == (3, "lower", "b")
    assert [r.method for r in board.rows if r.sparsity_target == 0.9] == ["b", "c", "a"]  # c ties b: =1, then a
    assert b.top1_mean == pytest.approx(fmean(PPL["b"]))  # the ranked column holds the perplexity as it is
    assert b.top5_mean is None  # a next-token top-5 means nothing: not shown


def test_paired_differences_are_in_perplexity_points_a_worse_one_positive(tmp_path: Path) -> None:
    board = lm_board(tmp_path)
    a, b = method(board, "a"), method(board, "b")
    assert a.vs_leader_delta == pytest.approx(fmean(x - y for x, y in zip(PPL["a"], PPL["b"], strict=True)))
    assert a.vs_leader_delta > 0 and a.vs_leader_p_holm < 0.05  # type: ignore[operator]
    assert b.delta_dense_mean == pytest.approx(fmean(x - y for x, y in zip(PPL["b"], BASE, strict=True)))
    assert board.dense.top1_mean == pytest.approx(fmean(BASE))  # type: ignore[union-attr]  # base.test_perplexity
    assert b.dense_top1_mean == pytest.approx(fmean(BASE))


def test_the_pivot_marks_the_lowest_perplexity_best(tmp_path: Path) -> None:
    p = pivot(lm_board(tmp_path))
    assert p.methods[0] == "b" and p.cells[("b", 0.9)].best and not p.cells[("a", 0.9)].best
    text = pivot_markdown(p)
    assert "**30.57 ± 0.60**" in text and "Perplexity (mean ± std over 3 seed(s), lower is better)" in text


def test_markdown_and_html_show_perplexity_unpercented(tmp_path: Path) -> None:
    board = lm_board(tmp_path)
    c = compare(load_records([tmp_path / "lm"]))
    md = render(c, "markdown")
    assert "| rank | method | sparsity | perplexity | 95% CI |" in md and "| Δ dense | vs leader |" in md
    assert "30.57 ± 0.60" in md and "3056.67" not in md and "top-1" not in md
    assert "*Perplexity (lower is better): mean ± std" in md and "(perplexity points, 95% t-interval)" in md
    a = method(board, "a")
    assert f"| {format_delta(board.metric, a.vs_leader_delta)} (p=" in md  # "+10.60 (p=...)", never "+1060.00"
    page = render(c, "html")
    assert '<th aria-sort="none">perplexity</th>' in page and ">30.57 ± 0.60</td>" in page
    assert "perplexity against the weights remaining" in page


def test_csv_and_json_name_the_ranked_columns_after_perplexity(tmp_path: Path) -> None:
    lm_board(tmp_path)
    c = compare(load_records([tmp_path / "lm"]))
    header = next(csv.reader(io.StringIO(render(c, "csv"))))
    assert "perplexity_mean" in header and "dense_perplexity_mean" in header and header[-1] == "task"
    assert "top1_mean" not in header and "top5_mean" not in header
    doc = json.loads(render(c, "json"))
    assert doc["tables"][0]["ranking"]["name"] == "test_perplexity"
    assert not doc["tables"][0]["ranking"]["higher_is_better"]
    row = next(r for r in doc["rows"] if r["method"] == "b" and r["sparsity_target"] == 0.9)
    assert row["task"] == "causal_lm" and row["perplexity_mean"] == pytest.approx(fmean(PPL["b"]))


def test_a_comparison_of_two_tasks_shows_each_board_with_its_own_metric(tmp_path: Path) -> None:
    cls, lm = make_protocol(), make_protocol(BOARD.replace("name: tiny", "name: lm"))
    write_run(tmp_path / "r", cls, [make_record(cls, "a", 0.9, s, A[s]) for s in range(3)])
    write_run(tmp_path / "r", lm, [make_record(lm, "a", 0.9, s, 0.4, perplexity=PPL["a"][s]) for s in range(3)])
    c = compare(load_records([tmp_path / "r"]))
    assert [b.protocol for b in c.boards] == ["lm", "tiny"]
    lm_md, cls_md = render(c, "markdown").split("### ")[1:]
    assert "| perplexity |" in lm_md and "41.17 ± 1.26" in lm_md and "top-1 %" not in lm_md
    assert "| top-1 % |" in cls_md and "92.00 ± 2.00" in cls_md and "| Δ dense (pp) |" in cls_md
    header = next(csv.reader(io.StringIO(render(c, "csv"))))
    assert header[: len(COLUMNS)] != COLUMNS and {"top1_mean", "perplexity_mean", "task"} <= set(header)


def test_one_module_decides_the_metric_as_prunebench_tasks_states_it() -> None:
    assert task_metric("classification") is TASKS["classification"].ranking
    assert task_metric("causal_lm") is TASKS["causal_lm"].ranking
    assert ranking_metric(make_record(make_protocol(), "a", 0.9, 0, 0.9)) is task_metric("classification")
    with pytest.raises(ResultsError, match="task 'speech'"):
        task_metric("speech")
    lm, cls = TASKS["causal_lm"].ranking, TASKS["classification"].ranking
    assert (format_value(lm, 37.5234), format_delta(lm, -1.5)) == ("37.52", "-1.50")
    assert (format_value(cls, 0.97254), format_delta(cls, 0.0125)) == ("97.25", "+1.25")


def test_a_method_declared_at_some_targets_only_is_missing_nowhere_else(tmp_path: Path) -> None:
    """An N:M method runs at its pattern's sparsity only (`methods[i].sparsities`): its row at the protocol's other
    sparsities is neither shown nor audited as missing; a declared sparsity without results still is."""
    text = BOARD.replace("  - {name: random, label: c}", "  - {name: random, label: c, sparsities: [0.5]}")
    proto = make_protocol(text)
    records = [make_record(proto, m, s, seed, 0.9) for m in "ab" for s in (0.5, 0.9) for seed in (0, 1, 2)]
    records += [make_record(proto, "c", 0.5, seed, 0.9) for seed in (0, 1)]  # seed 2 missing at its one sparsity
    write_run(tmp_path / "r", proto, records)
    board = compare(load_records([tmp_path / "r"])).boards[0]
    assert {(r.method, r.sparsity_target) for r in board.rows if r.kind == "method"} == {
        ("a", 0.5),
        ("a", 0.9),
        ("b", 0.5),
        ("b", 0.9),
        ("c", 0.5),
    }
    missing = [(i.method, i.sparsity, i.seed) for i in board.issues if i.kind == "missing_seed"]
    assert missing == [("c", 0.5, 2)]
