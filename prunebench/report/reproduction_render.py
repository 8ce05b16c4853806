"""How `prunebench check --published` shows a reproduction (prunebench.report.reproduction): a table in the
terminal, the lines under it, and a markdown summary for a pull request, in the style of the regression gate."""

from __future__ import annotations

from collections import Counter
from typing import get_args

from rich.markup import escape
from rich.table import Table

from prunebench.report.metric import format_delta, format_value, scale, unit, word
from prunebench.report.reproduction import MIN_RUN_SEEDS, Item, Reproduction, Verdict
from prunebench.report.stats import ALPHA, POWER

HEADERS = ["method", "sparsity", "setting", "published", "run", "Δ", "detects", "p (Holm)", "verdict", "why"]


def definition(rep: Reproduction) -> str:
    """What `reproduced` means here, in the metric's units."""
    m = rep.board.metric
    units = f" ({unit(m)})" if unit(m) else ""
    return (
        f"A row is reproduced when Welch's t-test of the run's mean {word(m)} against the published one, "
        f"Holm-corrected over the file's rows, keeps p >= {ALPHA:g}. A median [min, max] of n runs gives its spread "
        "as range / d2(n) (d2(3) = 1.693) and its median's standard error as that times sqrt(0.449); a point value "
        f"is taken as exact, so only the run's spread is tested. The run needs {MIN_RUN_SEEDS} seeds or more. "
        f"`detects`{units}: the smallest true difference the row's test finds with {POWER:.0%} probability at "
        f"alpha {ALPHA:g}; a reproduced row's difference is likely below it, no more."
    )


def _published(item: Item, rep: Reproduction) -> str:
    m, row = rep.board.metric, item.published
    shown = scale(m) * (0.01 if row.unit == "percent" else 1.0)  # the board's unit: percent, or perplexity
    if row.kind == "mean_std":
        return f"{shown * row.value:.2f} ± {shown * row.std:.2f} (n={row.n})"  # type: ignore[operator]
    if row.kind == "median_range":
        return f"{shown * row.value:.2f} [{shown * row.low:.2f}, {shown * row.high:.2f}] (median, n={row.n})"  # type: ignore[operator]
    return f"{shown * row.value:.2f} (point)"


def _run(item: Item, rep: Reproduction) -> str:
    m, run = rep.board.metric, item.run
    if run is None or run.top1_mean is None:
        return "-"
    spread = f" ± {format_value(m, run.top1_std)}" if run.top1_std is not None else ""
    return f"{format_value(m, run.top1_mean)}{spread} (n={run.n_seeds})"


def cells(item: Item, rep: Reproduction) -> list[str]:
    m, t = rep.board.metric, item.test
    return [
        item.published.method,
        f"{item.published.sparsity:.6g}",
        item.published.setting or "-",
        _published(item, rep),
        _run(item, rep),
        format_delta(m, t.delta) if t is not None else "-",
        format_value(m, item.detectable) if item.detectable is not None else "-",
        f"{item.p_holm:.3g}" if item.p_holm is not None else "-",
        item.verdict.upper() if item.verdict in ("not reproduced", "unfair") else item.verdict,
        "; ".join(item.reasons) or "-",
    ]


def headline(rep: Reproduction) -> str:
    counts = Counter(i.verdict for i in rep.items)
    judged = len(rep.items) - counts["not run"]
    tally = ", ".join(f"{counts[v]} {v}" for v in get_args(Verdict) if counts[v])
    if rep.exit_code == 0:
        return f"REPRODUCED: {judged} of {len(rep.items)} published row(s) have results, every one reproduced ({tally})"
    return f"NOT SHOWN TO REPRODUCE: {tally}, of {len(rep.items)} published row(s)"


def reproduction_table(rep: Reproduction) -> Table:
    m = rep.board.metric
    title = f"prunebench check --published {rep.file.path}: {rep.board.protocol} against {rep.file.meta['paper']}"
    table = Table(title=escape(title), caption=escape(definition(rep)))
    for h in HEADERS:
        table.add_column(h if h not in ("Δ", "detects") or not unit(m) else f"{h} ({unit(m)})")
    for item in rep.items:
        if item.verdict != "not run":
            style = {"not reproduced": "red", "unfair": "red", "not testable": "yellow"}.get(item.verdict)
            table.add_row(*(escape(c) for c in cells(item, rep)), style=style)
    return table


def not_run(rep: Reproduction) -> str | None:
    """The published rows the results have nothing of, in a line (the table leaves them out)."""
    rows = [i.published for i in rep.items if i.verdict == "not run"]
    if not rows:
        return None
    listed = ", ".join(f"{r.method} at {r.sparsity:.6g}" for r in rows[:8]) + (", ..." if len(rows) > 8 else "")
    return f"{len(rows)} published row(s) without results here: {listed}"


def reproduction_text(rep: Reproduction) -> list[str]:
    """The lines printed under the table: the source, rows not run, notes, the verdict."""
    missing = not_run(rep)
    lines = [f"source: {rep.file.meta['source']}", *([f"note: {missing}"] if missing else [])]
    return [*lines, *(f"note: {n}" for n in rep.notes), headline(rep)]


def reproduction_markdown(rep: Reproduction) -> str:
    mark = "✅" if rep.exit_code == 0 else "❌"
    lines = [f"## {mark} {rep.board.protocol} against {rep.file.meta['paper']}: {headline(rep)}", ""]
    lines += ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for item in (i for i in rep.items if i.verdict != "not run"):
        row = [c.replace("|", "\\|") for c in cells(item, rep)]
        lines.append("| " + " | ".join(row) + " |")
    notes = [n for n in (not_run(rep), *rep.notes) if n]
    lines += ["", f"Source: {rep.file.meta['source']}.", "", *(f"- {n}" for n in notes), "", definition(rep), ""]
    return "\n".join(lines)
