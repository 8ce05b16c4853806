"""The sanity ablations on the board (prunebench.report.sanity), from records with chosen numbers: each ablation's
row is paired with its own method seed by seed, judged by the ranking rule, and put in words."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from prunebench.report import compare
from prunebench.report.board import Leaderboard
from prunebench.results import VariantRecord, load_records
from prunebench.testing import BOARD, make_protocol, make_record, write_run

PROTOCOL = make_protocol(
    BOARD.replace("sparsities: [0.5, 0.9]", "sparsities: [0.9]") + "variants:\n  sanity: [layer_shuffle]\n"
)
OWN = {"a": [0.90, 0.92, 0.94], "b": [0.89, 0.91, 0.935], "c": [0.80, 0.95, 0.88]}
# a's shuffle is 3 points lower on every seed: a spread of 2 points between seeds hides that from an unpaired
# comparison (Welch's p is about 0.14), never from the paired one. b's shuffle moves by -1, +1, 0 points: tied.
SHUFFLED = {"a": [0.87, 0.89, 0.91], "b": [0.90, 0.90, 0.935]}
TABLE = {
    "a": {"layer_shuffle": None},
    "b": {"layer_shuffle": None},
    "c": {"layer_shuffle": "its filter structure would not survive shuffling single weights"},
}


def shuffle_board(
    root: Path, *, table: dict[str, dict[str, str | None]] | None = TABLE, shuffled: dict[str, list[float]] = SHUFFLED
) -> Leaderboard:
    variant = VariantRecord(
        name="layer_shuffle", kind="sanity", recipe=PROTOCOL.retrain.model_dump(mode="json"), ablation="layer_shuffle"
    )
    records = [make_record(PROTOCOL, m, 0.9, s, OWN[m][s]) for m in OWN for s in range(3)]
    records += [make_record(PROTOCOL, m, 0.9, s, shuffled[m][s], variant=variant) for m in shuffled for s in range(3)]
    write_run(root, PROTOCOL, records, sanity=table)
    boards = compare(load_records([root])).boards
    return next(b for b in boards if b.variant == "layer_shuffle")


def test_each_ablation_is_paired_with_its_own_method_seed_by_seed(tmp_path: Path) -> None:
    board = shuffle_board(tmp_path)
    assert "SANITY ABLATION layer_shuffle" in board.title
    rows = {r.method: r for r in board.rows if r.kind == "method"}
    assert set(rows) == {"a", "b"}  # c: the ablation does not apply to it, and it is missing nowhere
    assert not [i for i in board.issues if i.method == "c"]
    for m, row in rows.items():
        assert row.vs_recipe == "protocol" and row.vs_recipe_n == 3
        paired = [SHUFFLED[m][s] - OWN[m][s] for s in range(3)]
        assert row.vs_recipe_delta == pytest.approx(statistics.mean(paired))
    a, b = rows["a"], rows["b"]
    assert a.sanity_verdict == "below" and a.vs_recipe_p_holm is not None and a.vs_recipe_p_holm < 0.05
    assert b.sanity_verdict == "tied" and b.vs_recipe_p_holm is not None and b.vs_recipe_p_holm >= 0.05
    # Holm across the board's methods at the target: the smaller p doubled, the larger kept (at most 1)
    assert a.vs_recipe_p_holm == pytest.approx(min(1.0, 2 * (a.vs_recipe_p or 0.0)))
    notes = "\n".join(board.notes)
    assert "b at sparsity 0.9 is not distinguishable from its layer-shuffled self" in notes
    assert "a at sparsity 0.9 is not distinguishable" not in notes
    assert "layer_shuffle does not apply to: c (its filter structure would not survive shuffling" in notes


def test_a_method_worse_than_its_ablation_is_said_so(tmp_path: Path) -> None:
    board = shuffle_board(tmp_path, shuffled={"a": [v + 0.03 for v in OWN["a"]], "b": SHUFFLED["b"]})
    a = next(r for r in board.rows if r.method == "a")
    assert a.sanity_verdict == "above"
    assert "a at sparsity 0.9 does worse than its layer-shuffled self" in "\n".join(board.notes)


def test_without_the_runners_table_the_board_expects_the_methods_that_ran(tmp_path: Path) -> None:
    board = shuffle_board(tmp_path, table=None)
    assert {r.method for r in board.rows if r.kind == "method"} == {"a", "b"}
    assert not [i for i in board.issues if i.method == "c"]
    assert "does not apply" not in "\n".join(board.notes)


def test_fewer_than_three_seeds_are_not_judged(tmp_path: Path) -> None:
    variant = VariantRecord(
        name="layer_shuffle", kind="sanity", recipe=PROTOCOL.retrain.model_dump(mode="json"), ablation="layer_shuffle"
    )
    records = [make_record(PROTOCOL, "a", 0.9, s, OWN["a"][s]) for s in range(3)]
    records += [make_record(PROTOCOL, "a", 0.9, s, OWN["a"][s], variant=variant) for s in range(2)]
    write_run(tmp_path, PROTOCOL, records, sanity={"a": {"layer_shuffle": None}})
    board = next(b for b in compare(load_records([tmp_path])).boards if b.variant == "layer_shuffle")
    row = next(r for r in board.rows if r.kind == "method")
    assert row.vs_recipe_n == 2 and row.sanity_verdict == "untested" and row.vs_recipe_p_holm is None
    assert "not distinguishable" not in "\n".join(board.notes)  # identical numbers, but two seeds decide nothing
