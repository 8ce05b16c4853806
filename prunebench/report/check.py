"""The regression gate for a submitted method: its results against committed reference results.

For every (protocol, method, sparsity) that the submission and the reference both have, the
submission fails when

- its mean of the ranked metric gets worse than the reference mean by more than the tolerance (test top-1 falls
  below it; a causal LM's perplexity rises above it: prunebench.report.metric)
      tolerance = max(floor, sigmas * s * sqrt(1/n_ref + 1/n_sub))
  (a multiple of the standard error of a difference of two means), where n_ref and n_sub are the
  numbers of seeds and s is the reference's standard deviation over seeds for this row when it has
  MIN_SEEDS seeds or more, else the reference's pooled standard deviation over all rows of the
  protocol (two seeds that happen to agree would give a tolerance of nothing; pooling every row
  always, the noise of the noisiest method would hide a 3-point regression of the steadiest). The
  spread is the reference's alone, so a submission cannot widen its tolerance by being erratic; the
  floor keeps a row whose seeds agree exactly from a tolerance of zero. With no reference spread at
  all (one seed everywhere) only the floor applies. The floor is given in hundredths of the metric's shown
  unit: 0.005 is 0.5 pp of accuracy, or 0.5 perplexity points; or
- any fairness rule is broken: another protocol setup than the reference's (protocol hash
  mismatch beyond the method list), a budget violation, sparsity off the target, a failed job,
  results from different dense checkpoints (among themselves, or from the reference's for a seed),
  conflicting duplicates.

A method the reference does not have (a new one) is checked for fairness only. Exit codes:
0 pass, 1 regression or fairness failure, 2 unusable input (no results, no common protocol).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rich.table import Table

from prunebench.errors import ResultsError
from prunebench.report.audit import Issue
from prunebench.report.board import Comparison, Leaderboard
from prunebench.report.compare import compare
from prunebench.report.load import ProtocolIndex, ProtocolInfo, describe_differences
from prunebench.report.metric import (
    DEFAULT_TASK,
    column,
    format_delta,
    format_value,
    ranking_metric,
    scale,
    unit,
    unit_words,
    with_unit,
    word,
    worsening,
)
from prunebench.report.row import Row
from prunebench.report.stats import MIN_SEEDS
from prunebench.results import load_records

if TYPE_CHECKING:
    from prunebench.tasks import Metric

DEFAULT_FLOOR = 0.005  # 0.5 percentage points of test top-1 (0.5 perplexity points of a causal LM's perplexity)
DEFAULT_SIGMAS = 2.0
# Kinds of audit issue that fail the gate; a missing seed is reported but does not fail it.
FAILING_KINDS = frozenset(
    {
        "failed",
        "budget",
        "sparsity",
        "violation",
        "base_checkpoint",
        "method_config",
        "duplicate",
        "incomplete_record",
        "protocol_hash",
        "smoke_run",  # `run --limit`: a few batches a stage, never a result
        "in_process",  # `run --in-process`: method code beside the runner's, for debugging only
        "unconfined",  # the job's process ran without the operating system's confinement (prunebench.confine)
        "shared_engine",  # the method's code shared its engine's process: refused unless its label is allowed
    }
)
Verdict = Literal["pass", "new", "regression", "unfair"]


def _definition(value: str, worse: str) -> str:
    return (
        f"A submission regresses when its mean {value} is {worse} the reference mean by more than "
        "max(floor, sigmas x s x sqrt(1/n_ref + 1/n_sub)), n being numbers of seeds and s the reference's standard "
        f"deviation over seeds for that row (with fewer than {MIN_SEEDS} reference seeds: its pooled standard "
        "deviation over all rows of the protocol; only the floor applies where the reference has no spread). "
        "`detects` is the smallest true regression caught with 80% probability: the tolerance plus 0.84 of that "
        "standard error."
    )


TOLERANCE_DEFINITION = _definition("test top-1", "below")  # classification's tolerance_definition


def tolerance_definition(metric: Metric) -> str:
    """When a submission regresses, for results ranked by `metric`."""
    return _definition(metric.label.removesuffix(" %"), "below" if metric.higher_is_better else "above")


@dataclass
class CheckItem:
    protocol: str
    method: str
    sparsity: float
    verdict: Verdict
    reference: Row | None
    submitted: Row
    delta: float | None = None
    tolerance: float | None = None
    detectable: float | None = None  # the smallest regression caught with 80 % probability
    reasons: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    items: list[CheckItem]
    problems: list[str]  # fairness failures not tied to one row (a protocol mismatch)
    notes: list[str]
    floor: float
    sigmas: float
    submitted_files: int
    reference_files: int

    @property
    def failures(self) -> list[CheckItem]:
        return [i for i in self.items if i.verdict in ("regression", "unfair")]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures or self.problems else 0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def pooled_std(board: Leaderboard) -> float | None:
    """sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1)) over the method rows with two seeds or more."""
    rows = [r for r in board.rows if r.kind == "method" and r.n_seeds >= 2 and r.top1_std is not None]
    dof = sum(r.n_seeds - 1 for r in rows)
    if not dof:
        return None
    return math.sqrt(math.fsum((r.n_seeds - 1) * r.top1_std**2 for r in rows) / dof)  # type: ignore[operator]


def standard_error(reference: Row, n_submitted: int, pooled: float | None = None) -> float | None:
    """s * sqrt(1/n_ref + 1/n_sub): the standard error of the difference of the two means (None: no spread); s is
    the row's own spread with MIN_SEEDS seeds or more, else the pooled one."""
    own = reference.top1_std if reference.n_seeds >= MIN_SEEDS else None
    spread = own if own is not None else pooled
    if spread is None or reference.n_seeds < 1 or n_submitted < 1:
        return None
    return spread * math.sqrt(1 / reference.n_seeds + 1 / n_submitted)


