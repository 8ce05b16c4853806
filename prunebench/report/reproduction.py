"""Does a run reproduce a paper? Its per-seed results against a published figures file, row by row.

Each row of the file (prunebench.report.published) is paired with the run's results of its protocol at the row's
method label and sparsity: the fair results' ranked metric by seed (prunebench.report.metric). The run's mean is
tested against the published one by Welch's unpaired t-test from the two summaries (prunebench.report.stats): the
run's mean and standard deviation over its seeds (at least one test example's resolution); the paper's mean and
std over its n runs, or its median with the standard deviation estimated from its range (`range_summary`), or a
point value taken as exact, so that only the run's own spread is tested (what a point value allows: whether it
lies within the run's seed-to-seed noise, not whether the paper's own runs would agree with it). The p-values are
Holm-corrected over the file's tested rows, so that the claims "row r is not reproduced" hold at ALPHA together.

Verdicts: `reproduced` (Holm-adjusted p >= ALPHA), `not reproduced`, `not testable` (fewer than two fair seeds,
or no spread on either side), `unfair` (a failed job, a smoke run, a budget violation: FAILING_KINDS), `not run`.
`detects` is the smallest true difference the row's test (at ALPHA, before the correction) finds with 80 %
probability: a `reproduced` row says the difference is likely below it, no more. Exit codes: 0 when at least one
row is tested and every row with results is reproduced; 1 otherwise; 2 for unusable input (ResultsError,
TableError).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from prunebench.errors import ResultsError, TableError
from prunebench.report.audit import same_target
from prunebench.report.board import Leaderboard
from prunebench.report.check import FAILING_KINDS
from prunebench.report.compare import compare
from prunebench.report.load import ProtocolIndex
from prunebench.report.published import PublishedFile, PublishedRow, load_published, recipe_hash
from prunebench.report.row import Row
from prunebench.report.stats import ALPHA, Summary, Welch, detectable_difference, holm, mean_summary, welch
from prunebench.results import load_records

Verdict = Literal["reproduced", "not reproduced", "not testable", "unfair", "not run"]
MIN_RUN_SEEDS = 2  # the run's own spread needs two seeds


@dataclass
class Item:
    """One published row and what the run has of it."""

    published: PublishedRow
    run: Row | None
    verdict: Verdict = "not run"
    test: Welch | None = None
    p_holm: float | None = None
    detectable: float | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class Reproduction:
    file: PublishedFile
    board: Leaderboard
    items: list[Item]
    notes: list[str]

    @property
    def exit_code(self) -> int:
        judged = [i for i in self.items if i.verdict != "not run"]
        ok = bool(judged) and all(i.verdict == "reproduced" for i in judged)
        return 0 if ok else 1


def run_reproduction(results: list[Path], published: Path) -> Reproduction:
    """Pair the results under `results` with the published file; ResultsError or TableError for unusable input."""
    file = load_published(published)
    loaded = load_records(results)
    if not loaded:
        raise ResultsError(f"no valid result records in {', '.join(map(str, results))}")
    index = ProtocolIndex()
    boards = [b for b in compare(loaded, index=index).boards if b.protocol == file.protocol and b.variant is None]
    if not boards:
        raise ResultsError(f"no results of protocol {file.protocol} (the protocol of {published}) in the results given")
    notes: list[str] = []
    matching = []
    for b in boards:
        content = index.by_setup(b.protocol, b.setup_hash).content
        if content is not None and recipe_hash(content) == file.meta["setup"]:
            matching.append(b)
        else:
            why = "its protocol.json was not found" if content is None else "it ran another recipe"
            notes.append(f"results of setup {b.setup_hash[:10]} not compared: {why}")
    if not matching:
        theirs = ", ".join(b.setup_hash[:10] for b in boards)
        raise ResultsError(
            f"the results of {file.protocol} ran another recipe than the one {published} publishes (its setup "
            f"{file.meta['setup'][:10]}; the results': {theirs}): run the shipped protocols/{file.protocol}.yaml "
            "unchanged (seeds aside)"
        )
    board = max(matching, key=lambda b: sum(len(r.top1_by_seed) for r in b.rows))
    notes += [f"another run of the same recipe ({b.setup_hash[:10]}) not compared" for b in matching if b is not board]
    items = [_item(board, row, published) for row in file.rows]
    tested = [i for i in items if i.test is not None and i.test.p is not None]
    for item, p in zip(tested, holm([i.test.p for i in tested]), strict=True):  # type: ignore[union-attr]
        item.p_holm = p
        item.verdict = "reproduced" if p is not None and p >= ALPHA else "not reproduced"
    return Reproduction(file, board, items, notes)


def _item(board: Leaderboard, row: PublishedRow, path: Path) -> Item:
    metric = board.metric
    if (row.unit == "perplexity") == metric.percent:
        raise TableError(
            f"the results of {board.protocol} are ranked by {metric.label}: {row.unit} does not measure it",
            file=path,
            line=row.line,
            field="unit",
        )
    rows = (r for r in board.rows if r.kind == "method" and r.method == row.method)
    run = next((r for r in rows if same_target(r.sparsity_target, row.sparsity)), None)
    item = Item(row, run)
    unfair = [
        i.short()
        for i in board.issues
        if i.kind in FAILING_KINDS and i.method == row.method and same_target(i.sparsity, row.sparsity)
    ]
    if unfair:
        item.verdict, item.reasons = "unfair", unfair
        return item
    if run is None or not run.top1_by_seed:
        item.reasons.append("no fair result of this method at this sparsity")
        return item
    values = list(run.top1_by_seed.values())
    if len(values) < MIN_RUN_SEEDS:
        item.verdict = "not testable"
        item.reasons.append(f"{len(values)} seed: the run's own spread needs {MIN_RUN_SEEDS} seeds or more")
        return item
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    std = 0.0 if std <= 1e-9 * abs(mean) else std  # equal values, but for the rounding of their mean
    ours = mean_summary(mean, max(std, board.resolution or 0.0), len(values))
    theirs: Summary = row.summary()
    item.test = welch(ours, theirs)
    if item.test.p is None or item.test.df is None:
        item.verdict = "not testable"
        item.reasons.append("no spread on either side")
        return item
    item.detectable = detectable_difference(item.test.se, item.test.df)
    return item
