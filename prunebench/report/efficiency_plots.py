"""`prunebench plot efficiency`: what pruning buys on real hardware (docs/efficiency.md).

Left, the ranked metric (test top-1; a causal LM's perplexity) against the measured latency per batch (log axis), a
point per method and sparsity, with each method's Pareto front (the points no faster point beats) and the dense model
as a star.
Right, the FLOPs reduction counted against the speedup measured (both log axes), with the line where the
two agree: the distance below it is what the hardware does not deliver.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from prunebench.errors import ResultsError
from prunebench.report.board import Comparison
from prunebench.report.figures import check_figure_path, save_figure
from prunebench.report.metric import quality, scale
from prunebench.report.plots import board_title, styles
from prunebench.report.row import Row

PLAIN = FuncFormatter(lambda value, _: f"{value:.3g}")  # 0.4, 2, 3: not 4x10^-1
Point = tuple[float, float, float, float, float]  # latency ms, top-1 % (perplexity), FLOPs reduction, speedup, sparsity


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[tuple[float, float]]:
    """(latency, accuracy) points no other point beats: faster and at least as good (as accurate; where less is
    better, as low a perplexity). By latency."""
    sign = 1.0 if higher_is_better else -1.0
    front: list[tuple[float, float]] = []
    for latency, accuracy in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if not front or sign * accuracy > sign * front[-1][1]:
            front.append((latency, accuracy))
    return front


def _at(row: Row, batch_size: int) -> tuple[float, float] | None:
    """(pruned latency, speedup) of a row at a batch size, if it was measured there."""
    if batch_size not in row.speedup_batch_sizes:
        return None
    i = row.speedup_batch_sizes.index(batch_size)
    return row.latency_s[i], row.speedup_median[i]


def plot_efficiency(comparison: Comparison, path: Path, batch_size: int | None = None) -> Path:
    """`efficiency_figure`, written to `path` (.png, .pdf or .svg)."""
    check_figure_path(path)
    save_figure(efficiency_figure(comparison, batch_size), path)
    return path


def efficiency_figure(comparison: Comparison, batch_size: int | None = None) -> Figure:
    """The two panels of the module's docstring, a row per protocol with measured speedups."""
    boards = [b for b in comparison.boards if any(r.speedup_batch_sizes for r in b.rows)]
    if not boards:
        raise ResultsError(
            "no result has measured efficiency: add an `efficiency:` section to the protocol (docs/efficiency.md)"
        )
    sizes = sorted({s for b in boards for r in b.rows for s in r.speedup_batch_sizes})
    if batch_size is None:
        batch_size = sizes[-1]
    elif batch_size not in sizes:
        raise ResultsError(f"--batch-size {batch_size}: the results were timed at batch size(s) {sizes}")
    fig = Figure(figsize=(12.5, 4.8 * len(boards)), layout="constrained")
    axes = fig.subplots(len(boards), 2, squeeze=False)
    for (left, right), board in zip(axes, boards, strict=True):
        metric, k = board.metric, scale(board.metric)
        by_method: dict[str, list[Point]] = defaultdict(list)
        dense_ms: list[float] = []
        for r in board.rows:
            at = _at(r, batch_size)
            if r.kind != "method" or at is None or r.top1_mean is None or r.sparsity_target is None:
                continue
            i = r.speedup_batch_sizes.index(batch_size)
            dense_ms.append(1000 * r.dense_latency_s[i])
            point = (1000 * at[0], k * r.top1_mean, r.flops_speedup or 1.0, at[1], r.sparsity_target)
            by_method[r.method].append(point)
        methods = sorted(by_method)
        for method, style in zip(methods, styles(len(methods)), strict=True):
            pts = by_method[method]
            color = style["color"]
            left.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, marker=style["marker"], label=method)
            front = pareto_front([(p[0], p[1]) for p in pts], metric.higher_is_better)
            left.step([p[0] for p in front], [p[1] for p in front], where="post", color=color, alpha=0.6)
            right.scatter([p[2] for p in pts], [p[3] for p in pts], color=color, marker=style["marker"], label=method)
            for p in pts:
                right.annotate(f"{p[4]:g}", (p[2], p[3]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        dense = board.dense
        if dense is not None and dense.top1_mean is not None and dense_ms:
            ms = math.fsum(dense_ms) / len(dense_ms)
            left.scatter([ms], [k * dense.top1_mean], marker="*", s=160, color="black", label="dense", zorder=3)
        left.set_xscale("log")
        left.set_xlabel(f"measured latency, ms per batch of {batch_size} (log scale)")
        left.set_ylabel(f"{metric.label} (mean over seeds)")
        left.set_title(f"{board_title(board)}: {quality(metric)} against latency, Pareto front per method", fontsize=10)
        reach = max([2.0] + [max(p[2], p[3]) for pts in by_method.values() for p in pts])
        right.plot([1, reach], [1, reach], linestyle="--", color="grey", linewidth=1, label="speedup = FLOPs reduction")
        right.axhline(1.0, color="black", linestyle=":", linewidth=1)
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_xlabel("FLOPs reduction, counted (dense / pruned, log scale)")
        right.set_ylabel(f"speedup, measured at batch {batch_size} (log scale)")
        what = {"flops_reduction": "target FLOPs reduction", "params_reduction": "target parameter reduction"}
        labels = what.get(board.target_kind, "target sparsity")
        right.set_title(f"counted against measured; labels: {labels}", fontsize=10)
        for ax in (left, right):
            ax.grid(True, alpha=0.3, which="both")
            for axis in (ax.xaxis, ax.yaxis) if ax is right else (ax.xaxis,):
                axis.set_major_formatter(PLAIN)
                axis.set_minor_formatter(PLAIN)
        left.legend(fontsize=8, loc="best", frameon=False)
        right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    devices = sorted({d for b in boards for r in b.rows for d in r.speedup_devices})
    fig.suptitle("measured on " + "; ".join(devices), fontsize=9)
    return fig
