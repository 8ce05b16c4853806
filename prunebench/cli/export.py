"""`prunebench export`: a job's pruned model as a torch.export program or ONNX file, checked by running it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prunebench.cli.app import app, say
from prunebench.errors import PrunebenchError


@app.command()
def export(
    result: Annotated[Path, typer.Argument(help="A result record (its run saved the weights: run --save-models).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.", metavar="FILE")],
    format: Annotated[
        str,
        typer.Option("--format", help="pt: a torch.export program (torch.export.load); onnx: ONNX (needs [onnx])."),
    ] = "pt",
) -> None:
    """Write the pruned model a record was measured on: compacted when its method prunes whole filters, else
    masked. The file is loaded back (ONNX through onnxruntime) and must predict the record's model's classes on
    the first test batches."""
    from prunebench.run.measurement.export import FORMATS
    from prunebench.run.measurement.export import export as write_export

    if format not in FORMATS:
        raise PrunebenchError(f"--format must be one of {', '.join(FORMATS)} (got {format!r})")
    done = write_export(result, format, output)  # type: ignore[arg-type]
    say(
        f"wrote {done.path} ({done.kind} model, {done.params:,} parameters); loaded back, it predicts the record's "
        f"model's classes on {done.checked} test examples (logits within {done.max_abs_diff:.2g})"
    )
