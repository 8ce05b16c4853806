"""Figure files: which formats a figure is written in, and writing one (or its PNG bytes, for a page)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from prunebench.errors import ResultsError
from prunebench.results import describe_os_error

if TYPE_CHECKING:  # matplotlib takes a while to import: `check_figure_path` does without it
    from matplotlib.figure import Figure

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_path(path: Path) -> None:
    """A figure file must be .png, .pdf or .svg; checked before anything is computed or written."""
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ResultsError(
            f"{path}: a figure is written as {', '.join(FIGURE_SUFFIXES)} (got {path.suffix or 'no suffix'})"
        )


def save_figure(fig: Figure, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight", dpi=150)
    except OSError as exc:
        raise ResultsError(f"cannot write {path} ({describe_os_error(exc)})") from None


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG, in memory (to embed in a page)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=dpi)
    return buffer.getvalue()
