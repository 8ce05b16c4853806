"""`prunebench ls`: the runs under results folders, one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from prunebench.cli.app import app, wide


@app.command("ls")
def list_runs(
    results: Annotated[
        list[Path] | None, typer.Argument(help="Folders holding run directories (default: runs/ and results/).")
    ] = None,
) -> None:
    """The run directories under RESULTS: protocol, hash, jobs done (ok, shown apart, failed) against planned,
    and when their results were written."""
    from prunebench.errors import ResultsError
    from prunebench.report.listing import list_runs as listing

    folders = results or [p for p in (Path("runs"), Path("results")) if p.is_dir()]
    missing = [str(p) for p in folders if not p.exists()]
    if missing:
        raise ResultsError(f"{missing[0]}: no such folder")
    runs = listing(folders)
    if not runs:
        raise ResultsError(f"no run directory (a folder with protocol.json) under {', '.join(map(str, folders))}")
    table = Table(title=f"{len(runs)} run(s)")
    counts = ("done", "ok", "apart", "failed", "pending")
    for col in ("run", "protocol", "hash", *counts, "first", "last"):
        table.add_column(col, overflow="fold", justify="right" if col in counts else "left")
    for r in runs:
        smoke = f" ({r.smoke} smoke)" if r.smoke else ""
        table.add_row(
            str(r.path),
            r.protocol,
            r.hash[:10],
            f"{r.written}/{r.expected if r.expected is not None else '?'}{smoke}",
            str(r.status["ok"]),
            str(r.status["violation"]),
            str(r.status["failed"]),
            "?" if r.pending is None else str(r.pending),
            (r.first or "-")[:19].replace("T", " "),
            (r.last or "-")[:19].replace("T", " "),
        )
    wide().print(table)