def tolerance(reference: Row, n_submitted: int, *, floor: float, sigmas: float, pooled: float | None = None) -> float:
    se = standard_error(reference, n_submitted, pooled)
    return floor if se is None else max(floor, sigmas * se)


DETECTION_POWER_Z = 0.8416  # the normal quantile of 80 %: the power at which `detectable` is stated


def detectable(reference: Row, n_submitted: int, *, floor: float, sigmas: float, pooled: float | None = None) -> float:
    """The smallest true regression the gate catches four times out of five: the tolerance plus 0.84 standard
    errors (the observed drop is the true one plus noise of that standard error)."""
    se = standard_error(reference, n_submitted, pooled) or 0.0
    return tolerance(reference, n_submitted, floor=floor, sigmas=sigmas, pooled=pooled) + DETECTION_POWER_Z * se


def _failing(issues: Sequence[Issue], shared_allowed: frozenset[str] = frozenset()) -> list[Issue]:
    """The issues that fail the gate; a method the reference's maintainer allowed to share its engine's process
    (`--allow-shared-engine LABEL`) is judged on its numbers."""
    return [
        i for i in issues if i.kind in FAILING_KINDS and not (i.kind == "shared_engine" and i.method in shared_allowed)
    ]


def _check_board(
    sub: Leaderboard,
    ref: Leaderboard,
    floor: float,
    sigmas: float,
    report: CheckReport,
    require: bool,
    shared_allowed: frozenset[str] = frozenset(),
) -> None:
    ref_rows = {(r.method, r.sparsity_target): r for r in ref.rows if r.kind == "method"}
    pooled = pooled_std(ref)
    metric = sub.metric
    floor *= 100 / scale(metric)  # hundredths of the shown unit: a fraction of accuracy, or perplexity points
    by_row: dict[tuple[str | None, float | None], list[Issue]] = {}
    for issue in _failing(sub.issues, shared_allowed):
        by_row.setdefault((issue.method, issue.sparsity), []).append(issue)
    placed: set[tuple[str | None, float | None]] = set()
    for row in sub.rows:
        if row.kind != "method" or not row.files:
            continue  # declared in the protocol but not submitted: nothing to judge
        key = (row.method, row.sparsity_target)
        placed.add(key)
        assert row.sparsity_target is not None
        ref_row = ref_rows.get(key)
        item = CheckItem(sub.protocol, row.method, row.sparsity_target, "pass", ref_row, row)
        unfair = by_row.get(key, [])
        if unfair:
            item.verdict = "unfair"
            item.reasons = [i.short() for i in unfair]
        if ref_row is None or ref_row.n_seeds == 0 or ref_row.top1_mean is None:
            if item.verdict == "pass":
                item.verdict = "regression" if require else "new"
                item.reasons.append("no reference result" + (" (--require-reference)" if require else ""))
        elif row.top1_mean is not None:
            item.delta = row.top1_mean - ref_row.top1_mean
            item.tolerance = tolerance(ref_row, row.n_seeds, floor=floor, sigmas=sigmas, pooled=pooled)
            item.detectable = detectable(ref_row, row.n_seeds, floor=floor, sigmas=sigmas, pooled=pooled)
            worse = worsening(metric, item.delta)  # a drop of accuracy, a rise of perplexity
            if worse > item.tolerance and item.verdict == "pass":
                item.verdict = "regression"
            if worse > item.tolerance:
                u = f" {unit(metric)}" if unit(metric) else ""
                item.reasons.append(
                    f"mean {with_unit(metric, row.top1_mean)} is {format_value(metric, worse)}{u} "
                    f"{'below' if metric.higher_is_better else 'above'} the reference "
                    f"{with_unit(metric, ref_row.top1_mean)} (tolerance {format_value(metric, item.tolerance)}{u})"
                )
        if row.missing_seeds:
            item.reasons.append(f"missing seeds {', '.join(map(str, row.missing_seeds))}")
        report.items.append(item)
    for key, issues in by_row.items():
        if key not in placed:
            report.problems.extend(f"{sub.protocol}: {i.method or '?'}: {i.short()}" for i in issues)
    shared = sorted(sub.dense_checkpoints.keys() & ref.dense_checkpoints.keys())
    differ = [s for s in shared if sub.dense_checkpoints[s] != ref.dense_checkpoints[s]]
    if differ:
        # Under one protocol hash, every method of a seed must start from the same dense weights: results pruned
        # from other ones compare other experiments. (Another machine trains other dense weights, floating-point
        # order differing: the references ship theirs, and `prunebench run --dense-from` uses them.)
        dense = (
            f" (dense {word(metric)} {with_unit(metric, sub.dense.top1_mean)} submitted vs "
            f"{with_unit(metric, ref.dense.top1_mean)} reference)"
            if sub.dense and ref.dense and sub.dense.top1_mean is not None and ref.dense.top1_mean is not None
            else ""
        )
        where = (
            f"; the submission was computed on {', '.join(sub.machines)}, the reference on {', '.join(ref.machines)}"
            " (another thread count or device orders the sums of training otherwise)"
            if sub.machines != ref.machines
            else ""
        )
        report.problems.append(
            f"{sub.protocol}: the dense base models of seed(s) {', '.join(map(str, differ))} are not the reference's"
            f"{dense}{where}: run with `--dense-from` the reference's dense/ folder so that every method starts "
            "from the same weights"
        )


