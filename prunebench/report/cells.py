"""Human-readable cells of a leaderboard: every format that people read (terminal, markdown, LaTeX, HTML)
shows these, and the boards of retraining variants and the swap test format their numbers with them."""

from __future__ import annotations

from prunebench.report.audit import Issue
from prunebench.report.board import Leaderboard
from prunebench.report.efficiency import speedup_cell, speedup_compact
from prunebench.report.row import Row
from prunebench.report.stats import ALPHA, MIN_SEEDS

TIED_DEFINITION = (
    f"Ranks: methods with fewer than {MIN_SEEDS} seeds are not ranked; of the others, those not significantly "
    f"worse than the leader (paired t-test over shared seeds, Holm-corrected, alpha {ALPHA:g}) share rank =1 with "
    "it, the rest are ranked by their place in the order of means; vs leader gives the paired difference and "
    "the Holm-corrected p."
)
CAPTION = (
    "Test top-1 %: mean ± std over seeds, 95% t-interval of the mean (* cut to [0, 100]), n seeds. Δ dense: "
    "difference to the dense base model, paired by seed over the shared dense checkpoints (percentage points, "
    "95% t-interval). "
    + TIED_DEFINITION
    + " Results with fairness problems are not ranked: they are listed in the audit."
)


def pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def signed_pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f}"


def interval(low: float | None, high: float | None, signed: bool = False, cut: bool = False) -> str:
    if low is None or high is None:
        return "n/a"
    f = signed_pp if signed else pct
    return f"[{f(low)}, {f(high)}]" + ("*" if cut else "")


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
    """leader; tied or lower by Δ pp (Holm-corrected p); n/a (why)."""
    if r.vs_leader_verdict is None:
        return "-"  # the board's notes say why a row is not ranked
    if r.vs_leader_verdict == "leader":
        return "leader"
    if r.vs_leader_verdict == "n/a":
        return f"n/a ({r.vs_leader_n} shared seed{'s' if r.vs_leader_n != 1 else ''})"
    word = "tied " if r.vs_leader_verdict == "tied" else ""
    return f"{word}{signed_pp(r.vs_leader_delta)} ({p_value(r.vs_leader_p_holm)})"


VS_RECIPE = "Δ vs recipe (pp)"


def vs_recipe_cell(r: Row) -> str:
    """This variant's row minus the same method under the recipe compared with (prunebench.report.between)."""
    if r.vs_recipe is None:
        return "-"
    return (
        f"{signed_pp(r.vs_recipe_delta)} {interval(r.vs_recipe_ci_low, r.vs_recipe_ci_high, True)} "
        f"({p_value(r.vs_recipe_p)}, n={r.vs_recipe_n})"
    )


def shown(board: Leaderboard, headers: list[str]) -> list[bool]:
    """Which of `headers` a board shows: the columns of between-variant differences and measured speedups only
    where some row has one (most boards have neither)."""
    speed = any(r.speedup_batch_sizes or r.efficiency_not_measured for r in board.rows)
    between = any(r.vs_recipe is not None for r in board.rows)
    hidden = {"speedup (measured)", "speedup"} if not speed else set()
    hidden |= {VS_RECIPE, "vs recipe"} if not between else set()
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


def board_headers(board: Leaderboard) -> list[str]:
    """HUMAN_HEADERS, the target's column named for the board's kind of target."""
    name = TARGET_HEADERS.get(board.target_kind)
    return [name if h == "sparsity" and name else h for h in HUMAN_HEADERS]


def human_cells(r: Row, target_kind: str = "sparsity") -> list[str]:
    top1 = "n/a" if r.top1_mean is None else f"{pct(r.top1_mean)} ± {pct(r.top1_std)}"
    delta = (
        "-"
        if r.kind == "dense"
        else f"{signed_pp(r.delta_dense_mean)} {interval(r.delta_dense_ci_low, r.delta_dense_ci_high, True)}"
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
        interval(r.top1_ci_low, r.top1_ci_high, cut=r.top1_ci_clipped),
        f"{r.n_seeds}/{len(r.expected_seeds)}",
        train_flops_cell(r),
        delta,
        vs_leader_cell(r),
        vs_recipe_cell(r),
        "-" if r.achieved_sparsity_mean is None else f"{r.achieved_sparsity_mean:.4f}",
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
    return [
        full["rank"],
        full["method"],
        full["top-1 %"],
        full["95% CI"],
        full["n"],
        full["train FLOPs"],
        "-" if r.kind == "dense" else signed_pp(r.delta_dense_mean),
        full["vs leader (pp)"],
        "-" if r.vs_recipe is None else f"{signed_pp(r.vs_recipe_delta)} ({p_value(r.vs_recipe_p)})",
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
