"""The figures of the seed papers' analyses: cascade weight shedding curves (Azarian & Porikli 2021), weight
correlation bars (Liu et al. 2021) and retraining-LR sweeps (Wang et al. 2023); docs/analyses.md."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from prunebench.errors import ResultsError
from prunebench.report.audit import target_of
from prunebench.report.figures import check_figure_path, save_figure
from prunebench.report.filters import passes_filters
from prunebench.report.metric import DEFAULT_TASK, ranking_metric
from prunebench.results import EpochRecord, Loaded, ResultRecord, ResultSummary

# ---- the science figures: shedding curves, weight-correlation bars, retraining-LR sweeps ----------
SHEDDING_METRICS = ("shed_fraction", "effective_sparsity")
SHEDDING_LABELS = {
    "shed_fraction": "shed fraction % (kept weights below τ)",
    "effective_sparsity": "effective sparsity % ((pruned + shed) / N)",
}
SWEEP_METRICS = ("test_top1", "val_top1", "trainability", "test_perplexity", "val_perplexity")
SWEEP_LABELS = {
    "test_top1": "final test top-1 %",
    "val_top1": "final validation top-1 %",
    "trainability": "trainability accuracy % (val, first LR stage)",
    "test_perplexity": "final test perplexity",
    "val_perplexity": "final validation perplexity",
}
SWEEP_AS_IS = {"test_perplexity", "val_perplexity"}  # shown as they are; the others are percentages


def _selected(
    loaded: Sequence[Loaded],
    protocols: Sequence[str] | None,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
    variants: Sequence[str] | None,
) -> list[ResultSummary]:
    """The ok records among the selection (None: no filter on that field)."""
    out = []
    for item in loaded:
        r = item.record
        if not isinstance(r, ResultSummary) or r.status == "failed" or r.metrics is None:
            continue
        if passes_filters(r, protocols=protocols, methods=methods, sparsities=sparsities, variants=variants):
            out.append(r)
    return out


def _curves(r: ResultSummary) -> list[EpochRecord]:
    """The per-epoch curves (a summary loaded without them has none)."""
    return r.curves if isinstance(r, ResultRecord) else []


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = _mean(values)
    return (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def shedding_series(records: Sequence[ResultSummary], metric: str) -> dict[float, dict[str, dict[int, list[float]]]]:
    """{target: {'method [variant]': {retraining epoch: [value per seed]}}}, epoch 0 being the pruned
    weights retraining starts from (`analyses.retrain_start`); values in percent."""
    out: dict[float, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        target = target_of(r)
        if target is None:
            continue
        key = r.method.label + ("" if r.variant is None else f" [{r.variant.name}]")
        points: dict[int, float] = {}
        start = _number(((r.analyses.get("retrain_start") or {}).get("shedding") or {}).get(metric))
        if start is not None:
            points[0] = start
        for c in sorted((c for c in _curves(r) if c.stage == "retrain"), key=lambda c: c.epoch):
            value = _number((c.analyses.get("shedding") or {}).get(metric))
            if value is not None:
                points[c.epoch] = value
        for x, v in points.items():
            out[target][key][x].append(100 * v)
    return out


def plot_shedding(
    loaded: Sequence[Loaded],
    path: Path,
    *,
    metrics: Sequence[str] = SHEDDING_METRICS,
    protocols: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    variants: Sequence[str] | None = None,
) -> Path:
    """Cascade weight shedding over retraining (Azarian & Porikli 2021): a panel per metric (row) and
    target sparsity (column), a line per method and retraining variant (mean over seeds, band = min..max).
    Epoch 0 is the pruned model before retraining; the target sparsity is a dotted line."""
    check_figure_path(path)
    unknown = [m for m in metrics if m not in SHEDDING_METRICS]
    if unknown or not metrics:
        raise ResultsError(f"unknown shedding metric {(unknown or [''])[0]!r} (known: {', '.join(SHEDDING_METRICS)})")
    records = _selected(loaded, protocols, methods, sparsities, variants)
    series = {m: shedding_series(records, m) for m in metrics}
    targets = sorted({t for m in metrics for t in series[m]})
    if not targets:
        raise ResultsError("no shedding curves in the selected results (the protocol needs `analyses: shedding`)")
    fig = Figure(figsize=(5.0 * len(targets), 3.8 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), len(targets), squeeze=False)
    for i, m in enumerate(metrics):
        for j, target in enumerate(targets):
            ax = axes[i][j]
            for key, points in sorted(series[m].get(target, {}).items()):
                xs = sorted(points)
                line = ax.plot(xs, [_mean(points[x]) for x in xs], marker=".", linewidth=1.2, label=key)[0]
                if any(len(points[x]) > 1 for x in xs):
                    ax.fill_between(
                        xs,
                        [min(points[x]) for x in xs],
                        [max(points[x]) for x in xs],
                        color=line.get_color(),
                        alpha=0.15,
                    )
            if m == "effective_sparsity":
                ax.axhline(100 * target, color="gray", linestyle=":", linewidth=1, label=f"target {100 * target:g}%")
            ax.set_title(f"sparsity {100 * target:g}%", fontsize=10)
            ax.set_xlabel("retraining epoch (0: pruned, before retraining)")
            ax.set_ylabel(SHEDDING_LABELS[m])
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    names = sorted({r.protocol.name for r in records})
    fig.suptitle(f"{', '.join(names)}: cascade weight shedding, mean over seeds (band: min to max)", fontsize=10)
    save_figure(fig, path)
    return path


def correlation_table(
    records: Sequence[ResultSummary],
) -> dict[float, dict[str, dict[str, dict[str, list[float]]]]]:
    """{target: {reference: {'protocol: method [variant]': {p: [R_p of the final weights per seed]}}}}.
    The final weights are those of the last epoch with a correlation (retraining's last epoch)."""
    out: dict[float, dict[str, dict[str, dict[str, list[float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    )
    protocols = {r.protocol.name for r in records}
    for r in records:
        target = target_of(r)
        last = next((c.analyses["correlation"] for c in reversed(_curves(r)) if "correlation" in c.analyses), None)
        if target is None or not isinstance(last, dict) or "error" in last:
            continue
        key = (f"{r.protocol.name}: " if len(protocols) > 1 else "") + r.method.label
        key += "" if r.variant is None else f" [{r.variant.name}]"
        for reference, by_p in last.items():
            if reference == "layers" or not isinstance(by_p, dict):
                continue
            for p, value in by_p.items():
                v = _number(value)
                if v is not None:
                    out[target][reference][key][p].append(v)
    return out


def plot_correlation(
    loaded: Sequence[Loaded],
    path: Path,
    *,
    protocols: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    variants: Sequence[str] | None = None,
) -> Path:
    """Weight correlation R_p of the final weights (Liu et al. 2021): a panel per target sparsity (row)
    and reference state (column: init, rewind, base), bars per p and method (protocol: method when
    several protocols are drawn), height = mean over seeds, error bar = ± one std. The chance level
    R_p = p (independent weights) is marked on each group."""
    check_figure_path(path)
    table = correlation_table(_selected(loaded, protocols, methods, sparsities, variants))
    if not table:
        raise ResultsError(
            "no weight correlations in the selected results (the protocol needs `analyses: correlation`)"
        )
    targets = sorted(table)
    order = ("init", "rewind", "base")
    references = sorted(
        {ref for t in targets for ref in table[t]}, key=lambda x: (order.index(x) if x in order else 9, x)
    )
    fig = Figure(figsize=(5.2 * len(references), 3.8 * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), len(references), squeeze=False)
    for i, target in enumerate(targets):
        for j, reference in enumerate(references):
            ax = axes[i][j]
            by_key = table[target].get(reference, {})
            keys = sorted(by_key)
            ps = sorted({p for k in keys for p in by_key[k]}, key=float)
            width = 0.8 / max(len(keys), 1)
            for n, key in enumerate(keys):
                xs = [x + (n - (len(keys) - 1) / 2) * width for x in range(len(ps)) if ps[x] in by_key[key]]
                vals = [by_key[key][p] for p in ps if p in by_key[key]]
                ax.bar(
                    xs,
                    [_mean(v) for v in vals],
                    width=width,
                    yerr=[_std(v) for v in vals],
                    capsize=2,
                    label=key,
                )
            for x, p in enumerate(ps):
                ax.hlines(float(p), x - 0.45, x + 0.45, color="black", linestyle="--", linewidth=1)
            ax.set_xticks(range(len(ps)))
            ax.set_xticklabels([f"p={p}" for p in ps])
            ax.set_ylim(0, 1.05)
            ax.set_ylabel(f"R_p(final, {reference})")
            ax.set_title(f"sparsity {100 * target:g}%, against {reference} (dashed: chance = p)", fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("weight correlation R_p of the final weights: mean ± std over seeds", fontsize=10)
    save_figure(fig, path)
    return path


def _retraining_lr(r: ResultSummary) -> float | None:
    """The peak LR of the recipe the job was run under: the variant's, else what retraining ran."""
    if r.variant is not None and r.variant.lr is not None:
        return r.variant.lr
    if r.variant is not None:
        lr = _number((r.variant.recipe.get("optimizer") or {}).get("lr"))
        if lr is not None:
            return lr
    return _number(r.retraining.optimizer.get("lr"))


def lr_sweep_table(records: Sequence[ResultSummary], metric: str) -> dict[float, dict[str, dict[float, list[float]]]]:
    """{target: {'method [+e epochs][, schedule]': {retraining LR: [metric per seed, % or perplexity]}}}. The
    protocol's own records and the sweep and extension variants; swap variants are left out."""
    if metric not in SWEEP_METRICS:
        raise ResultsError(f"unknown metric {metric!r} (known: {', '.join(SWEEP_METRICS)})")
    out: dict[float, dict[str, dict[float, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        target, lr = target_of(r), _retraining_lr(r)
        if target is None or lr is None or (r.variant is not None and r.variant.kind == "swap"):
            continue
        if metric == "trainability":
            value = _number((r.analyses.get("trainability") or {}).get("accuracy"))
        else:
            value = _number(getattr(r.metrics, metric, None))
        if value is None:
            continue
        key = r.method.label
        if r.variant is not None and r.variant.extra_epochs:
            key += f" +{r.variant.extra_epochs} epochs"
        if r.variant is not None and r.variant.schedule:
            key += f", {r.variant.schedule}"
        out[target][key][lr].append(value if metric in SWEEP_AS_IS else 100 * value)
    return out


def plot_lr_sweep(
    loaded: Sequence[Loaded],
    path: Path,
    *,
    metric: str | None = None,
    protocols: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
) -> Path:
    """Final accuracy (`metric`; default: the records' ranked metric, test top-1 or a causal LM's test perplexity)
    against the peak retraining LR (log axis), a panel per target sparsity, a line per method, and a line of its
    own for each retraining-epoch extension (dashed) and named schedule; points are means over seeds with ± one
    std (Wang et al. 2023's LR "boost" and whether longer retraining closes the gap)."""
    check_figure_path(path)
    records = _selected(loaded, protocols, methods, sparsities, None)
    if metric is None:
        metric = ranking_metric(records[0] if records else DEFAULT_TASK).name
    table = lr_sweep_table(records, metric)
    if not table:
        raise ResultsError("no results to draw against the retraining LR")
    targets = sorted(table)
    fig = Figure(figsize=(5.0 * len(targets), 4.0), layout="constrained")
    axes = fig.subplots(1, len(targets), squeeze=False)[0]
    for ax, target in zip(axes, targets, strict=True):
        for key, points in sorted(table[target].items()):
            lrs = sorted(points)
            ax.errorbar(
                lrs,
                [_mean(points[lr]) for lr in lrs],
                yerr=[_std(points[lr]) for lr in lrs],
                marker="o",
                markersize=4,
                capsize=3,
                linestyle="--" if " epochs" in key else "-",
                label=key,
            )
        ax.set_xscale("log")
        ax.set_xlabel("peak retraining LR (log scale)")
        ax.set_ylabel(SWEEP_LABELS[metric] + " (mean ± std)")
        ax.set_title(f"sparsity {100 * target:g}%", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    names = ", ".join(sorted({r.protocol.name for r in records}))
    fig.suptitle(f"{names}: {SWEEP_LABELS[metric]} against the retraining LR (dashed: extended)", fontsize=10)
    save_figure(fig, path)
    return path
