"""Leaderboards: the rows of one protocol setup's results, their statistics and ranks.

Results are grouped by protocol; only results that share a protocol's setup are ranked together. Every
result with a fairness problem is shown apart in the audit (prunebench.report.audit) with its reason, and
every missing seed is named.

Statistics of the board's ranked metric (prunebench.report.metric: test top-1, or a causal LM's perplexity), all
over seeds (accuracies are fractions in the data, percentages in the tables):
- mean, sample standard deviation and the 95% t-interval of the mean;
- the difference to the dense base model, paired by seed (each job starts from its seed's dense
  checkpoint), with its 95% t-interval;
- ranks: one rule, prunebench.report.stats.rank_against_leader: nothing is ranked with fewer than
  MIN_SEEDS seeds; the methods not significantly worse than the leader (paired t-tests, Holm-corrected)
  share rank 1 with it, the others are ranked by their place in the order of means;
- intervals are cut to what an accuracy can be ([0, 100] %), and marked where they were cut (a perplexity's are
  not cut).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prunebench.fairness import TOTAL_SETUPS, counted, uses_dense_model
from prunebench.report.audit import (
    Entry,
    Issue,
    audit_bases,
    audit_configs,
    audit_duplicates,
    machine,
    record_issues,
)
from prunebench.report.efficiency import efficiency_note, fill_efficiency
from prunebench.report.evaluations import EvaluationRow
from prunebench.report.filters import among, among_sparsities
from prunebench.report.load import ProtocolInfo
from prunebench.report.metric import (
    DEFAULT_TASK,
    base_value,
    best_first,
    bounds,
    ranked_value,
    ranking_metric,
    shows_top5,
)
from prunebench.report.row import Row
from prunebench.report.stats import MIN_SEEDS, clipped, estimate, paired_difference, rank_against_leader
from prunebench.results import ResultSummary
from prunebench.results.targets import Target

if TYPE_CHECKING:
    from prunebench.tasks import Metric


@dataclass
class Leaderboard:
    protocol: str
    setup_hash: str
    protocol_hashes: list[str]
    mixed: bool
    expected_seeds: list[int]
    rows: list[Row]
    issues: list[Issue]
    notes: list[str] = field(default_factory=list)
    dense_checkpoints: dict[int, str] = field(default_factory=dict)  # per seed, the one most results share
    machines: list[str] = field(default_factory=list)  # where its results were computed (report.audit.machine)
    variant: str | None = None  # a retraining variant's board (None: the protocol's own recipe)
    variant_title: str | None = None  # what the variant is, for the title
    variant_kind: str | None = None  # `sanity` for a sanity ablation's board (prunebench.report.sanity)
    resolution: float | None = None  # one test example's share of the accuracy (prunebench.report.stats)
    degenerate: float | None = None
    target_kind: str = "sparsity"  # what its rows' targets are (prunebench.results.targets)
    task: str = DEFAULT_TASK  # the task of its results: which metric ranks them (prunebench.report.metric)
    # The optional evaluations shown on request (`compare --show`), one per row, in the rows' order.
    shown: tuple[str, ...] = ()
    evaluations: list[EvaluationRow] = field(default_factory=list)

    @property
    def metric(self) -> Metric:
        return ranking_metric(self.task)

    def target_label(self, value: float) -> str:
        """A target as its board names it: `sparsity 0.9`, `FLOPs 2x`."""
        return Target(self.target_kind, value).label()  # type: ignore[arg-type]

    @property
    def dense(self) -> Row | None:
        return next((r for r in self.rows if r.kind == "dense"), None)

    @property
    def title(self) -> str:
        hashes = ", ".join(h[:10] for h in self.protocol_hashes)
        kind = "SANITY ABLATION" if self.variant_kind == "sanity" else "RETRAINING VARIANT"
        which = f" -- {kind} {self.variant_title or self.variant}" if self.variant else ""
        if self.mixed:
            return (
                f"{self.protocol}: MIXED PROTOCOLS (hashes {hashes}), ranked together on request (--mix-protocols)"
                + which
            )
        plural = "es" if len(self.protocol_hashes) > 1 else ""
        return f"{self.protocol} (setup {self.setup_hash[:10]}; protocol hash{plural} {hashes})" + which


@dataclass
class Comparison:
    boards: list[Leaderboard]
    notices: list[str]
    files: int

    @property
    def issues(self) -> list[Issue]:
        return [i for b in self.boards for i in b.issues]


def mean_of(values: Iterable[float]) -> float | None:
    vals = list(values)
    return math.fsum(vals) / len(vals) if vals else None


def _schedule(r: ResultSummary) -> str:
    s = r.retraining.schedule
    name = str(s.get("name", "?"))
    extra = []
    if s.get("milestones"):
        extra.append(f"milestones {s['milestones']}")
    if s.get("step_size"):
        extra.append(f"every {s['step_size']}")
    if name in ("step", "multistep") and s.get("gamma") is not None:
        extra.append(f"gamma {s['gamma']:g}")
    if s.get("warmup_epochs"):
        extra.append(f"warmup {s['warmup_epochs']:g}")
    return name + (f" ({', '.join(extra)})" if extra else "")


def fill_measurements(row: Row, clean: list[Entry]) -> None:
    recs = [e.record for e in clean]
    sp = [r.sparsity for r in recs if r.sparsity is not None]
    if sp:
        row.achieved_sparsity_mean = mean_of(s.achieved for s in sp)
        row.achieved_sparsity_min = min(s.achieved for s in sp)
        row.achieved_sparsity_max = max(s.achieved for s in sp)
        row.sparsity_tolerance = sp[0].tolerance
        effective = [s.effective for s in sp]
        if all(e is not None for e in effective) and len(sp) == len(recs):
            row.effective_sparsity_mean = mean_of(e for e in effective if e is not None)
    row.degenerate_seeds = sum(1 for r in recs if r.metrics is not None and r.metrics.degenerate)
    costs = [r.cost for r in recs if r.cost is not None]
    if costs:
        row.params_dense = mean_of(float(c.params_dense) for c in costs)
        row.params_effective = mean_of(float(c.params_effective) for c in costs)
        row.flops_dense = mean_of(c.flops_dense for c in costs)
        row.flops_effective = mean_of(c.flops_effective for c in costs)
        if row.params_dense and row.params_effective is not None:
            row.params_reduction = 1.0 - row.params_effective / row.params_dense
            row.compression = row.params_dense / row.params_effective if row.params_effective else None
        if row.flops_dense and row.flops_effective is not None:
            row.flops_reduction = 1.0 - row.flops_effective / row.flops_dense
            row.flops_speedup = row.flops_dense / row.flops_effective if row.flops_effective else None
    fill_efficiency(row, recs)
    # What the comparison setup counts (prunebench.fairness.counted): pruning plus retraining on the ladder; every
    # stage under SX-A / SX-B, base training for a job that started from the dense model.
    spent = [
        counted(r.ledger, r.protocol.comparison, dense_model=uses_dense_model(r.method.taxonomy.when)) for r in recs
    ]
    row.pruning_epochs = mean_of(r.ledger.pruning.epochs for r in recs)
    row.retrain_epochs = mean_of(r.ledger.retrain.epochs for r in recs)
    row.total_epochs = mean_of(s.epochs for s in spent)
    row.train_flops = mean_of(s.train_flops + s.forward_flops for s in spent)
    row.all_stages = any(r.protocol.comparison in TOTAL_SETUPS for r in recs)
    budgets = [r.budget for r in recs if r.budget is not None]
    if budgets:
        limits = budgets[0].limits
        row.pruning_epochs_limit = limits.get("pruning_epochs")
        row.retrain_epochs_limit = limits.get("retrain_epochs")
        row.total_epochs_limit = limits.get("total_epochs")
        row.train_flops_limit = limits.get("total_train_flops")
        row.budget_stated_by = ",".join(sorted({b.stated_by for b in budgets}))
        if row.train_flops is not None and row.train_flops_limit:
            row.budget_used = row.train_flops / row.train_flops_limit
    first = recs[0]
    row.retraining_regime = ",".join(sorted({r.retraining.regime for r in recs}))
    row.optimizer = str(first.retraining.optimizer.get("name", "?"))
    lr = first.retraining.optimizer.get("lr")
    row.lr = float(lr) if isinstance(lr, int | float) else None
    row.lr_schedule = ",".join(sorted({_schedule(r) for r in recs}))
    row.comparison = ",".join(sorted({r.protocol.comparison for r in recs}))
    row.method_name = first.method.name
    row.method_version = first.method.version


def rank_rows(
    rows: list[Row],
    accuracy: dict[str, dict[int, float]],
    resolution: float | None,
    degenerate: float | None,
    higher_is_better: bool,
) -> None:
    """Rank the rows of one table by the one rule (prunebench.report.stats.rank_against_leader); `accuracy`: each
    method's ranked metric per seed, better when higher or (perplexity) lower."""
    standings = rank_against_leader(
        accuracy, resolution=resolution, degenerate=degenerate, higher_is_better=higher_is_better
    )
    for row in rows:
        s = standings.get(row.method)
        if s is None:
            continue
        row.rank, row.rank_shared, row.unranked_why = s.rank, s.shared, s.why_unranked
        if s.leader is None or s.leader == row.method:
            row.vs_leader_verdict = "leader" if s.leader == row.method else None
            continue
        row.vs_leader_method = s.leader
        if s.versus is not None:
            row.vs_leader_n, row.vs_leader_delta = s.versus.n, s.versus.mean
            row.vs_leader_ci_low, row.vs_leader_ci_high, row.vs_leader_p = s.versus.low, s.versus.high, s.versus.p
        row.vs_leader_p_holm = s.p_holm
        row.vs_leader_verdict = "n/a" if s.rank is None else ("tied" if s.rank == 1 else "lower")


