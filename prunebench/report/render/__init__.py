"""The export formats of a comparison, one module each: terminal (rich), markdown, csv and json (tabular),
latex, html."""

from __future__ import annotations

from prunebench.console import text_console
from prunebench.errors import ResultsError
from prunebench.report.board import Comparison
from prunebench.report.figures import FIGURE_SUFFIXES, check_figure_path
from prunebench.report.formats import FORMATS, SUFFIX_FORMATS, Format, format_for
from prunebench.report.render.html import to_html
from prunebench.report.render.latex import to_latex
from prunebench.report.render.markdown import evaluations_markdown, to_markdown
from prunebench.report.render.tabular import to_csv, to_json
from prunebench.report.render.terminal import evaluations_table, rich_tables, to_rich_text

TABLES = ("board", "pivot")


def render(c: Comparison, fmt: str, table: str = "board") -> str:
    """The comparison in `fmt`; `table`: the full leaderboard (board) or the paper's method x sparsity table
    (pivot: markdown and the terminal; LaTeX is always the pivot, which fits a column)."""
    if table not in TABLES:
        raise ResultsError(f"--table must be board or pivot (got {table!r})")
    if table == "pivot" and fmt in ("markdown", "rich"):
        from prunebench.report.pivot import pivot, pivot_markdown, pivot_table

        if fmt == "markdown":
            return "\n".join("\n".join([pivot_markdown(pivot(b)), *evaluations_markdown(b)]) for b in c.boards)
        console = text_console(120)
        for b in c.boards:
            console.print(pivot_table(pivot(b)))
            if b.evaluations:
                console.print(evaluations_table(b))
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
