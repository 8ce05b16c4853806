"""Figures: the ranked metric (test top-1; a causal LM's perplexity) against sparsity per method, and per-epoch
curves from the result records (the figures of the seed papers' analyses are in `science_plots`).

Figures are drawn on matplotlib's object API (Figure, not pyplot), so nothing depends on or
changes the user's backend; the file's suffix (.png, .pdf, .svg) picks the format.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from prunebench.errors import ResultsError
from prunebench.report.audit import target_of
from prunebench.report.board import Comparison, Leaderboard
from prunebench.report.figures import check_figure_path, save_figure
from prunebench.report.filters import passes_filters
from prunebench.report.metric import best_first, scale, with_unit
from prunebench.results import EpochRecord, Loaded, ResultRecord

CURVE_METRICS = ("val_top1", "train_loss", "train_top1", "val_loss", "test_top1", "lr", "sparsity")
PERCENT_METRICS = {"val_top1", "train_top1", "test_top1", "sparsity"}
METRIC_LABELS = {
    "val_top1": "validation top-1 %",
    "train_top1": "training top-1 %",
    "test_top1": "test top-1 %",
    "train_loss": "training loss",
    "val_loss": "validation loss",
    "lr": "learning rate",
    "sparsity": "sparsity %",
}


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def styles(n: int) -> list[dict[str, object]]:
    """n distinct line styles: tab10's colours with ten markers, then tab20's lighter colours dashed (20 methods
    never share one)."""
    from matplotlib import colormaps

    tab10, tab20 = colormaps["tab10"], colormaps["tab20"]
    out: list[dict[str, object]] = []
    for i in range(n):
        if i < 10:
            out.append({"color": tab10(i), "marker": MARKERS[i], "linestyle": "-"})
        else:
            out.append({"color": tab20(2 * (i % 10) + 1), "marker": MARKERS[(i + 3) % 10], "linestyle": "--"})
    return out


def board_title(board: Leaderboard) -> str:
    """What a figure's panel shows: the protocol, a retraining variant, a mix; never a hash."""
    title = board.protocol + (" [MIXED PROTOCOLS]" if board.mixed else "")
    if board.variant is not None:
        title += f"\nretraining variant: {board.variant_title or board.variant}"
    return title


def plot_accuracy(comparison: Comparison, path: Path) -> Path:
    """`accuracy_figure`, written to `path` (.png, .pdf or .svg)."""
    check_figure_path(path)
    save_figure(accuracy_figure(comparison), path)
    return path