def build_board(
    name: str,
    setup: str,
    entries: list[Entry],
    mixed: bool,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
    declared: Sequence[str] | None = None,
) -> Leaderboard:
    """One leaderboard of the entries; `declared`: the method labels expected (default: the protocol's)."""
    infos = {e.info.hash: e.info for e in entries}
    agreed = audit_entries(entries, name, setup)
    layout = board_layout(entries, infos, declared, methods, sparsities)
    task = board_task(entries)
    resolution, degenerate = test_resolution(entries, task)
    frame = BoardFrame(name, setup, sorted(infos), mixed, layout.expected_seeds, resolution, degenerate, task)
    rows, issues = method_rows(frame, layout, entries)
    return Leaderboard(
        protocol=name,
        setup_hash=setup,
        protocol_hashes=frame.hashes,
        mixed=mixed,
        expected_seeds=frame.expected_seeds,
        rows=[dense_row(frame, agreed), *rows],
        issues=issues,
        notes=board_notes(rows, frame.hashes, mixed),
        dense_checkpoints={s: sha for s, (sha, _) in sorted(agreed.items())},
        machines=sorted({machine(e.record) for e in entries}),
        resolution=resolution,
        degenerate=degenerate,
        task=task,
        target_kind=next(
            (i.target_kind for i in infos.values() if i.content),
            next((e.record.target.kind for e in entries if e.record.target is not None), "sparsity"),
        ),
    )


