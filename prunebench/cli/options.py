"""Option types shared by several commands, declared once, and the parsing of their values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from prunebench.errors import PrunebenchError

ResultPaths = Annotated[list[Path], typer.Argument(help="Result files or directories (searched recursively).")]
ProtocolFilter = Annotated[str | None, typer.Option("--protocol", help="Only these protocols (comma-separated names).")]
MethodsFilter = Annotated[str | None, typer.Option("--methods", help="Only these methods (comma-separated labels).")]
SparsitiesFilter = Annotated[
    str | None,
    typer.Option(
        "--sparsities",
        "--targets",
        help="Only these targets (comma-separated): sparsities, or a cost protocol's reductions (2,3).",
    ),
]
VariantsFilter = Annotated[
    str | None,
    typer.Option(
        "--variants", help="Only these retraining variants (comma-separated; `protocol`: the protocol's recipe)."
    ),
]
MixProtocols = Annotated[
    bool,
    typer.Option("--mix-protocols", help="Rank results of one protocol name but different setups together (marked)."),
]


def _figure(path: Path) -> Path:
    from prunebench.report.render import check_figure_path  # before anything is read: a .jpg fails at once

    check_figure_path(path)
    return path


FigureFile = Annotated[
    Path, typer.Option("--output", "-o", help="Figure file: .png, .pdf or .svg.", callback=_figure, metavar="FILE")
]
Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[FIELD=VALUE]...",
        help="Override protocol fields, Hydra's dotted grammar: retrain.epochs=5 'pruning.sparsities=[0.5,0.9]' "
        "methods.0.config.power=2. Part of the protocol and its hash.",
        show_default=False,
    ),
]
ShowEvaluations = Annotated[
    str | None,
    typer.Option(
        "--show",
        metavar="EVALUATIONS",
        help="Also show what pruning takes away, where the records have it (comma-separated): robustness, "
        "calibration, forgetting (the protocol's evaluation.robustness, calibration, forgetting; docs/analyses.md).",
    ),
]
OutputFile = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Describe every entry in full.")]


def split(values: str | None, cast: type = str) -> list[Any] | None:
    """A comma-separated option's values, cast; None when the option was not given."""
    if values is None:
        return None
    try:
        return [cast(v.strip()) for v in values.split(",") if v.strip()]
    except ValueError:
        raise PrunebenchError(f"cannot read {values!r} as a comma-separated list of {cast.__name__}") from None


def shard(value: str | None) -> tuple[int, int] | None:
    """`--shard i/n`: every n-th job, starting at the i-th."""
    if value is None:
        return None
    try:
        index, count = (int(x) for x in value.split("/"))
    except ValueError:
        raise PrunebenchError(f"--shard must look like 0/4 (got {value!r})") from None
    if not 0 <= index < count:
        raise PrunebenchError(f"--shard {value}: the index must be in 0..{count - 1}")
    return index, count


def write_text(path: Path, text: str) -> None:
    """Write an output file the user named; a failure is one clear error (a full device, a folder in the way)."""
    from prunebench.results import describe_os_error

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PrunebenchError(f"cannot write {path} ({describe_os_error(exc)})") from None
