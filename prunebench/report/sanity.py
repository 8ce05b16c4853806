"""The sanity ablations on the board: each ablation's row against its own method, and what that says.

A sanity ablation (prunebench.protocol.sanity) is a board of its own, like a retraining variant; its `Δ vs
protocol` column (prunebench.report.between) is the ablation minus the method itself at the same target, paired by
seed. Here the ranking rule of every board (prunebench.report.stats) judges the pair: a paired t-test over the
seeds both have (at least MIN_SEEDS), its p Holm-corrected across the methods of the ablation's board at that
target; where the corrected p is at least ALPHA the two are tied, and the board says in words that the method is
not distinguishable from its ablated self (and, where the ablation is significantly better, that the method does
worse than it). The ablations that do not apply to a method are named, with why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from prunebench.protocol import VariantPlan
from prunebench.protocol.sanity import DEFINITIONS, MADE_BY, VERDICTS
from prunebench.report.audit import Entry
from prunebench.report.board import Leaderboard
from prunebench.report.cells import interval
from prunebench.report.metric import format_delta, unit
from prunebench.report.row import Row
from prunebench.report.stats import ALPHA, MIN_SEEDS, holm

Table = dict[str, dict[str, str | None]]  # method label -> ablation -> why it does not apply (None: it applies)


def sanity_of(group: Sequence[Entry]) -> Table | None:
    """Which ablation applied to which method, as the runner of a group's results wrote it in protocol.json."""
    return next((e.info.sanity for e in group if e.info.sanity is not None), None)


def declared_for(ablation: str, methods: Sequence[str], table: Table | None, ran: set[str]) -> list[str]:
    """The methods an ablation's board expects results of: those it applies to (`table`); without a table, those
    with results (`ran`)."""
    if table is None:
        return [m for m in methods if m in ran]
    return [m for m in methods if m in table and table[m].get(ablation, "") is None]


def add_sanity(boards: Sequence[Leaderboard], plan: VariantPlan | None, table: Table | None) -> None:
    """Judge every sanity ablation's board of one protocol setup against its methods (the rows' `Δ vs protocol`),
    and say what it shows in the board's notes."""
    if plan is None:
        return
    ablations = set(plan.ablations)
    for board in boards:
        if board.variant not in ablations:
            continue
        ablation = board.variant
        board.variant_kind = "sanity"
        board.notes.append(
            f"SANITY ABLATION {ablation}: {DEFINITIONS[ablation]}; {MADE_BY[ablation]}, and retraining ran the "
            f"protocol's recipe. Δ vs protocol: the ablation minus the method itself, paired "
            f"by seed; tied where the paired t-test's p, Holm-corrected across this board's methods at each target, "
            f"is at least {ALPHA:g} (at least {MIN_SEEDS} seeds)"
        )
        rows = [r for r in board.rows if r.kind == "method"]
        if rows and all(r.vs_recipe not in (None, "protocol") for r in rows):
            board.notes.append("sanity verdicts are made against the protocol's own board only (not --against)")
            continue
        judge(rows)
        tied = [sentence(board, r, ablation) for r in rows if r.sanity_verdict == "tied"]
        if tied:
            board.notes.append(
                "Not distinguishable is no proof of equality: the paired test over these seeds cannot tell the two "
                "apart; the 95% interval (not Holm-adjusted) shows how large a difference it leaves open"
            )
        board.notes.extend(tied)
        board.notes.extend(sentence(board, r, ablation) for r in rows if r.sanity_verdict == "above")
        if table is not None:
            excused = [f"{m} ({table[m][ablation]})" for m in table if table[m].get(ablation) is not None]
            if excused:
                board.notes.append(f"{ablation} does not apply to: " + "; ".join(excused))


def judge(rows: Sequence[Row]) -> None:
    """Each row's verdict against its method: the rule of every board, Holm-corrected per target."""
    by_target: dict[float | None, list[Row]] = defaultdict(list)
    for r in rows:
        if r.vs_recipe == "protocol":
            by_target[r.sparsity_target].append(r)
    for same in by_target.values():
        testable = [r for r in same if (r.vs_recipe_n or 0) >= MIN_SEEDS and r.vs_recipe_p is not None]
        for r, p in zip(testable, holm([r.vs_recipe_p for r in testable]), strict=True):
            r.vs_recipe_p_holm = p
            if p is None or p >= ALPHA:
                r.sanity_verdict = "tied"
            else:
                r.sanity_verdict = "above" if (r.vs_recipe_delta or 0.0) > 0 else "below"
        for r in same:
            if r.sanity_verdict is None:
                r.sanity_verdict = "untested"


def sentence(board: Leaderboard, r: Row, ablation: str) -> str:
    """The words for a method not distinguishable from its ablation (`tied`), or worse than it (`above`)."""
    m = board.metric
    where = board.target_label(r.sparsity_target) if r.sparsity_target is not None else "its target"
    p = "n/a" if r.vs_recipe_p_holm is None else f"{r.vs_recipe_p_holm:.3f}"
    ci = interval(r.vs_recipe_ci_low, r.vs_recipe_ci_high, True, metric=m)
    delta = f"Δ {format_delta(m, r.vs_recipe_delta)} {unit(m)}, 95% CI {ci}, Holm p {p}, n={r.vs_recipe_n}"
    if r.sanity_verdict == "above":
        return f"{r.method} at {where} does worse than {VERDICTS[ablation]} ({delta})"
    return f"{r.method} at {where} is not distinguishable from {VERDICTS[ablation]} ({delta})"