@dataclass(frozen=True)
class BoardFrame:
    """What every row of one board shares: its protocol, setup and hashes, the seeds it expects, the resolution
    of its test accuracies (test_resolution), and its task."""

    protocol: str
    setup: str
    hashes: list[str]
    mixed: bool
    expected_seeds: list[int]
    resolution: float | None
    degenerate: float | None
    task: str = DEFAULT_TASK

    @property
    def metric(self) -> Metric:
        return ranking_metric(self.task)


@dataclass(frozen=True)
class BoardLayout:
    """The rows a board has: its methods (`labels`) at each sparsity (`targets`), filtered; `expected`: the
    methods declared for it, which get a row even without a result."""

    expected_seeds: list[int]
    expected: list[str]
    labels: list[str]
    targets: list[float]
    only_at: dict[str, list[float]] = field(default_factory=dict)  # methods declared for some targets only

    def declared_at(self, label: str, target: float) -> bool:
        """Whether the protocols declare `label` at `target`."""
        return label in self.expected and (label not in self.only_at or target in self.only_at[label])


def audit_entries(entries: list[Entry], name: str, setup: str) -> dict[int, tuple[str, float | None]]:
    """Audit the entries in place (each one's issues); returns each seed's agreed dense checkpoint and its value
    of the ranked metric (audit_bases)."""
    for e in entries:
        e.issues = record_issues(e, name, setup)
    audit_duplicates(entries, name, setup)
    audit_configs(entries, name, setup)
    return audit_bases(entries, name, setup)


