"""Degenerate accuracies and effective sparsity on the boards (docs/analyses.md): seeds at chance stay in their
method's mean, and the board counts them; the rule at chance is checked on the SynFlow authors' published cells."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from prunebench.fairness import near_chance
from prunebench.protocol import EvaluationSpec
from prunebench.report import compare, render
from prunebench.report.audit import CONNECTIVITY_KINDS
from prunebench.report.pivot import pivot, pivot_markdown
from prunebench.results import ConnectivityRecord, ResultRecord, load_records
from prunebench.testing import make_protocol, make_record, standard_records, write_run

# Tanaka et al. 2020's raw results (ganguli-lab/Synaptic-Flow, Results/data), summarised per cell: VGG-16-BN on
# CIFAR-100 pruned at initialization, mean test top-1 % over 3 runs (/work/shared/published/README.md).
SYNFLOW = (
    Path(__file__).resolve().parents[1] / "fixtures" / "published" / "synflow_vgg16bn_cifar100_singleshot_summary.csv"
)


def flagged(record: ResultRecord, *, effective: float | None = None) -> ResultRecord:
    """`record` as the runner writes a collapsed model's: test top-1 at chance, degenerate, and its effective
    sparsity (with a disconnected network when it is 1)."""
    assert record.metrics is not None and record.sparsity is not None
    metrics = record.metrics.model_copy(update={"test_top1": 0.1, "chance": 0.1, "degenerate": True})
    sparsity = record.sparsity.model_copy(
        update={
            "effective": effective,
            "connectivity": ConnectivityRecord(disconnected=effective == 1.0, collapsed=["conv.weight"]),
        }
    )
    return record.model_copy(update={"metrics": metrics, "sparsity": sparsity})


def test_seeds_at_chance_stay_in_the_mean_and_the_board_counts_them(tmp_path: Path) -> None:
    proto = make_protocol()
    records = [r for r in standard_records(proto) if not (r.method.label == "c" and r.target_sparsity == 0.9)]
    c = [make_record(proto, "c", 0.9, seed, top1) for seed, top1 in enumerate((0.80, 0.95, 0.88))]
    records += [flagged(c[0], effective=1.0), flagged(c[1], effective=1.0), c[2]]
    write_run(tmp_path, proto, records)
    comparison = compare(load_records([tmp_path]))
    board = comparison.boards[0]
    row = next(r for r in board.rows if r.method == "c" and r.sparsity_target == 0.9)
    assert row.degenerate_seeds == 2 and row.n_seeds == 3  # kept: the method's result
    assert row.top1_mean == pytest.approx((0.1 + 0.1 + 0.88) / 3) and row.rank is not None
    assert row.effective_sparsity_mean is None  # the third seed's record has none: no mean of part of the seeds
    issues = [i for i in board.issues if i.method == "c"]
    assert sorted(i.kind for i in issues) == ["collapsed"] * 2 + ["degenerate"] * 2 + ["disconnected"] * 2
    assert {i.kind for i in issues} <= CONNECTIVITY_KINDS and not any(i.excludes for i in issues)

    markdown = render(comparison, "markdown")
    line = next(ln for ln in markdown.splitlines() if ln.startswith("| ") and "| c | 0.9 |" in ln)
    assert "| 3/3 (2 at chance) |" in line
    assert "at chance: seeds whose test top-1 is within the protocol's margin of chance" in markdown
    assert "| effective |" not in markdown  # no row has an effective sparsity of every seed
    assert "2 at chance" in pivot_markdown(pivot(board))
    a = next(r for r in board.rows if r.method == "a" and r.sparsity_target == 0.9)
    assert a.degenerate_seeds == 0 and "at chance" not in next(
        ln for ln in markdown.splitlines() if ln.startswith("| ") and "| a | 0.9 |" in ln
    )


def test_the_effective_column_is_the_mean_over_seeds_and_older_records_have_none(tmp_path: Path) -> None:
    proto = make_protocol()
    records = [
        flagged(r, effective=0.9 + 0.01 * r.seed) if r.method.label == "b" and r.target_sparsity == 0.9 else r
        for r in standard_records(proto)
    ]
    write_run(tmp_path, proto, records)
    comparison = compare(load_records([tmp_path]))
    b = next(r for r in comparison.boards[0].rows if r.method == "b" and r.sparsity_target == 0.9)
    assert b.effective_sparsity_mean == pytest.approx(0.91)
    markdown = render(comparison, "markdown")
    header = next(ln for ln in markdown.splitlines() if ln.startswith("| rank |")).split(" | ")
    line = next(ln for ln in markdown.splitlines() if ln.startswith("| ") and "| b | 0.9 |" in ln).split(" | ")
    cells = dict(zip(header, line, strict=True))
    assert cells["effective"] == "0.9100" and cells["achieved"] == "0.9000"
    a = next(ln for ln in markdown.splitlines() if ln.startswith("| ") and "| a | 0.9 |" in ln).split(" | ")
    assert dict(zip(header, a, strict=True))["effective"] == "-"  # written without it: not computed, not zero


def published_cells() -> list[dict[str, str]]:
    with SYNFLOW.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_synflow_papers_collapsed_cells_are_degenerate_by_the_chance_rule() -> None:
    """Magnitude and random pruning of VGG-16-BN on CIFAR-100 fall to exactly 1.00 % (chance, 100 classes) at
    compressions 10^2.5 and 10^2.75 and beyond; with the protocol's default margin every such cell is degenerate,
    and none of the cells that learned anything (3.51 % and up) is."""
    margin = EvaluationSpec().chance_margin
    assert margin is not None
    cells = published_cells()
    chance = 1 / 100
    at_chance = [c for c in cells if float(c["mean_top1"]) == 1.0]
    assert {(c["pruner"], c["compression_exponent"]) for c in at_chance} >= {("mag", "2.5"), ("rand", "2.75")}
    assert all(near_chance(float(c["mean_top1"]) / 100, chance, margin) for c in at_chance)
    learned = [c for c in cells if float(c["mean_top1"]) >= 3.5]
    assert learned and not any(near_chance(float(c["mean_top1"]) / 100, chance, margin) for c in learned)
    first = {
        p: min(float(c["compression_exponent"]) for c in at_chance if c["pruner"] == p)
        for p in ("mag", "rand", "cs", "grasp", "sf")
    }
    assert first == {"mag": 2.5, "rand": 2.75, "cs": 3.25, "grasp": 3.25, "sf": 5.25}  # SynFlow collapses last
