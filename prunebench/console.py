"""The console every terminal output of prunebench goes through: rich's, with the strings it renders made
printable (prunebench.errors.printable), so that a record's method name, reason or note, a protocol's name or a
file name never sends an escape sequence or a bell to the reader's terminal. A module of the bottom layer: the
command line imports it at start-up, before anything heavy."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.text import Text

from prunebench.errors import printable


class SafeConsole(Console):
    """A rich Console whose strings are made printable before they are rendered: what `print` is given, table
    cells, titles and captions (rich turns each str into Text here); rich's own styles are emitted after, so the
    colours of a terminal stay."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(printable(text), **kwargs)


def text_console(width: int) -> SafeConsole:
    """A console that renders into a string (read it with `console.file.getvalue()`): no colour, `width` columns."""
    return SafeConsole(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
