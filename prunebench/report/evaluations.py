"""What pruning takes away, across seeds, from the records' optional evaluations (docs/analyses.md): a board's
rows of robustness, calibration and forgetting, shown on request (`compare --show`), never ranked.

Over a row's fair results (one per seed): means over seeds, and differences to the dense model paired by seed.
Forgetting (Hooker et al. 2019): the pruning-identified exemplars (PIEs) are the test examples whose modal
prediction over the row's pruned models (one a seed; ties to the lowest class) differs from the modal prediction
over the same seeds' dense models; each class's change in accuracy is tested against the overall change
(`changed_classes`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prunebench.report.stats import ALPHA, MIN_SEEDS, Paired, holm, paired_difference
from prunebench.results import ForgettingRecord, ResultSummary, decode_labels

SHOWABLE = ("robustness", "calibration", "forgetting")


@dataclass
class EvaluationRow:
    """One board row's optional evaluations (fractions, as records hold them); None where no record has them."""

    method: str
    kind: str  # dense or method
    sparsity_target: float | None
    n_seeds: int = 0
    corruption_top1: float | None = None  # mean over seeds of the mean corruption accuracy
    corruption_delta: Paired | None = None  # its difference to the dense model's, paired by seed
    corruption_excess: Paired | None = None  # that difference minus the clean test top-1's difference, by seed
    corruption_by_name: dict[str, float] = field(default_factory=dict)  # each corruption's, over severities
    corruption_delta_by_name: dict[str, float] = field(default_factory=dict)  # each one's pruned - dense, mean
    ece: float | None = None
    ece_delta: Paired | None = None
    nll: float | None = None
    nll_delta: Paired | None = None
    agreement: float | None = None  # with the dense model, mean over seeds
    pies: int | None = None
    test_examples: int | None = None
    pie_top1_dense: float | None = None  # the dense models' mean top-1 on the PIEs
    pie_top1_pruned: float | None = None
    class_delta: list[float | None] = field(default_factory=list)  # per class, pruned - dense, mean over seeds
    changed_classes: int | None = None  # classes whose change differs from the overall change (Holm, ALPHA)
    forgetting_note: str | None = None  # why forgetting across seeds could not be computed


def evaluation_row(method: str, target: float | None, records: Sequence[ResultSummary]) -> EvaluationRow:
    """A method row's evaluations from its fair records (one per seed)."""
    row = EvaluationRow(method, "method", target, n_seeds=len(records))
    rob = {r.seed: r.evaluation.robustness for r in records if r.evaluation and r.evaluation.robustness}
    if rob:
        row.corruption_top1 = _mean(x.mean_top1 for x in rob.values())
        row.corruption_delta = _paired(
            {s: x.mean_top1 for s, x in rob.items()}, {s: x.dense_mean_top1 for s, x in rob.items()}
        )
        clean = {r.seed: r.metrics.test_top1 - r.base.test_top1 for r in records if r.metrics and r.base}
        row.corruption_excess = _paired(
            {s: x.mean_top1 - x.dense_mean_top1 for s, x in rob.items() if s in clean}, clean
        )
        names = dict.fromkeys(n for x in rob.values() for n in x.top1)
        row.corruption_by_name = {n: _mean(v for x in rob.values() for v in x.top1.get(n, [])) for n in names}
        row.corruption_delta_by_name = {
            n: _mean(
                p - d for x in rob.values() for p, d in zip(x.top1.get(n, []), x.dense_top1.get(n, []), strict=False)
            )
            for n in names
        }
    cal = {r.seed: r.evaluation.calibration for r in records if r.evaluation and r.evaluation.calibration}
    if cal:
        row.ece, row.nll = _mean(x.ece for x in cal.values()), _mean(x.nll for x in cal.values())
        row.ece_delta = _paired({s: x.ece for s, x in cal.items()}, {s: x.dense_ece for s, x in cal.items()})
        row.nll_delta = _paired({s: x.nll for s, x in cal.items()}, {s: x.dense_nll for s, x in cal.items()})
    forget = {r.seed: r.evaluation.forgetting for r in records if r.evaluation and r.evaluation.forgetting}
    if forget:
        fill_forgetting(row, forget)
    return row


