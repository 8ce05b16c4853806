"""The typer app, its consoles, and the entry point that turns a user's error into one line and exit 2."""

from __future__ import annotations

import sys
import warnings
from typing import Annotated, Any

import typer
from rich.console import Console

from prunebench.console import SafeConsole
from prunebench.errors import PrunebenchError, one_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fair, reproducible benchmarks of neural-network pruning methods.",
    pretty_exceptions_enable=False,
    # click's plain help: flags shown as flags (rich's shows `--force <bool>`), every line wrapped, none cut.
    rich_markup_mode=None,
)
# Piped output (CI logs, files) gets a wide console rather than rich's 80-column default.
# SafeConsole: what the files say (method names, reasons, notes, file names) never reaches the terminal raw.
out = SafeConsole(width=None if sys.stdout.isatty() else 160)
err = SafeConsole(stderr=True)


def wide() -> Console:
    """The console for wide tables: the terminal's, or one of 200 columns for a log that has no width."""
    return out if out.is_terminal else SafeConsole(width=max(out.width, 200))


def _version(value: bool) -> None:
    if value:
        import prunebench

        out.print(f"prunebench {prunebench.__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print prunebench's version and exit."),
    ] = False,
) -> None:
    """Fair, reproducible benchmarks of neural-network pruning methods."""


def say(text: str) -> None:
    """One line on stderr, printed as it is (no markup)."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)


def _show_warning(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None, line: Any = None) -> None:
    err.print(f"warning: {message}", markup=False, highlight=False, style="yellow", soft_wrap=True)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    import prunebench.cli  # noqa: F401  (registers every command on `app`)

    warnings.showwarning = _show_warning
    try:
        code = app(standalone_mode=False)
    except PrunebenchError as exc:
        err.print(f"error: {one_line(str(exc))}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # Typer vendors its own copy of click's exception classes in recent releases, so usage
        # errors (a missing argument, an unknown option) and Ctrl-C are recognised by shape.
        if type(exc).__name__ == "Abort":
            err.print("aborted")
            sys.exit(130)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)