def accuracy_figure(comparison: Comparison) -> Figure:
    """Each board's ranked metric (test top-1, perplexity) against density (fraction of weights remaining, log
    axis, sparser to the right), one panel per protocol, a bar chart where a protocol has one sparsity; error bars
    are ± one standard deviation over seeds; the dense base model is a horizontal line with its ± std band. Only
    ranked (fair) results are drawn."""
    boards = [b for b in comparison.boards if any(r.kind == "method" and r.n_seeds for r in b.rows)]
    if not boards:
        raise ResultsError("no ranked results to plot (every result is missing or shown apart in the audit)")
    fig = Figure(figsize=(7.6 * len(boards), 4.8), layout="constrained")
    axes = fig.subplots(1, len(boards), squeeze=False)[0]
    for ax, board in zip(axes, boards, strict=True):
        metric, k = board.metric, scale(board.metric)
        by_method: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        for r in board.rows:
            if r.kind == "method" and r.n_seeds and r.top1_mean is not None and r.sparsity_target is not None:
                left = remaining(board.target_kind, r.sparsity_target)
                by_method[r.method].append((left, k * r.top1_mean, k * (r.top1_std or 0.0)))
        densities = sorted({d for pts in by_method.values() for d, _, _ in pts}, reverse=True)
        methods = sorted(by_method)
        if len(densities) == 1:
            _bars(ax, methods, by_method, styles(len(methods)), densities[0], REMAINING[board.target_kind], metric)
        else:
            for method, style in zip(methods, styles(len(methods)), strict=True):
                pts = sorted(by_method[method], reverse=True)
                ax.errorbar(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    yerr=[p[2] for p in pts],
                    markersize=5,
                    capsize=3,
                    label=method,
                    **style,  # type: ignore[arg-type]
                )
            ax.set_xscale("log")
            ax.invert_xaxis()  # sparser to the right, as pruning papers draw it
            ax.xaxis.set_major_locator(FixedLocator(densities))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([f"{100 * d:.3g}%" for d in densities])
            ax.set_xlabel(f"{REMAINING[board.target_kind]} remaining (log scale)")
        dense = board.dense
        if dense is not None and dense.top1_mean is not None:
            mean, std = k * dense.top1_mean, k * (dense.top1_std or 0.0)
            label = f"dense ({with_unit(metric, dense.top1_mean)})"
            ax.axhline(mean, color="black", linestyle=":", linewidth=1.2, label=label)
            if std:
                ax.axhspan(mean - std, mean + std, color="black", alpha=0.08, linewidth=0)
        ax.set_ylabel(f"{metric.label} (mean ± std over seeds)")
        if metric.percent:
            ax.set_ylim(top=min(ax.get_ylim()[1], 101.0))  # accuracy ends at 100 %
        ax.set_title(board_title(board), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    return fig


# What a board's targets leave of the dense model, by kind of target (prunebench.results.targets).
REMAINING = {"sparsity": "weights", "flops_reduction": "FLOPs", "params_reduction": "parameters"}


def remaining(kind: str, target: float) -> float:
    """The fraction of the dense model a target leaves: 1 - sparsity, or 1 / reduction."""
    return 1.0 - target if kind == "sparsity" else 1.0 / target


def _bars(ax, methods, by_method, looks, density, what, metric) -> None:  # type: ignore[no-untyped-def]
    """One sparsity: a bar per method (with its ± std), best first (by `metric`'s direction)."""
    order = sorted(methods, key=lambda m: best_first(metric, by_method[m][0][1]))
    for i, m in enumerate(order):
        _, mean, std = by_method[m][0]
        look = looks[methods.index(m)]
        ax.bar(
            i,
            mean,
            yerr=std,
            capsize=3,
            color=look["color"],
            label=m,
            hatch="//" if look["linestyle"] == "--" else None,
        )
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel(f"method, {100 * density:.3g}% of the {what} remaining")
    if metric.percent:  # accuracies close together: the axis starts 5 points below the lowest bar
        low = min(by_method[m][0][1] - by_method[m][0][2] for m in methods)
        ax.set_ylim(max(0.0, low - 5), None)


def plot_curves(
    loaded: Sequence[Loaded],
    path: Path,
    *,
    metrics: Sequence[str] = ("val_top1", "train_loss", "lr"),
    protocols: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    stages: Sequence[str] = ("pruning", "retrain"),
) -> Path:
    """Per-epoch curves of the records (mean over seeds, band = min..max), one panel per metric;
    the epochs of the pruning and retraining stages follow each other on the x axis."""
    check_figure_path(path)
    unknown = [m for m in metrics if m not in CURVE_METRICS]
    if unknown:
        raise ResultsError(f"unknown curve metric {unknown[0]!r} (known: {', '.join(CURVE_METRICS)})")
    per_metric: dict[str, dict[str, dict[int, list[float]]]] = {
        m: defaultdict(lambda: defaultdict(list)) for m in metrics
    }
    boundaries: set[int] = set()
    names = set()
    for item in loaded:
        r = item.record
        if not isinstance(r, ResultRecord) or not r.curves:
            continue
        if not passes_filters(r, protocols=protocols, methods=methods, sparsities=sparsities):
            continue
        target = target_of(r)
        names.add(r.protocol.name)
        key = f"{r.method.label} @ {target:g}" if target is not None else r.method.label
        curves: list[EpochRecord] = [c for c in r.curves if c.stage in stages]
        previous = None
        for x, c in enumerate(curves, start=1):
            if previous is not None and c.stage != previous:
                boundaries.add(x - 1)
            previous = c.stage
            for m in metrics:
                value = getattr(c, m)
                if value is not None:
                    per_metric[m][key][x].append(100 * value if m in PERCENT_METRICS else value)
    if not any(per_metric[m] for m in metrics):
        raise ResultsError("no per-epoch curves in the selected results")
    fig = Figure(figsize=(5.0 * len(metrics), 4.0), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, m in zip(axes, metrics, strict=True):
        keys = sorted(per_metric[m])
        for key, look in zip(keys, styles(len(keys)), strict=True):
            points = per_metric[m][key]
            xs = sorted(points)
            means = [sum(points[x]) / len(points[x]) for x in xs]
            line = ax.plot(xs, means, linewidth=1.2, label=key, markersize=3, markevery=max(1, len(xs) // 8), **look)[0]
            if any(len(points[x]) > 1 for x in xs):
                ax.fill_between(
                    xs, [min(points[x]) for x in xs], [max(points[x]) for x in xs], color=line.get_color(), alpha=0.15
                )
        for b in sorted(boundaries):
            ax.axvline(b + 0.5, color="gray", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch (pruning, then retraining)" if boundaries else "epoch")
        ax.set_ylabel(METRIC_LABELS[m])
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    fig.suptitle(f"{', '.join(sorted(names))}: mean over seeds (band: min to max)", fontsize=10)
    save_figure(fig, path)
    return path
