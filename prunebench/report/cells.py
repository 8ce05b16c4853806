"""Human-readable cells of a leaderboard: every format that people read (terminal, markdown, LaTeX, HTML)
shows these, and the boards of retraining variants and the swap test format their numbers with them. Values and
differences are those of the row's ranked metric, formatted by prunebench.report.metric (accuracy as a percentage,
differences in pp; perplexity as it is)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunebench.report.audit import Issue
from prunebench.report.board import Leaderboard
from prunebench.report.efficiency import speedup_cell, speedup_compact
from prunebench.report.metric import (
    DEFAULT_TASK,
    capitalized,
    column,
    format_delta,
    format_value,
    ranking_metric,
    unit,
    unit_words,
)
from prunebench.report.row import Row
from prunebench.report.stats import ALPHA, MIN_SEEDS

if TYPE_CHECKING:
    from prunebench.tasks import Metric

TIED_DEFINITION = (
    f"Ranks: methods with fewer than {MIN_SEEDS} seeds are not ranked; of the others, those not significantly "
    f"worse than the leader (paired t-test over shared seeds, Holm-corrected, alpha {ALPHA:g}) share rank =1 with "
    "it, the rest are ranked by their place in the order of means; vs leader gives the paired difference and "
    "the Holm-corrected p."
)


def _caption(value: str, cut: str, units: str) -> str:
    return (
        f"{value}: mean ± std over seeds, 95% t-interval of the mean{cut}, n seeds. Δ dense: "
        f"difference to the dense base model, paired by seed over the shared dense checkpoints ({units}, "
        "95% t-interval). "
        + TIED_DEFINITION
        + " Results with fairness problems are not ranked: they are listed in the audit."
    )


CAPTION = _caption("Test top-1 %", " (* cut to [0, 100])", "percentage points")  # classification's: caption()


def caption(metric: Metric) -> str:
    """What a board's columns are, for a board ranked by `metric` (CAPTION for test top-1)."""
    value = capitalized(metric.label) + ("" if metric.higher_is_better else " (lower is better)")
    return _caption(value, " (* cut to [0, 100])" if metric.percent else "", unit_words(metric))


def interval(
    low: float | None, high: float | None, signed: bool = False, cut: bool = False, metric: Metric | None = None
) -> str:
    """[low, high] in the units of `metric` (default: classification's, percentages)."""
    if low is None or high is None:
        return "n/a"
    m = metric or ranking_metric(DEFAULT_TASK)
    if signed:
        return f"[{format_delta(m, low)}, {format_delta(m, high)}]" + ("*" if cut else "")
    return f"[{format_value(m, low)}, {format_value(m, high)}]" + ("*" if cut else "")


