"""`prunebench lint-method`: the static check of a method's code (prunebench.methods.lint)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prunebench.cli.app import app, out, say
from prunebench.errors import PrunebenchError


@app.command("lint-method")
def lint_method(
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="Method files or directories, path/file.py:Class, registered names, or package.module."),
    ] = None,
    protocol: Annotated[
        Path | None, typer.Option(help="Also every method this protocol runs (its files, modules and plugins).")
    ] = None,
) -> None:
    """Flag what the runtime checks cannot see: private attributes of prunebench objects (ctx._engine), imports
    of prunebench beyond the public method API, monkeypatching, frames and the garbage collector, dynamic code.

    Exit 0: no finding; 1: findings (one line each: file:line:column: rule: message)."""
    from prunebench.methods.lint import lint_targets, protocol_targets

    wanted = list(targets or [])
    if protocol is not None:
        from prunebench.protocol import load_protocol

        wanted += protocol_targets(load_protocol(protocol))
    if not wanted:
        raise PrunebenchError("lint-method: name the method files, modules or registered names, or --protocol")
    findings, files = lint_targets(wanted)
    for finding in findings:
        out.print(str(finding), markup=False, highlight=False, soft_wrap=True)
    if findings:
        say(f"{len(findings)} finding(s) in {files} file(s)")
        raise typer.Exit(1)
    say(f"no findings in {files} file(s)")
