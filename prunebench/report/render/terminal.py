"""Leaderboards for the terminal, as rich tables."""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from prunebench.console import text_console
from prunebench.report.board import Comparison, Leaderboard
from prunebench.report.cells import (
    COMPACT_HEADERS,
    audit_cells,
    audit_headers,
    board_headers,
    caption,
    compact_cells,
    pick,
    shown,
)
from prunebench.report.evaluation_cells import evaluation_caption, evaluation_cells, evaluation_headers

RIGHT = {"rank", "top-1 %", "n", "Δ dense", "FLOPs", "speedup", "params"}


def rich_tables(c: Comparison) -> list[Table]:
    """Per board, one table per target sparsity (the dense model first in each), of the columns that fit
    100-120 characters, then its audit; the caption closes the board."""
    tables: list[Table] = []
    for b in c.boards:
        dense = [r for r in b.rows if r.kind == "dense"]
        targets = sorted({r.sparsity_target for r in b.rows if r.kind == "method" and r.sparsity_target is not None})
        for i, target in enumerate(targets):
            last = i == len(targets) - 1
            t = Table(
                title=f"{b.title}: {b.target_label(target)}",
                caption=escape(" ".join([*b.notes, caption(b.metric)])) if last else None,
                box=box.SIMPLE_HEAD,
                padding=(0, 1),
            )
            rows = dense + [r for r in b.rows if r.kind == "method" and r.sparsity_target == target]
            keep = shown(b, COMPACT_HEADERS)
            for h, head, kept in zip(COMPACT_HEADERS, board_headers(b, COMPACT_HEADERS), keep, strict=True):
                if kept:
                    t.add_column(head, justify="right" if h in RIGHT else "left", overflow="fold", no_wrap=h in RIGHT)
            for r in rows:
                style = (
                    "dim"
                    if r.kind == "dense"
                    else ("red" if r.rank is None and r.n_seeds == 0 else ("yellow" if r.status != "ok" else None))
                )
                # escaped: a `[variant]` suffix is no markup
                t.add_row(*(escape(c) for c in pick(compact_cells(r), keep)), style=style)
            tables.append(t)
        audit = Table(
            title=f"Fairness audit of {b.protocol}: {len(b.issues)} result(s) shown apart",
            title_style="bold red" if b.issues else "bold green",
        )
        for h in audit_headers(b):
            audit.add_column(h)
        for i in b.issues:
            audit.add_row(*audit_cells(i, b.target_kind))
        if not b.issues:
            audit.add_row("none", "-", "-", "-", "every expected result is present and fair", "-")
        tables.append(audit)
        if b.evaluations:
            tables.append(evaluations_table(b))
    return tables


def evaluations_table(b: Leaderboard) -> Table:
    """The board's optional evaluations (`compare --show`), one row per board row, with their caption."""
    t = Table(
        title=f"What pruning takes away: {b.protocol} ({', '.join(b.shown)})",
        caption=escape(evaluation_caption(b.shown)),
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for h in evaluation_headers(b.shown):
        t.add_column(h, justify="left" if h in ("method", "most hurt corruption (pp)") else "right", overflow="fold")
    for e in b.evaluations:
        target = "-" if e.sparsity_target is None else f"{e.sparsity_target:g}"
        t.add_row(
            *(escape(c) for c in evaluation_cells(e, b.shown, target)), style="dim" if e.kind == "dense" else None
        )
    return t


def to_rich_text(c: Comparison, width: int = 120) -> str:
    console = text_console(width)
    for notice in c.notices:
        console.print(f"note: {notice}", markup=False, highlight=False)
    for t in rich_tables(c):
        console.print(t)
    return console.file.getvalue()  # type: ignore[attr-defined]
