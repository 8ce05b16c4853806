"""The export formats of a comparison, one module each: terminal (rich), markdown, csv and json (tabular),
latex, html."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

from rich.console import Console

from prunebench.errors import ResultsError
from prunebench.report.board import Comparison
from prunebench.report.figures import FIGURE_SUFFIXES, check_figure_path
from prunebench.report.render.html import to_html
from prunebench.report.render.latex import to_latex
from prunebench.report.render.markdown import to_markdown
from prunebench.report.render.tabular import to_csv, to_json
from prunebench.report.render.terminal import rich_tables, to_rich_text

FORMATS = ("rich", "markdown", "csv", "json", "latex", "html")
Format = Literal["rich", "markdown", "csv", "json", "latex", "html"]
SUFFIX_FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".csv": "csv",
    ".json": "json",
    ".tex": "latex",
    ".html": "html",
    ".htm": "html",
    ".txt": "rich",
}

# Audit kinds. Every one keeps its result out of the ranking; a missing seed is a result that is


TABLES = ("board", "pivot")


def render(c: Comparison, fmt: str, table: str = "board") -> str:
    """The comparison in `fmt`; `table`: the full leaderboard (board) or the paper's method x sparsity table
    (pivot: markdown and the terminal; LaTeX is always the pivot, which fits a column)."""
    if table not in TABLES:
        raise ResultsError(f"--table must be board or pivot (got {table!r})")
    if table == "pivot" and fmt in ("markdown", "rich"):
        from prunebench.report.pivot import pivot, pivot_markdown, pivot_table

        if fmt == "markdown":
            return "\n".join(pivot_markdown(pivot(b)) for b in c.boards)
        console = Console(file=io.StringIO(), width=120, color_system=None, force_terminal=False)
        for b in c.boards:
            console.print(pivot_table(pivot(b)))
        return console.file.getvalue()  # type: ignore[attr-defined]
    if fmt == "markdown":
        return to_markdown(c)
    if fmt == "csv":
        return to_csv(c)
    if fmt == "json":
        return to_json(c)
    if fmt == "latex":
        return to_latex(c)
    if fmt == "html":
        return to_html(c)
    if fmt == "rich":
        return to_rich_text(c)
    raise ResultsError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")


def format_for(fmt: str | None, output: Path | None) -> str:
    """The format asked for, else the one the output file's suffix names, else the terminal table. A suffix that
    names no format is an error (rather than a terminal table in a file called board.xlsx)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ResultsError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        return fmt
    if output is not None and output.suffix:
        kind = SUFFIX_FORMATS.get(output.suffix.lower())
        if kind is None:
            raise ResultsError(
                f"--output {output}: {output.suffix} names no format prunebench writes ({', '.join(SUFFIX_FORMATS)}); "
                "pass --format to choose one"
            )
        return kind
    return "rich"


__all__ = [
    "FIGURE_SUFFIXES",
    "FORMATS",
    "SUFFIX_FORMATS",
    "Format",
    "check_figure_path",
    "format_for",
    "render",
    "rich_tables",
    "to_rich_text",
]