def board_layout(
    entries: list[Entry],
    infos: dict[str, ProtocolInfo],
    declared: Sequence[str] | None,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
) -> BoardLayout:
    """The seeds, methods and sparsities the protocols declare, with those the results have."""
    declared_seeds = sorted({s for i in infos.values() for s in i.seeds})
    expected_seeds = declared_seeds or sorted({e.record.seed for e in entries})
    expected = list(declared) if declared is not None else [m for i in infos.values() for m in i.methods]
    labels = list(dict.fromkeys(expected + sorted({e.label for e in entries})))
    targets = sorted(
        {s for i in infos.values() for s in i.sparsities} | {e.target for e in entries if e.target is not None}
    )
    only_at: dict[str, list[float]] = {}
    for info in infos.values():
        for label, values in info.method_sparsities.items():
            only_at.setdefault(label, []).extend(values)
    return BoardLayout(
        expected_seeds,
        expected,
        [m for m in labels if among(m, methods)],
        [t for t in targets if among_sparsities(t, sparsities)],
        only_at,
    )


def method_rows(frame: BoardFrame, layout: BoardLayout, entries: list[Entry]) -> tuple[list[Row], list[Issue]]:
    """The method rows of a board, ranked per sparsity and sorted, and every issue of its entries."""
    cells: dict[tuple[str, float], list[Entry]] = defaultdict(list)
    issues: list[Issue] = []
    for e in entries:
        if e.target is None:
            issues.extend(e.issues)  # a result we cannot place in a row is still shown in the audit
        else:
            cells[(e.label, e.target)].append(e)
    rows: list[Row] = []
    apart: set[str] = set()
    for target in layout.targets:
        table: list[Row] = []
        for label in layout.labels:
            group = cells.get((label, target), [])
            if not group and not layout.declared_at(label, target):
                continue  # a method that neither ran at this sparsity nor was declared for it
            row, row_issues = method_row(frame, label, target, group)
            issues.extend(row_issues)
            table.append(row)
            if any(i.kind == "shared_engine" for i in row_issues):
                apart.add(row.method)
        # The rows with fair results; a method that shared its engine's process is shown, apart: never ranked.
        accuracy = {r.method: r.top1_by_seed for r in table if r.top1_by_seed and r.method not in apart}
        rank_rows(table, accuracy, frame.resolution, frame.degenerate, frame.metric.higher_is_better)
        for row in table:
            if row.method in apart:
                row.unranked_why = "shown apart: its code ran in the engine's process"
        rows.extend(table)
    metric = frame.metric
    rows.sort(key=lambda r: (r.sparsity_target, r.rank is None, r.rank or 0, best_first(metric, r.top1_mean), r.method))
    return rows, issues