def p_value(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def times(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def train_flops_cell(r: Row) -> str:
    """Under SX-A / SX-B, what the totals count beside the accuracy they bought: the mean training FLOPs of every
    stage (base training for a method that pruned a dense model; none for one trained sparse from scratch)."""
    if r.kind == "dense" or not r.all_stages or r.train_flops is None:
        return "-"
    return f"{r.train_flops:.3g}"


def budget_cell(r: Row) -> str:
    if r.kind == "dense" or r.total_epochs is None:
        return "-"
    parts = []
    if r.all_stages:  # SX-A / SX-B judge the totals, base training included: what the row spent of them
        limit = f"/{r.total_epochs_limit:.3g}" if r.total_epochs_limit is not None else ""
        parts.append(f"total {r.total_epochs:.3g}{limit} ep")
    elif r.pruning_epochs_limit is not None:
        parts.append(f"prune {r.pruning_epochs:.3g}/{r.pruning_epochs_limit:.3g} ep")
    if r.retrain_epochs_limit is not None and not r.all_stages:
        parts.append(f"retrain {r.retrain_epochs:.3g}/{r.retrain_epochs_limit:.3g} ep")
    if r.budget_used is not None:
        parts.append(f"FLOPs {100 * r.budget_used:.0f}%")
    if r.budget_stated_by and r.budget_stated_by != "protocol":
        parts.append(f"budget stated by {r.budget_stated_by}")
    return ", ".join(parts) or "-"


def rank_cell(r: Row) -> str:
    if r.rank is None:
        return "-"
    return f"={r.rank}" if r.rank_shared else str(r.rank)


def vs_leader_cell(r: Row) -> str:
    """leader; tied or lower by Δ (pp, perplexity points) (Holm-corrected p); n/a (why)."""
    if r.vs_leader_verdict is None:
        return "-"  # the board's notes say why a row is not ranked
    if r.vs_leader_verdict == "leader":
        return "leader"
    if r.vs_leader_verdict == "n/a":
        return f"n/a ({r.vs_leader_n} shared seed{'s' if r.vs_leader_n != 1 else ''})"
    word = "tied " if r.vs_leader_verdict == "tied" else ""
    return f"{word}{format_delta(ranking_metric(r), r.vs_leader_delta)} ({p_value(r.vs_leader_p_holm)})"


VS_RECIPE = "Δ vs recipe (pp)"


def vs_recipe_cell(r: Row) -> str:
    """This variant's row minus the same method under the recipe compared with (prunebench.report.between)."""
    if r.vs_recipe is None:
        return "-"
    m = ranking_metric(r)
    return (
        f"{format_delta(m, r.vs_recipe_delta)} {interval(r.vs_recipe_ci_low, r.vs_recipe_ci_high, True, metric=m)} "
        f"({p_value(r.vs_recipe_p)}, n={r.vs_recipe_n})"
    )


def shown(board: Leaderboard, headers: list[str]) -> list[bool]:
    """Which of `headers` a board shows: the columns of between-variant differences, measured speedups and effective
    sparsity only where some row has one (most boards have no speedups or variants; older records no effective
    sparsity)."""
    speed = any(r.speedup_batch_sizes or r.efficiency_not_measured for r in board.rows)
    between = any(r.vs_recipe is not None for r in board.rows)
    hidden = {"speedup (measured)", "speedup"} if not speed else set()
    hidden |= {VS_RECIPE, "vs recipe"} if not between else set()
    hidden |= {"effective"} if not any(r.effective_sparsity_mean is not None for r in board.rows) else set()
    return [h not in hidden for h in headers]


def pick(cells: list[str], keep: list[bool]) -> list[str]:
    return [c for c, k in zip(cells, keep, strict=True) if k]


HUMAN_HEADERS = [
    "rank",
    "method",
    "sparsity",
    "top-1 %",
    "95% CI",
    "n",
    "train FLOPs",
    "Δ dense (pp)",
    "vs leader (pp)",
    VS_RECIPE,
    "achieved",
    "effective",
    "FLOPs",
    "speedup (measured)",
    "params",
    "budget",
    "retraining",
    "setup",
    "status",
]


# A cost board's target column (prunebench.results.targets): what `sparsity` is on the others.
TARGET_HEADERS = {"flops_reduction": "FLOPs target", "params_reduction": "params target"}


def metric_headers(metric: Metric) -> dict[str, str]:
    """The heads of the columns of the ranked metric, named for it: "top-1 %" is "perplexity" on a causal LM's
    board, and its differences drop "(pp)"."""
    u = f" ({unit(metric)})" if unit(metric) else ""
    return {
        "top-1 %": column(metric),
        "Δ dense (pp)": f"Δ dense{u}",
        "vs leader (pp)": f"vs leader{u}",
        VS_RECIPE: f"Δ vs recipe{u}",
    }


def board_headers(board: Leaderboard, headers: list[str] | None = None) -> list[str]:
    """`headers` (default HUMAN_HEADERS) as a board shows them: the target's column named for the board's kind of
    target, the ranked metric's for its metric."""
    name = TARGET_HEADERS.get(board.target_kind)
    heads = metric_headers(board.metric)
    return [name if h == "sparsity" and name else heads.get(h, h) for h in headers or HUMAN_HEADERS]


def human_cells(r: Row, target_kind: str = "sparsity") -> list[str]:
    m = ranking_metric(r)
    top1 = "n/a" if r.top1_mean is None else f"{format_value(m, r.top1_mean)} ± {format_value(m, r.top1_std)}"
    delta = (
        "-"
        if r.kind == "dense"
        else f"{format_delta(m, r.delta_dense_mean)} "
        f"{interval(r.delta_dense_ci_low, r.delta_dense_ci_high, True, metric=m)}"
    )
    retraining = "-"
    if r.retraining_regime is not None:
        lr = f" lr {r.lr:g}" if r.lr is not None else ""
        retraining = f"{r.retraining_regime}; {r.optimizer}{lr} {r.lr_schedule}"
    method = r.method
    if r.selected_variant is not None:
        method += f" [val-selected: {r.selected_variant}]"
    elif r.retrain_variant is not None and r.kind == "method":
        method += f" [{r.retrain_variant}]"
    return [
        rank_cell(r),
        method,
        ("0" if target_kind == "sparsity" else "1x")
        if r.kind == "dense"
        else f"{r.sparsity_target:g}" + ("" if target_kind == "sparsity" else "x"),
        top1,
        interval(r.top1_ci_low, r.top1_ci_high, cut=r.top1_ci_clipped, metric=m),
        f"{r.n_seeds}/{len(r.expected_seeds)}" + (f" ({r.degenerate_seeds} at chance)" if r.degenerate_seeds else ""),
        train_flops_cell(r),
        delta,
        vs_leader_cell(r),
        vs_recipe_cell(r),
        "-" if r.achieved_sparsity_mean is None else f"{r.achieved_sparsity_mean:.4f}",
        "-" if r.effective_sparsity_mean is None else f"{r.effective_sparsity_mean:.4f}",
        "-" if r.kind == "dense" else times(r.flops_speedup),
        speedup_cell(r),
        "-" if r.kind == "dense" else times(r.compression),
        budget_cell(r),
        retraining,
        r.comparison or "-",
        r.status,
    ]


AUDIT_HEADERS = ["kind", "method", "sparsity", "seed", "reason", "file"]


def audit_headers(board: Leaderboard) -> list[str]:
    """AUDIT_HEADERS, the target's column named for the board's kind of target (as `board_headers`)."""
    name = TARGET_HEADERS.get(board.target_kind)
    return [name if h == "sparsity" and name else h for h in AUDIT_HEADERS]


def audit_cells(i: Issue, target_kind: str = "sparsity") -> list[str]:
    """An issue's cells; its target as the board states it (a sparsity, or a cost reduction's factor)."""
    target = "-" if i.sparsity is None else f"{i.sparsity:g}" + ("" if target_kind == "sparsity" else "x")
    return [
        i.kind,
        i.method or "-",
        target,
        "-" if i.seed is None else str(i.seed),
        i.reason,
        i.file or "-",
    ]


# The terminal's columns: what fits 100-120 characters (the rest is in markdown, JSON and CSV).
COMPACT_HEADERS = [
    "rank",
    "method",
    "top-1 %",
    "95% CI",
    "n",
    "train FLOPs",
    "Δ dense",
    "vs leader (pp)",
    "vs recipe",
    "FLOPs",
    "speedup",
    "params",
    "status",
]


def compact_cells(r: Row) -> list[str]:
    full = dict(zip(HUMAN_HEADERS, human_cells(r), strict=True))
    m = ranking_metric(r)
    return [
        full["rank"],
        full["method"],
        full["top-1 %"],
        full["95% CI"],
        full["n"],
        full["train FLOPs"],
        "-" if r.kind == "dense" else format_delta(m, r.delta_dense_mean),
        full["vs leader (pp)"],
        "-" if r.vs_recipe is None else f"{format_delta(m, r.vs_recipe_delta)} ({p_value(r.vs_recipe_p)})",
        full["FLOPs"],
        speedup_compact(r),
        full["params"],
        full["status"],
    ]


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "\u00d7": r"$\times$",  # multiplication sign
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)
