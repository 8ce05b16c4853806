"""Leaderboards for the terminal, as rich tables."""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from prunebench.report.board import Comparison
from prunebench.report.cells import AUDIT_HEADERS, CAPTION, HUMAN_HEADERS, audit_cells, human_cells


def rich_tables(c: Comparison) -> list[Table]:
    tables: list[Table] = []
    for b in c.boards:
        t = Table(title=b.title, caption=" ".join([*b.notes, CAPTION]), show_lines=False)
        for h in HUMAN_HEADERS:
            t.add_column(h, justify="right" if h in ("rank", "sparsity", "top-1 %", "n") else "left")
        last: float | None = None
        for r in b.rows:
            if r.kind == "method" and last is not None and r.sparsity_target != last:
                t.add_section()
            style = (
                "dim" if r.kind == "dense" else ("red" if r.rank is None else ("yellow" if r.status != "ok" else None))
            )
            t.add_row(*(escape(c) for c in human_cells(r)), style=style)  # a `[variant]` suffix is no markup
            last = r.sparsity_target if r.kind == "method" else None
        tables.append(t)
        audit = Table(
            title=f"Fairness audit of {b.protocol}: {len(b.issues)} result(s) shown apart",
            title_style="bold red" if b.issues else "bold green",
        )
        for h in AUDIT_HEADERS:
            audit.add_column(h)
        for i in b.issues:
            audit.add_row(*audit_cells(i))
        if not b.issues:
            audit.add_row("none", "-", "-", "-", "every expected result is present and fair", "-")
        tables.append(audit)
    return tables


def to_rich_text(c: Comparison, width: int = 220) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    for notice in c.notices:
        console.print(f"note: {notice}", markup=False, highlight=False)
    for t in rich_tables(c):
        console.print(t)
    return console.file.getvalue()  # type: ignore[attr-defined]