def method_row(frame: BoardFrame, label: str, target: float, group: list[Entry]) -> tuple[Row, list[Issue]]:
    """The row of one method at one sparsity from its entries (unranked), and its issues."""
    present = {e.record.seed for e in group}
    missing = [s for s in frame.expected_seeds if s not in present]
    row_issues = [i for e in group for i in e.issues] + missing_seed_issues(frame, label, target, missing, group)
    clean = sorted((e for e in group if e.clean), key=lambda e: e.record.seed)
    row = Row(
        protocol=frame.protocol,
        setup_hash=frame.setup,
        protocol_hashes=sorted({e.info.hash for e in group}) or frame.hashes,
        mixed_protocols=frame.mixed,
        kind="method",
        method=label,
        sparsity_target=target,
        expected_seeds=frame.expected_seeds,
        missing_seeds=missing,
        files=[str(e.path) for e in group],
        task=frame.task,
    )
    fill_accuracy(row, clean, frame)
    if clean:
        fill_measurements(row, clean)
    elif group:
        row.method_name, row.method_version = group[0].record.method.name, group[0].record.method.version
    row.issues = [i.short() for i in row_issues]
    row.n_issues = len(row_issues)
    row.status = row_status(row, group, clean, row_issues)
    return row, row_issues


def missing_seed_issues(
    frame: BoardFrame, label: str, target: float, missing: list[int], group: list[Entry]
) -> list[Issue]:
    """One issue per missing seed of a row with results; one line for a declared method without any."""
    if group:
        return [
            Issue(frame.protocol, frame.setup, label, target, s, "missing_seed", "no result file", None)
            for s in missing
        ]
    if not missing:
        return []
    why = f"no result file for any seed ({', '.join(map(str, missing))})"
    return [Issue(frame.protocol, frame.setup, label, target, None, "missing_seed", why, None)]


def fill_accuracy(row: Row, clean: list[Entry], frame: BoardFrame) -> None:
    """The row's ranked metric over its fair results (test top-1, perplexity): mean, spread and interval, and the
    paired difference to the dense base model."""
    acc: dict[int, float] = {e.record.seed: ranked_value(e.record) for e in clean}  # type: ignore[misc]
    row.top1_by_seed = dict(sorted(acc.items()))
    est = estimate([acc[s] for s in sorted(acc)])
    row.n_seeds, row.seeds = est.n, sorted(acc)
    row.top1_mean, row.top1_std = est.mean, est.std
    row.top1_ci_low, row.top1_ci_high, row.top1_ci_clipped = clipped(est.low, est.high, *bounds(frame.metric))
    if not clean:
        return
    if shows_top5(frame.task):
        top5 = [e.record.metrics.test_top5 for e in clean if e.record.metrics.test_top5 is not None]  # type: ignore[union-attr]
        row.top5_mean = mean_of(t for t in top5 if t is not None)
    dense = {e.record.seed: v for e in clean if (v := base_value(e.record)) is not None}
    row.dense_top1_mean = mean_of(dense[s] for s in sorted(dense))
    d = paired_difference(acc, dense, resolution=frame.resolution, degenerate=frame.degenerate)
    row.delta_dense_mean, row.delta_dense_std = d.mean, d.std
    row.delta_dense_ci_low, row.delta_dense_ci_high, row.delta_dense_p = d.low, d.high, d.p


def row_status(row: Row, group: list[Entry], clean: list[Entry], row_issues: list[Issue]) -> str:
    """Whether a row is ok, and if not, why."""
    if not group:
        return "missing (no results)"
    if not clean:
        return "excluded (see audit)"
    if set(row.top1_by_seed) != set(row.expected_seeds):
        return f"incomplete ({len(row.top1_by_seed)}/{len(row.expected_seeds)} seeds)"
    if row_issues:
        return "ok (see audit)"
    return "ok"