def run_check(
    results: Sequence[Path],
    reference: Sequence[Path],
    *,
    floor: float = DEFAULT_FLOOR,
    sigmas: float = DEFAULT_SIGMAS,
    require_reference: bool = False,
    allow_shared_engine: Sequence[str] = (),
) -> CheckReport:
    """Judge the results against the reference; raises ResultsError for unusable input. `allow_shared_engine`:
    method labels whose code may share the engine's process (docs/submitting.md, "in the engine's process")."""
    if floor < 0 or sigmas < 0:
        raise ResultsError("--floor and --sigmas must not be negative")
    index = ProtocolIndex()
    submitted_records = load_records(results)
    if not submitted_records:
        raise ResultsError(f"no valid result records in {', '.join(map(str, results))}")
    reference_records = load_records(reference)
    if not reference_records:
        raise ResultsError(f"no valid reference records in {', '.join(map(str, reference))}")
    # The reference first: its protocol.json files also place submitted records copied out of their run directory.
    ref: Comparison = compare(reference_records, index=index)
    sub: Comparison = compare(submitted_records, index=index)
    report = CheckReport([], [], [], floor, sigmas, len(submitted_records), len(reference_records))

    ref_by_name: dict[str, list[Leaderboard]] = {}
    for board in ref.boards:
        ref_by_name.setdefault(board.protocol, []).append(board)
    if not any(b.protocol in ref_by_name for b in sub.boards):
        raise ResultsError(
            f"the reference has no results of protocol {', '.join(sorted({b.protocol for b in sub.boards}))} "
            f"(it has {', '.join(sorted(ref_by_name))}): nothing to check against"
        )
    infos = {(e.protocol, e.setup_hash): e for e in ref.boards}
    for board in sub.boards:
        candidates = ref_by_name.get(board.protocol)
        if not candidates:
            line = f"{board.protocol}: the reference has no results of this protocol; not checked"
            (report.problems if require_reference else report.notes).append(line)
            continue
        match = infos.get((board.protocol, board.setup_hash))
        if match is None:
            how = "; ".join(describe_differences(_info(index, board), _info(index, other)) for other in candidates)
            report.problems.append(
                f"{board.protocol}: protocol hash mismatch: submitted setup {board.setup_hash[:10]} (protocol hash "
                f"{', '.join(h[:10] for h in board.protocol_hashes)}), reference setup "
                f"{', '.join(c.setup_hash[:10] for c in candidates)}; they differ in: {how}"
            )
            continue
        _check_board(board, match, floor, sigmas, report, require_reference, frozenset(allow_shared_engine))
    return report


