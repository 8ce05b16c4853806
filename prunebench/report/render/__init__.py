"""The export formats of a comparison, one module each: terminal (rich), markdown, csv and json (tabular),
latex, html."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prunebench.errors import ResultsError
from prunebench.report.board import Comparison
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


def render(c: Comparison, fmt: str) -> str:
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
    """The format asked for, else the one the output file's suffix names, else the terminal table."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ResultsError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        return fmt
    if output is not None:
        return SUFFIX_FORMATS.get(output.suffix.lower(), "rich")
    return "rich"


__all__ = ["FORMATS", "SUFFIX_FORMATS", "Format", "format_for", "render", "rich_tables", "to_rich_text"]