def dense_row(records: Sequence[ResultSummary]) -> EvaluationRow:
    """The dense base models' evaluations: each seed's, as its records hold them (the first record of a seed)."""
    by_seed = {r.seed: r.evaluation for r in sorted(records, key=lambda r: r.seed) if r.evaluation is not None}
    row = EvaluationRow("dense base model", "dense", None, n_seeds=len(by_seed))
    rob = [e.robustness for e in by_seed.values() if e.robustness is not None]
    if rob:
        row.corruption_top1 = _mean(x.dense_mean_top1 for x in rob)
        names = dict.fromkeys(n for x in rob for n in x.dense_top1)
        row.corruption_by_name = {n: _mean(v for x in rob for v in x.dense_top1.get(n, [])) for n in names}
    cal = [e.calibration for e in by_seed.values() if e.calibration is not None]
    if cal:
        row.ece, row.nll = _mean(x.dense_ece for x in cal), _mean(x.dense_nll for x in cal)
    return row


def fill_forgetting(row: EvaluationRow, by_seed: dict[int, ForgettingRecord]) -> None:
    """Agreement, the PIEs and the per-class change of a row, from each seed's forgetting record."""
    row.agreement = _mean(f.agreement for f in by_seed.values())
    classes = len(next(iter(by_seed.values())).class_top1)
    labels = {f.labels for f in by_seed.values()}
    if len(labels) != 1 or any(len(f.class_top1) != classes for f in by_seed.values()):
        row.forgetting_note = "the records were measured on different test splits: no PIEs"
        return
    seeds = sorted(by_seed)
    try:
        truth = decode_labels(labels.pop(), classes)
        pruned = [decode_labels(by_seed[s].predictions, classes) for s in seeds]
        dense = [decode_labels(by_seed[s].dense_predictions, classes) for s in seeds]
    except ValueError:
        pruned, dense, truth = [], [], []
    if not truth or any(len(p) != len(truth) for p in (*pruned, *dense)):
        row.forgetting_note = "the records' predictions are not one per test example: no PIEs"
        return
    pies = pruning_identified_exemplars(pruned, dense)
    row.pies, row.test_examples = len(pies), len(truth)
    if pies:
        row.pie_top1_dense = _mean(_top1(p, truth, pies) for p in dense)
        row.pie_top1_pruned = _mean(_top1(p, truth, pies) for p in pruned)
    for c in range(classes):
        diffs = [d for s in seeds if (d := _difference(by_seed[s], c)) is not None]
        row.class_delta.append(_mean(diffs) if diffs else None)
    every = range(len(truth))
    overall = {s: _top1(p, truth, every) - _top1(d, truth, every) for s, p, d in zip(seeds, pruned, dense, strict=True)}
    row.changed_classes = changed_classes(by_seed, overall, Counter(truth))


def pruning_identified_exemplars(pruned: Sequence[Sequence[int]], dense: Sequence[Sequence[int]]) -> list[int]:
    """The examples whose modal prediction over the pruned models differs from that over the dense models (Hooker
    et al. 2019); the mode of a tie is its lowest class."""
    return [i for i in range(len(pruned[0])) if _mode(p[i] for p in pruned) != _mode(d[i] for d in dense)]


def changed_classes(
    by_seed: dict[int, ForgettingRecord], overall: dict[int, float], counts: Counter[int]
) -> int | None:
    """How many classes' change in accuracy (pruned - dense, per seed) differs from the model's overall change:
    paired t-tests over seeds of the class's change minus the overall change, Holm-corrected over the classes, at
    ALPHA; None with fewer than MIN_SEEDS seeds."""
    if len(by_seed) < MIN_SEEDS:
        return None
    classes = len(next(iter(by_seed.values())).class_top1)
    p_values: list[float | None] = []
    for c in range(classes):
        change = {s: d - overall[s] for s, f in by_seed.items() if (d := _difference(f, c)) is not None}
        p_values.append(
            paired_difference(change, dict.fromkeys(change, 0.0), resolution=1 / counts[c]).p if counts[c] else None
        )
    return sum(1 for p in holm(p_values) if p is not None and p < ALPHA)


def _difference(f: ForgettingRecord, c: int) -> float | None:
    p, d = f.class_top1[c], f.dense_class_top1[c]
    return None if p is None or d is None else p - d


def _mode(values: Iterable[int]) -> int:
    counts = Counter(values)
    top = max(counts.values())
    return min(k for k, v in counts.items() if v == top)


def _top1(predicted: Sequence[int], truth: Sequence[int], among: Sequence[int] | range) -> float:
    return sum(1 for i in among if predicted[i] == truth[i]) / len(among) if len(among) else math.nan


def _paired(a: dict[int, float], b: dict[int, float]) -> Paired:
    return paired_difference(a, b)


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return math.fsum(vals) / len(vals) if vals else math.nan