def _info(index: ProtocolIndex, board: Leaderboard) -> ProtocolInfo:
    """The protocol content behind a leaderboard (for saying how two protocols differ)."""
    return index.by_setup(board.protocol, board.setup_hash)


# ---- reporting ----------------------------------------------------------------------------------
def _acc(row: Row | None) -> str:
    if row is None or row.top1_mean is None:
        return "-"
    m = ranking_metric(row)
    return f"{format_value(m, row.top1_mean)} ± {format_value(m, row.top1_std)} (n={row.n_seeds})"


def _pp(metric: Metric, x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return format_delta(metric, x) if signed else format_value(metric, x)


VERDICT_MARK = {"pass": "pass", "new": "new (fairness only)", "regression": "REGRESSION", "unfair": "UNFAIR"}
HEADERS = [
    "protocol",
    "method",
    "sparsity",
    "reference top-1 %",
    "submitted top-1 %",
    "Δ (pp)",
    "tolerance / detects (pp)",
    "verdict",
    "why",
]  # classification's: headers()


def _metrics(report: CheckReport) -> list[Metric]:
    """The ranking metrics of a report's rows, in order (classification's when it has none)."""
    tasks = dict.fromkeys(i.submitted.task for i in report.items) or {DEFAULT_TASK: None}
    return [ranking_metric(t) for t in tasks]


def headers(report: CheckReport) -> list[str]:
    """HEADERS, named for the metrics of the report's rows."""
    metrics = _metrics(report)
    value = " / ".join(column(m) for m in metrics)
    units = f" ({' / '.join(unit(m) or word(m) for m in metrics)})" if any(unit(m) for m in metrics) else ""
    heads = {
        "reference top-1 %": f"reference {value}",
        "submitted top-1 %": f"submitted {value}",
        "Δ (pp)": f"Δ{units}",
        "tolerance / detects (pp)": f"tolerance / detects{units}",
    }
    return [heads.get(h, h) for h in HEADERS]


def _judged(report: CheckReport) -> str:
    """How the report's rows are judged, and its floor and sigmas in the metrics' units."""
    metrics = _metrics(report)
    units = " / ".join(unit(m) or unit_words(m) for m in metrics)
    return " ".join(tolerance_definition(m) for m in metrics) + f" floor {100 * report.floor:.2f} {units}"


def _cells(i: CheckItem) -> list[str]:
    m = ranking_metric(i.submitted)
    return [
        i.protocol,
        i.method,
        f"{i.sparsity:g}",
        _acc(i.reference),
        _acc(i.submitted),
        _pp(m, i.delta, signed=True),
        f"{_pp(m, i.tolerance)} / {_pp(m, i.detectable)}" if i.tolerance is not None else "-",
        VERDICT_MARK[i.verdict],
        "; ".join(i.reasons) or "-",
    ]


def _headline(report: CheckReport) -> str:
    regressions = sum(i.verdict == "regression" for i in report.items)
    unfair = sum(i.verdict == "unfair" for i in report.items) + len(report.problems)
    if report.passed:
        return f"PASS: {len(report.items)} result row(s) checked, no regression, no fairness problem"
    return f"FAIL: {regressions} regression(s), {unfair} fairness problem(s)"


def check_table(report: CheckReport) -> Table:
    table = Table(
        title=f"prunebench check: {report.submitted_files} submitted result(s) against {report.reference_files} "
        "reference result(s)",
        caption=_judged(report) + f", sigmas {report.sigmas:g}.",
    )
    for h in headers(report):
        table.add_column(h)
    for item in report.items:
        style = {"regression": "red", "unfair": "red", "new": "cyan"}.get(item.verdict)
        table.add_row(*_cells(item), style=style)
    return table


def check_text(report: CheckReport) -> list[str]:
    """The lines printed under the table: problems, notes, the verdict."""
    lines = [f"fairness: {p}" for p in report.problems]
    lines += [f"note: {n}" for n in report.notes]
    lines.append(_headline(report))
    return lines


def check_markdown(report: CheckReport) -> str:
    """A summary for a pull-request comment or $GITHUB_STEP_SUMMARY."""
    mark = "✅" if report.passed else "❌"
    lines = [
        f"## {mark} prunebench check: {_headline(report)}",
        "",
        f"{report.submitted_files} submitted result file(s) against {report.reference_files} reference file(s).",
        "",
    ]
    if report.items:
        lines.append("| " + " | ".join(headers(report)) + " |")
        lines.append("|" + "|".join("---" for _ in HEADERS) + "|")
        for item in report.items:
            cells = [c.replace("|", "\\|") for c in _cells(item)]
            if item.verdict in ("regression", "unfair"):
                cells[7] = f"**{cells[7]}**"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if report.problems:
        lines += ["### Fairness problems", ""]
        lines += [f"- {p}" for p in report.problems]
        lines.append("")
    if report.notes:
        lines += ["### Notes", ""]
        lines += [f"- {n}" for n in report.notes]
        lines.append("")
    lines += [
        "<details><summary>How this is judged</summary>",
        "",
        " ".join(tolerance_definition(m) for m in _metrics(report))
        + f" Here floor = {100 * report.floor:.2f} {' / '.join(unit(m) or unit_words(m) for m in _metrics(report))}"
        + f" and sigmas = {report.sigmas:g}. Any fairness problem (protocol "
        "hash mismatch, budget violation, sparsity off target, failed job, another dense checkpoint) fails the check. "
        "A method without reference results is checked for fairness only.",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)