def dense_row(frame: BoardFrame, agreed: dict[int, tuple[str, float | None]]) -> Row:
    """The row of the dense base models: each seed's agreed checkpoint's value of the ranked metric."""
    dense_acc = {s: acc for s, (_, acc) in sorted(agreed.items()) if acc is not None}
    dense_est = estimate(list(dense_acc.values()))
    low, high, cut = clipped(dense_est.low, dense_est.high, *bounds(frame.metric))
    return Row(
        protocol=frame.protocol,
        setup_hash=frame.setup,
        protocol_hashes=frame.hashes,
        mixed_protocols=frame.mixed,
        kind="dense",
        method="dense base model",
        n_seeds=dense_est.n,
        seeds=sorted(dense_acc),
        expected_seeds=frame.expected_seeds,
        missing_seeds=[s for s in frame.expected_seeds if s not in dense_acc],
        top1_mean=dense_est.mean,
        top1_std=dense_est.std,
        top1_ci_low=low,
        top1_ci_high=high,
        top1_ci_clipped=cut,
        dense_top1_mean=dense_est.mean,
        achieved_sparsity_mean=0.0,
        status="ok" if dense_acc else "missing (no results)",
        task=frame.task,
    )


def board_notes(rows: list[Row], hashes: list[str], mixed: bool) -> list[str]:
    """The notes under a board, from its method rows: what is not ranked, cut intervals, where speedups were
    measured, mixed protocols."""
    notes = []
    few = sorted({r.n_seeds for r in rows if r.kind == "method" and r.unranked_why and 0 < r.n_seeds < MIN_SEEDS})
    if few:
        notes.append(
            f"NOT RANKED: rows with {' or '.join(map(str, few))} seed(s) have no rank; a rank needs {MIN_SEEDS} "
            "seeds, fewer cannot tell methods apart"
        )
    if any(r.top1_ci_clipped for r in rows):
        notes.append("* an interval cut to [0, 100] %: with so few seeds the t-interval leaves what accuracy can be")
    if any(r.effective_sparsity_mean is not None for r in rows):
        notes.append(
            "effective: mean effective sparsity over seeds, zeros plus kept weights on no path from the input to the "
            "output (Vysogorets & Kempe 2023)"
        )
    if any(r.degenerate_seeds for r in rows):
        notes.append(
            "at chance: seeds whose test top-1 is within the protocol's margin of chance (evaluation.chance_margin), "
            "a collapsed model; they stay in the method's mean"
        )
    measured = efficiency_note(rows)
    if measured:
        notes.append(measured)
    if any(r.all_stages for r in rows if r.kind == "method"):
        notes.append(
            "train FLOPs: mean training FLOPs of every stage the setup's totals count (SX-A / SX-B): base training's "
            "for a method that pruned its dense model, none for one trained sparse from the initialization"
        )
    if mixed:
        notes.append(
            f"MIXED PROTOCOLS: {len(hashes)} protocol hashes are ranked together on request (--mix-protocols); "
            "their numbers may not be comparable."
        )
    if len(hashes) > 1 and not mixed:
        notes.append(
            f"protocol hashes {', '.join(h[:10] for h in hashes)} differ only in their method lists; their "
            "results share one setup and are ranked together"
        )
    return notes


def board_task(entries: Iterable[Entry]) -> str:
    """The task of a board's results (one protocol setup has one task); classification for a board without any."""
    return next((e.record.task for e in entries), DEFAULT_TASK)


def test_resolution(entries: Iterable[Entry], task: str = DEFAULT_TASK) -> tuple[float | None, float | None]:
    """(the smallest difference two test accuracies can have: one test example's share, when every record says how
    many it was measured on; else None, and the smallest gap between two of the ranked values as a stand-in for a
    spread of exactly zero). A metric that is no share of examples (perplexity) has no such resolution."""
    entries = list(entries)
    metrics = [e.record.metrics for e in entries if e.record.metrics is not None]
    counts = [m.test_examples for m in metrics]
    if ranking_metric(task).percent and counts and all(c is not None and c > 0 for c in counts):
        return 1.0 / max(counts), None  # type: ignore[type-var]
    values = sorted({v for e in entries if (v := ranked_value(e.record)) is not None})
    gaps = [b - a for a, b in itertools.pairwise(values) if b - a > 1e-12]
    return None, (min(gaps) if gaps else None)
