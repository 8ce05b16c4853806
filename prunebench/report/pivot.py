"""The paper's table: method x target sparsity, the ranked metric's mean ± std over seeds (test top-1; a causal
LM's perplexity), from a leaderboard.

The best method of each column (the leader) is bold and the methods that share its rank (not significantly
worse, prunebench.report.stats) carry `=`; a cell of a method with fewer seeds than a rank needs carries its
seed count, a cell with seeds at chance says how many (`2 at chance`: kept in its mean), and a cell whose results the
audit names (kept out of its mean, or flagged) says `!audit`. As markdown (a README, a pull request), LaTeX
(booktabs, one column of a two-column paper wide at most) and a terminal table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from prunebench.report.board import Leaderboard
from prunebench.report.cells import latex_escape
from prunebench.report.metric import best_first, capitalized, format_value, ranking_metric
from prunebench.report.row import Row
from prunebench.report.stats import ALPHA, MIN_SEEDS
from prunebench.results.targets import Target


@dataclass(frozen=True)
class Cell:
    text: str  # "98.19 ± 0.20"
    best: bool  # the column's leader
    tied: bool  # shares the leader's rank
    note: str = ""  # "n=2", "excluded", ...


def cell(r: Row | None, seed_notes: bool = True) -> Cell:
    if r is None or r.top1_mean is None:
        return Cell("-", False, False, "" if r is None else r.status.split(" ")[0])
    m = ranking_metric(r)
    std = format_value(m, r.top1_std)
    notes = [f"n={r.n_seeds}"] if seed_notes and r.kind == "method" and r.rank is None else []
    if r.degenerate_seeds:
        notes.append(f"{r.degenerate_seeds} at chance")  # kept in the mean: the board's note says what it means
    if r.n_issues:
        notes.append("!audit")  # results of the cell kept out of the mean, or flagged: the audit says why
    note = ", ".join(notes)
    leader = r.vs_leader_verdict == "leader" and r.rank == 1
    return Cell(f"{format_value(m, r.top1_mean)} ± {std}", leader, r.rank == 1 and not leader, note)


@dataclass(frozen=True)
class Pivot:
    title: str
    sparsities: list[float]
    methods: list[str]  # in the order of their mean over the columns, best first
    dense: Cell
    cells: dict[tuple[str, float], Cell]
    caption: str
    target_kind: str = "sparsity"

    def column(self, value: float) -> str:
        """A column's short head: the sparsity, or the reduction (`2x`)."""
        return f"{value:g}" if self.target_kind == "sparsity" else f"{value:g}x"


def pivot(board: Leaderboard) -> Pivot:
    # Methods and sparsities with results: a run of a few methods is not a table of the protocol's missing ones.
    rows = [r for r in board.rows if r.kind == "method" and r.sparsity_target is not None and r.files]
    sparsities = sorted({r.sparsity_target for r in rows})  # type: ignore[type-var]
    by = {(r.method, r.sparsity_target): r for r in rows}
    metric = board.metric

    def overall(m: str) -> float:
        """Best first: the mean over the columns, negated where higher is better; a method without any last."""
        means = [by[(m, s)].top1_mean for s in sparsities if (m, s) in by and by[(m, s)].top1_mean is not None]
        return best_first(metric, sum(means) / len(means)) if means else math.inf  # type: ignore[arg-type]

    # Methods with results in more columns first (an N:M row has one sparsity): means over other columns do not compare.
    columns = {m: sum((m, s) in by for s in sparsities) for m in {r.method for r in rows}}
    methods = sorted(columns, key=lambda m: (-columns[m], overall(m), m))
    seeds = sorted({s for r in rows for s in r.seeds})
    ranked = any(r.rank is not None for r in rows)
    caption = (
        f"{capitalized(metric.label)} (mean ± std over {len(seeds)} seed(s)"
        + ("" if metric.higher_is_better else ", lower is better")
        + f") at each {_each(board.target_kind)}; dense base model: "
        f"{cell(board.dense).text}. "
        + (
            f"Bold: the best method of the column; =: not significantly worse than it (paired t-test, "
            f"Holm-corrected, alpha {ALPHA:g}). A method with fewer than {MIN_SEEDS} seeds is not ranked (n= its "
            "seeds)."
            if ranked
            else f"Not ranked: {len(seeds)} seed(s) are fewer than the {MIN_SEEDS} a ranking needs."
        )
    )
    return Pivot(
        title=board.title,
        sparsities=sparsities,  # type: ignore[arg-type]
        methods=methods,
        dense=cell(board.dense),
        cells={(m, s): cell(by.get((m, s)), seed_notes=ranked) for m in methods for s in sparsities},
        caption=caption,
        target_kind=board.target_kind,
    )


