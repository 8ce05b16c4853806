"""One row of a leaderboard: every column a board shows or exports (JSON, CSV, pandas), in their order.

The `top1_*` columns hold the board's ranked metric (prunebench.report.metric): test top-1 for classification,
test perplexity for a causal LM; exports name them after it (`perplexity_mean`, ...: `columns_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from prunebench.report.metric import DEFAULT_TASK, ranking_metric, shows_top5, stem


@dataclass
class Row:
    """One row of a leaderboard: every column, for JSON, CSV and pandas."""

    protocol: str
    setup_hash: str
    protocol_hashes: list[str]
    mixed_protocols: bool
    kind: Literal["dense", "method"]
    method: str
    method_name: str | None = None
    method_version: str | None = None
    sparsity_target: float | None = None
    rank: int | None = None
    rank_shared: bool = False  # in the leader's group with another method
    unranked_why: str | None = None
    vs_leader_method: str | None = None
    vs_leader_verdict: Literal["leader", "tied", "lower", "n/a"] | None = None
    vs_leader_delta: float | None = None
    vs_leader_ci_low: float | None = None
    vs_leader_ci_high: float | None = None
    vs_leader_p: float | None = None
    vs_leader_p_holm: float | None = None
    vs_leader_n: int | None = None
    n_seeds: int = 0
    seeds: list[int] = field(default_factory=list)
    expected_seeds: list[int] = field(default_factory=list)
    missing_seeds: list[int] = field(default_factory=list)
    top1_mean: float | None = None
    top1_std: float | None = None
    top1_ci_low: float | None = None
    top1_ci_high: float | None = None
    top1_ci_clipped: bool = False  # the t-interval left [0, 100] % and was cut there
    top1_by_seed: dict[int, float] = field(default_factory=dict)  # the fair results' test top-1, by seed
    top5_mean: float | None = None
    dense_top1_mean: float | None = None
    delta_dense_mean: float | None = None
    delta_dense_std: float | None = None
    delta_dense_ci_low: float | None = None
    delta_dense_ci_high: float | None = None
    delta_dense_p: float | None = None
    achieved_sparsity_mean: float | None = None
    achieved_sparsity_min: float | None = None
    achieved_sparsity_max: float | None = None
    # Vysogorets & Kempe 2023: zeros plus kept weights on no input-output path (docs/analyses.md); None where a
    # result has none (not computed, or written before it was measured)
    effective_sparsity_mean: float | None = None
    degenerate_seeds: int = 0  # fair results whose test top-1 is within the protocol's margin of chance
    sparsity_tolerance: float | None = None
    params_dense: float | None = None
    params_effective: float | None = None
    params_reduction: float | None = None
    compression: float | None = None
    flops_dense: float | None = None
    flops_effective: float | None = None
    flops_reduction: float | None = None
    flops_speedup: float | None = None
    # Measured (prunebench.report.efficiency): per batch size, the speedup over the dense model and its spread.
    speedup_batch_sizes: list[int] = field(default_factory=list)
    speedup_median: list[float] = field(default_factory=list)
    speedup_low: list[float] = field(default_factory=list)
    speedup_high: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)  # the pruned model's seconds per batch
    dense_latency_s: list[float] = field(default_factory=list)  # its dense base model's, timed beside it
    speedup_kernel: str | None = None
    speedup_devices: list[str] = field(default_factory=list)
    efficiency_not_measured: str | None = None
    # Between retraining variants (prunebench.report.between): this row minus the same method and sparsity on
    # another board of the protocol (its own recipe's, or `compare --against`'s), paired by seed.
    vs_recipe: str | None = None  # the board compared against: "protocol" or a variant's name
    vs_recipe_delta: float | None = None
    vs_recipe_ci_low: float | None = None
    vs_recipe_ci_high: float | None = None
    vs_recipe_p: float | None = None
    vs_recipe_n: int | None = None
    # A sanity ablation's row (prunebench.report.sanity): its p Holm-corrected across the methods of its board at
    # its target, and the verdict: tied (not distinguishable from the method), below or above it, untested.
    vs_recipe_p_holm: float | None = None
    sanity_verdict: Literal["tied", "below", "above", "untested"] | None = None
    pruning_epochs: float | None = None
    pruning_epochs_limit: float | None = None
    retrain_epochs: float | None = None
    retrain_epochs_limit: float | None = None
    total_epochs: float | None = None
    total_epochs_limit: float | None = None
    train_flops: float | None = None
    train_flops_limit: float | None = None
    budget_used: float | None = None
    all_stages: bool = False  # the totals count every stage, base training included (SX-A / SX-B)
    budget_stated_by: str | None = None
    retraining_regime: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    comparison: str | None = None
    status: str = "ok"
    n_issues: int = 0
    issues: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # Retraining variants (docs/analyses.md): the board's variant, `selected` on a validation-selected board.
    retrain_variant: str | None = None
    selected_variant: str | None = None  # the candidate chosen for this row, on validation top-1 only
    selection: list[str] = field(default_factory=list)  # each candidate's mean validation top-1 %, as chosen on
    task: str = DEFAULT_TASK  # exported only for another task than classification (as records write it)


COLUMNS = [f.name for f in fields(Row) if f.name != "task"]  # a classification board's exported columns


def exported_name(name: str, task: str) -> str:
    """A column's exported name on a board of `task`: the ranked metric's columns named after it."""
    if task == DEFAULT_TASK:
        return name
    return name.replace("top1", stem(ranking_metric(task)), 1) if "top1" in name else name


def columns_for(task: str) -> list[str]:
    """The exported columns of a board of `task`: COLUMNS for classification; another task's ranked metric's
    columns named after it, without top-5 where it means nothing, and the task."""
    if task == DEFAULT_TASK:
        return COLUMNS
    kept = [c for c in COLUMNS if c != "top5_mean" or shows_top5(task)]
    return [exported_name(c, task) for c in kept] + ["task"]
