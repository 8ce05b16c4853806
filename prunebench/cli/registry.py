"""`prunebench methods`, `prunebench models`, `prunebench datasets`: what the registries hold."""

from __future__ import annotations

import inspect

from rich.table import Table

from prunebench.cli.app import app, out, wide
from prunebench.cli.options import Verbose


@app.command("methods")
def list_methods(verbose: Verbose = False) -> None:
    """The registered methods with their taxonomy, hyperparameters and citations (-v: each one described)."""
    from prunebench.methods import config_table, registered_methods

    methods = sorted(registered_methods().items())
    if verbose:  # one block per method, wrapped to the terminal (a table of descriptions would cut them)
        for name, loaded in methods:
            cls, t = loaded.cls, loaded.cls.taxonomy
            out.print(f"[bold]{name}[/bold] {cls.version}: {cls.citation}", highlight=False)
            out.print(
                f"  {t.when}, {t.granularity}, {t.scope}, {t.schedule}, retraining: {t.retraining}", highlight=False
            )
            out.print(f"  {loaded.source}", markup=False, highlight=False)
            for n, default, desc in config_table(cls):
                out.print(
                    f"    {n} = {default}: {desc}" if desc else f"    {n} = {default}", markup=False, highlight=False
                )
            out.print()
        return
    table = Table(title="Registered methods")
    for col in ("name", "when", "granularity", "scope", "schedule", "retraining", "hyperparameters", "citation"):
        table.add_column(col, overflow="fold")
    for name, loaded in methods:
        cls = loaded.cls
        t = cls.taxonomy
        hyper = "\n".join(f"{n}={d}" for n, d, _ in config_table(cls)) or "-"
        table.add_row(name, t.when, t.granularity, t.scope, t.schedule, t.retraining, hyper, cls.citation)
    wide().print(table)


@app.command("models")
def list_models(verbose: Verbose = False) -> None:
    """The registered architectures (model.name) and their arguments (model.args); -v lists torchvision's too.

    Every torchvision classification model is available by its torchvision name, always trained from scratch.
    """
    from prunebench.models import MODELS
    from prunebench.models.registry import torchvision_names

    table = Table(title="Registered models", show_lines=verbose)
    for col in ("name", "description", "args"):
        table.add_column(col, overflow="fold")
    for name, info in MODELS.items():
        params = list(inspect.signature(info.builder).parameters.values())[2:]
        args = ", ".join(f"{p.name}={p.default!r}" if p.default is not p.empty else p.name for p in params) or "-"
        table.add_row(name, info.description, args)
    console = wide()
    console.print(table)
    names = [n for n in torchvision_names() if n not in MODELS]
    if verbose:
        console.print(f"torchvision classification models ({len(names)}): {', '.join(names)}", soft_wrap=True)
    else:
        console.print(
            f"and {len(names)} torchvision classification models by name, e.g. resnet50 (-v lists them); "
            "always trained from scratch",
            soft_wrap=True,
        )


@app.command("datasets")
def list_datasets(verbose: Verbose = False) -> None:
    """The data sets (data.name): classes, input shape, augmentations; -v also the files expected at data.root."""
    from prunebench.data import DATASETS

    table = Table(title="Data sets", show_lines=verbose)
    columns = ["name", "description", "classes", "input", "augmentations"] + (
        ["layout at data.root"] if verbose else []
    )
    for col in columns:
        table.add_column(col, overflow="fold")
    for name, info in DATASETS.items():
        row = [
            name,
            info.description,
            str(info.num_classes or ("the tokenizer's vocabulary" if info.text else "from the class folders")),
            "data.text.seqlen tokens" if info.text else "x".join(map(str, info.input_shape)),
            ", ".join(info.augmentations),
        ]
        if verbose:
            default = f" (default root: {info.default_root})" if info.default_root else ""
            row.append(info.layout + default)
        table.add_row(*row)
    wide().print(table)