def _each(kind: str) -> str:
    return {
        "sparsity": "target sparsity",
        "flops_reduction": "FLOPs reduction",
        "params_reduction": "parameter reduction",
    }.get(kind, kind)


def _text(c: Cell, bold: tuple[str, str], tie: str) -> str:
    text = f"{bold[0]}{c.text}{bold[1]}" if c.best else c.text
    if c.tied:
        text += tie
    if c.note:
        text += f" ({c.note})"
    return text


def pivot_markdown(p: Pivot) -> str:
    lines = [f"**{p.title}**", "", "| method | " + " | ".join(p.column(s) for s in p.sparsities) + " |"]
    lines.append("|---|" + "---:|" * len(p.sparsities))
    lines.append("| dense base model | " + " | ".join(p.dense.text for _ in p.sparsities) + " |")
    for m in p.methods:
        cells = [_text(p.cells[(m, s)], ("**", "**"), " =") for s in p.sparsities]
        lines.append(f"| {m.replace('|', chr(92) + '|')} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", f"*{p.caption}*", ""])


def pivot_latex(p: Pivot) -> str:
    """A booktabs table (\\usepackage{booktabs,graphicx}) of one column of a two-column paper: \\footnotesize,
    shrunk to the column's width when it is wider (never enlarged)."""

    def tex(c: Cell) -> str:
        # 99.16 with its ± 0.28 as a subscript, the papers' compact style: four columns fit one column
        mean, _, std = c.text.partition(" ± ")
        body = (rf"\mathbf{{{mean}}}" if c.best else rf"\underline{{{mean}}}" if c.tied else mean) + (
            rf"_{{\pm {std}}}" if std else ""
        )
        return f"${body}$" + (f" \\tiny({latex_escape(c.note)})" if c.note else "")

    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\footnotesize",
        r"\setlength{\tabcolsep}{3pt}",
        r"\resizebox{\ifdim\width>\columnwidth\columnwidth\else\width\fi}{!}{%",
        r"\begin{tabular}{@{}l" + "r" * len(p.sparsities) + "@{}}",
        r"\toprule",
        "method & " + " & ".join(p.column(s) for s in p.sparsities) + r" \\",
        r"\midrule",
        "dense & " + " & ".join(tex(p.dense) for _ in p.sparsities) + r" \\",
    ]
    out += [
        latex_escape(m) + " & " + " & ".join(tex(p.cells[(m, s)]) for s in p.sparsities) + r" \\" for m in p.methods
    ]
    out += [
        r"\bottomrule",
        r"\end{tabular}}",
        rf"\caption{{{latex_escape(p.caption.replace('; =: not significantly', '; underlined: not significantly'))}}}",
        r"\end{table}",
        "",
    ]
    return "\n".join(out)


def pivot_table(p: Pivot) -> Table:
    table = Table(title=p.title, caption=p.caption)
    table.add_column("method")
    for s in p.sparsities:
        table.add_column(Target(p.target_kind, s).label(), justify="right")  # type: ignore[arg-type]
    table.add_row("dense base model", *[p.dense.text] * len(p.sparsities), style="dim")
    for m in p.methods:
        table.add_row(escape(m), *(_text(p.cells[(m, s)], ("[bold]", "[/bold]"), " =") for s in p.sparsities))
    return table
