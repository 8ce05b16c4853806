"""The figure of what pruning takes away (`prunebench plot evaluations`, and the HTML page with `compare --show`):
per board, a panel per shown evaluation against the fraction of the model remaining (log axis, sparser to the
right), a line per method of means over seeds: mean corruption accuracy and expected calibration error with the
dense models' as a dotted line, and the share of the test split that is a pruning-identified exemplar."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from prunebench.errors import ResultsError
from prunebench.report.board import Comparison
from prunebench.report.evaluations import EvaluationRow
from prunebench.report.figures import check_figure_path, save_figure
from prunebench.report.plots import REMAINING, board_title, remaining, styles


def _pie_share(e: EvaluationRow) -> float | None:
    return e.pies / e.test_examples if e.pies is not None and e.test_examples else None


PANELS: dict[str, tuple[str, Callable[[EvaluationRow], float | None]]] = {
    "robustness": ("mean corruption top-1 % (mean over seeds)", lambda e: e.corruption_top1),
    "calibration": ("expected calibration error % (mean over seeds)", lambda e: e.ece),
    "forgetting": ("PIEs, % of the test split (across seeds)", _pie_share),
}


def plot_evaluations(comparison: Comparison, path: Path) -> Path:
    """`evaluations_figure`, written to `path` (.png, .pdf or .svg)."""
    check_figure_path(path)
    save_figure(evaluations_figure(comparison), path)
    return path


def evaluations_figure(comparison: Comparison) -> Figure:
    """A row of panels per board with shown evaluations; only fair results are drawn."""
    boards = [b for b in comparison.boards if any(_value(e, s) is not None for e in b.evaluations for s in b.shown)]
    if not boards:
        raise ResultsError(
            "no result records the evaluations asked for: the protocol needs evaluation.robustness, calibration or "
            "forgetting"
        )
    width = max(len(b.shown) for b in boards)
    fig = Figure(figsize=(5.2 * width + 1.6, 4.2 * len(boards)), layout="constrained")
    grid = fig.subplots(len(boards), width, squeeze=False)
    for axes, board in zip(grid, boards, strict=True):
        methods = sorted({e.method for e in board.evaluations if e.kind == "method"})
        looks = dict(zip(methods, styles(len(methods)), strict=True))
        for ax, which in zip(axes, board.shown, strict=False):
            label, _ = PANELS[which]
            densities: set[float] = set()
            for m in methods:
                points = sorted(
                    (remaining(board.target_kind, e.sparsity_target), 100 * v)
                    for e in board.evaluations
                    if e.method == m and e.sparsity_target is not None and (v := _value(e, which)) is not None
                )
                densities |= {d for d, _ in points}
                if points:
                    xs, ys = [d for d, _ in points], [v for _, v in points]
                    ax.plot(xs, ys, label=m, markersize=5, **looks[m])  # type: ignore[arg-type]
            dense = next((e for e in board.evaluations if e.kind == "dense"), None)
            value = _value(dense, which) if dense is not None else None
            if value is not None:
                ax.axhline(100 * value, color="black", linestyle=":", linewidth=1.2, label="dense")
            if densities:
                ax.set_xscale("log")
                ax.invert_xaxis()
                ax.xaxis.set_major_locator(FixedLocator(sorted(densities)))
                ax.xaxis.set_minor_locator(NullLocator())
                ax.set_xticklabels([f"{100 * d:.3g}%" for d in sorted(densities)])
            ax.set_xlabel(f"{REMAINING[board.target_kind]} remaining (log scale)")
            ax.set_ylabel(label)
            ax.set_title(board_title(board), fontsize=10)
            ax.grid(True, alpha=0.3)
        for ax in axes[len(board.shown) :]:
            ax.set_visible(False)
        axes[len(board.shown) - 1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _value(e: EvaluationRow, which: str) -> float | None:
    v = PANELS[which][1](e)
    return v if v is not None and math.isfinite(v) else None
