"""`prunebench plot ...`: figures from result records (.png, .pdf or .svg)."""

from __future__ import annotations

from typing import Annotated

import typer

from prunebench.cli.app import app, say
from prunebench.cli.compare import comparison_of, own_recipe
from prunebench.cli.options import (
    FigureFile,
    MethodsFilter,
    MixProtocols,
    ProtocolFilter,
    ResultPaths,
    ShowEvaluations,
    SparsitiesFilter,
    VariantsFilter,
    split,
)
from prunebench.errors import ResultsError

plot_app = typer.Typer(no_args_is_help=True, help="Figures from result records (.png, .pdf or .svg).")
app.add_typer(plot_app, name="plot")


@plot_app.command("accuracy")
def plot_accuracy(
    results: ResultPaths,
    output: FigureFile,
    mix_protocols: MixProtocols = False,
    protocol: ProtocolFilter = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
) -> None:
    """Test top-1 (a causal LM's perplexity) against weights remaining (log axis) per method; `compare --plot`.

    Error bars are ± one standard deviation over seeds; the dense model is a line with its band.
    """
    from prunebench.report import plots

    plots.plot_accuracy(own_recipe(comparison_of(results, protocol, methods, sparsities, mix_protocols)), output)
    say(f"wrote {output}")


@plot_app.command("curves")
def plot_curves(
    results: ResultPaths,
    output: FigureFile,
    metrics: Annotated[
        str,
        typer.Option(help="Comma-separated: val_top1, train_loss, train_top1, val_loss, test_top1, lr, sparsity."),
    ] = "val_top1,train_loss,lr",
    stages: Annotated[str, typer.Option(help="Stages to draw, in order (comma-separated).")] = "pruning,retrain",
    variant: Annotated[
        str, typer.Option(help="The retraining variant whose curves to draw (`protocol`: the protocol's recipe).")
    ] = "protocol",
    protocol: ProtocolFilter = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
) -> None:
    """Per-epoch curves of the result records: a panel per metric, a line per method and sparsity.

    Lines are means over seeds, bands run from the minimum to the maximum.
    """
    from prunebench.report import plots
    from prunebench.results import load_or_fail

    # One retraining recipe per figure: a variant's curves are never averaged with the protocol's own.
    loaded = [
        x
        for x in load_or_fail(results, curves=True)
        if (x.record.variant.name if x.record.variant else "protocol") == variant
    ]
    if not loaded:
        raise ResultsError(f"no result records of retraining variant {variant!r}")
    plots.plot_curves(
        loaded,
        output,
        metrics=split(metrics) or [],
        stages=split(stages) or [],
        protocols=split(protocol),
        methods=split(methods),
        sparsities=split(sparsities, float),
    )
    say(f"wrote {output}")


@plot_app.command("shedding")
def plot_shedding(
    results: ResultPaths,
    output: FigureFile,
    metrics: Annotated[
        str, typer.Option(help="Comma-separated: shed_fraction, effective_sparsity.")
    ] = "shed_fraction,effective_sparsity",
    variants: VariantsFilter = None,
    protocol: ProtocolFilter = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
) -> None:
    """Cascade weight shedding per retraining epoch (needs `analyses: shedding`).

    A panel per metric and target sparsity, a line per method and retraining variant (mean over seeds,
    band: min to max); epoch 0 is the pruned model before retraining.
    """
    from prunebench.report import science_plots
    from prunebench.results import load_or_fail

    science_plots.plot_shedding(
        load_or_fail(results, curves=True),
        output,
        metrics=split(metrics) or [],
        protocols=split(protocol),
        methods=split(methods),
        sparsities=split(sparsities, float),
        variants=split(variants),
    )
    say(f"wrote {output}")


@plot_app.command("correlation")
def plot_correlation(
    results: ResultPaths,
    output: FigureFile,
    variants: VariantsFilter = None,
    protocol: ProtocolFilter = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
) -> None:
    """Bars of the weight correlation R_p of the final weights per p, against init, rewind and base.

    Needs `analyses: correlation`. A bar per method (per protocol and method when several protocols are
    given), mean ± std over seeds; the chance level R_p = p is dashed.
    """
    from prunebench.report import science_plots
    from prunebench.results import load_or_fail

    science_plots.plot_correlation(
        load_or_fail(results, curves=True),
        output,
        protocols=split(protocol),
        methods=split(methods),
        sparsities=split(sparsities, float),
        variants=split(variants),
    )
    say(f"wrote {output}")


@plot_app.command("lr-sweep")
def plot_lr_sweep(
    results: ResultPaths,
    output: FigureFile,
    metric: Annotated[
        str | None,
        typer.Option(
            help="test_top1, val_top1, trainability, test_perplexity or val_perplexity (default: the metric that "
            "ranks the results: test_top1; test_perplexity for a causal LM)."
        ),
    ] = None,
    protocol: ProtocolFilter = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
) -> None:
    """Final accuracy (or perplexity) against the peak retraining LR (log axis), a panel per target sparsity.

    A line per method, and one per retraining-epoch extension (dashed) and named schedule of the
    protocol's `variants:`; mean ± std over seeds. Swap variants are left out.
    """
    from prunebench.report import science_plots
    from prunebench.results import load_or_fail

    science_plots.plot_lr_sweep(
        load_or_fail(results),
        output,
        metric=metric,
        protocols=split(protocol),
        methods=split(methods),
        sparsities=split(sparsities, float),
    )
    say(f"wrote {output}")


@plot_app.command("efficiency")
def plot_efficiency(
    results: ResultPaths,
    output: FigureFile,
    batch_size: Annotated[
        int | None, typer.Option(help="The batch size whose timings to draw (default: the largest timed).", min=1)
    ] = None,
    mix_protocols: MixProtocols = False,
    protocol: ProtocolFilter = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
) -> None:
    """Accuracy against measured latency with each method's Pareto front, and the FLOPs reduction counted
    against the speedup measured (needs a protocol `efficiency:` section; docs/efficiency.md)."""
    from prunebench.report import efficiency_plots

    efficiency_plots.plot_efficiency(
        own_recipe(comparison_of(results, protocol, methods, sparsities, mix_protocols)), output, batch_size
    )
    say(f"wrote {output}")


@plot_app.command("evaluations")
def plot_evaluations(
    results: ResultPaths,
    output: FigureFile,
    show: ShowEvaluations = "robustness,calibration,forgetting",
    mix_protocols: MixProtocols = False,
    protocol: ProtocolFilter = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
) -> None:
    """What pruning takes away against the weights remaining: mean corruption accuracy, expected calibration error
    (the dense models' dotted) and the share of pruning-identified exemplars, a panel each, a line per method.

    Needs the protocol's evaluation.robustness, calibration or forgetting (docs/analyses.md).
    """
    from prunebench.report import evaluation_plots

    comparison = comparison_of(results, protocol, methods, sparsities, mix_protocols, show=show)
    evaluation_plots.plot_evaluations(own_recipe(comparison), output)
    say(f"wrote {output}")
