"""Paired differences between retraining variants: each variant board's row against the same method and
sparsity on the protocol's own board (or on another variant's, `compare --against`), paired by seed, with the
95% paired t-interval and the paired t-test's p (prunebench.report.stats.paired_difference).

A variant is never ranked against the protocol's recipe (each is a board of its own); this column says how
far a variant's recipe moves each method, which is what the retraining-LR "boost" and the epoch extensions of
Wang et al. 2023 are about.
"""

from __future__ import annotations

from collections.abc import Sequence

from prunebench.report.audit import same_target
from prunebench.report.board import Leaderboard
from prunebench.report.metric import unit_words
from prunebench.report.row import Row
from prunebench.report.stats import paired_difference

PROTOCOL = "protocol"  # the name `--against` gives the protocol's own recipe


def name_of(board: Leaderboard) -> str:
    return board.variant or PROTOCOL


def add_between_variants(boards: Sequence[Leaderboard], against: str | None = None) -> None:
    """Fill the vs_recipe columns of every board of one protocol's setup against the board named `against`
    (default: the protocol's own recipe); boards of a setup without that board are left as they are."""
    names = [name_of(b) for b in boards]
    target = against or PROTOCOL
    if target not in names:
        return  # nothing to compare with here (`compare` says so when no board of any protocol had it)
    baseline = boards[names.index(target)]
    rows = [r for r in baseline.rows if r.kind == "method"]
    for board in boards:
        if board is baseline:
            continue
        for row in board.rows:
            if row.kind != "method":
                continue
            at = row.sparsity_target
            other = next((r for r in rows if r.method == row.method and same_target(r.sparsity_target, at)), None)
            if other is not None and row.top1_by_seed and other.top1_by_seed:
                _fill(row, other, target, board)
        if any(r.vs_recipe is not None for r in board.rows):
            units = "pp" if board.metric.percent else unit_words(board.metric)
            board.notes.append(
                f"Δ vs {target}: each row minus the same method and sparsity under the {target} "
                f"{'recipe' if target == PROTOCOL else 'variant'}, paired by seed ({units}, 95% paired t-interval, p)"
            )


def _fill(row: Row, other: Row, target: str, board: Leaderboard) -> None:
    d = paired_difference(
        row.top1_by_seed, other.top1_by_seed, resolution=board.resolution, degenerate=board.degenerate
    )
    row.vs_recipe, row.vs_recipe_n = target, d.n
    row.vs_recipe_delta, row.vs_recipe_ci_low, row.vs_recipe_ci_high, row.vs_recipe_p = d.mean, d.low, d.high, d.p
