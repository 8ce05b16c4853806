"""The output formats of the report commands, and which one a command writes: by --format, else by the suffix of
--output, else the terminal's table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from prunebench.errors import ResultsError

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


def format_for(fmt: str | None, output: Path | None, formats: Sequence[str] = FORMATS) -> str:
    """The format a command that writes `formats` writes: --format's, else the one --output's suffix names, else the
    terminal table. A suffix naming no format, or one the command does not write, is an error naming --output
    (rather than a terminal table in a file called board.xlsx or board.csv)."""
    if fmt is not None:
        if fmt not in formats:
            raise ResultsError(f"--format must be one of {', '.join(formats)} (got {fmt!r})")
        return fmt
    if output is None or not output.suffix:
        return "rich"
    kind = SUFFIX_FORMATS.get(output.suffix.lower())
    if kind in formats:
        return kind
    suffixes = ", ".join(s for s, f in SUFFIX_FORMATS.items() if f in formats)
    if kind is None:
        raise ResultsError(
            f"--output {output}: {output.suffix} names no format prunebench writes ({suffixes}); "
            "pass --format to choose one"
        )
    raise ResultsError(
        f"--output {output}: {output.suffix} names {kind}, which this command does not write (it writes "
        f"{', '.join(formats)}: {suffixes}); name another file or pass --format"
    )
