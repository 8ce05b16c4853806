"""Boards of retraining variants: a leaderboard per variant, and the validation-selected recipe.

`variant_boards` is called by `compare` for every protocol whose results include variants. It never touches
the protocol's own board: each variant's results are a board of their own (ranked among themselves, titled
and marked as the variant), and a sweep adds one more board per extension level, where each method stands
at the candidate recipe with the best validation accuracy. The structure of the variants (which jobs stand
for which, the sweep's candidates, the swap's pairs) comes from the protocol the run directory's
protocol.json holds; records copied away from it are placed by their recorded variant only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from prunebench.protocol import VariantPlan, content_hash, plan_from_content
from prunebench.report.audit import Entry, same_target
from prunebench.report.board import Leaderboard, build_board
from prunebench.report.metric import DEFAULT_TASK
from prunebench.report.recipe_selection import Selection, select, selection_rule, validation_accuracies
from prunebench.report.sanity import declared_for, sanity_of


def group_plan(group: Sequence[Entry]) -> VariantPlan | None:
    """The variants of the protocol most of a group's results ran under (None: no protocol.json found)."""
    plans: dict[str, VariantPlan | None] = {}
    counts: Counter[str] = Counter()
    for e in group:
        if e.info.hash not in plans:
            plans[e.info.hash] = plan_from_content(e.info.content)
        if plans[e.info.hash]:
            counts[e.info.hash] += 1
    if counts:
        return plans[counts.most_common(1)[0][0]]
    return next((p for p in plans.values() if p is not None), None)


def variant_boards(
    name: str,
    setup: str,
    group: Sequence[Entry],
    mixed: bool,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
) -> tuple[list[Leaderboard], list[str]]:
    """The boards of a protocol's retraining variants, and notices about results they cannot place."""
    by_variant: dict[str | None, list[Entry]] = defaultdict(list)
    for e in group:
        by_variant[e.variant].append(e)
    plan = group_plan(group)
    notices: list[str] = []
    boards: list[Leaderboard] = []
    known = set(plan.names) if plan else set()
    unknown = sorted(k for k in by_variant if k is not None and k not in known)
    if unknown:
        notices.append(
            f"protocol {name!r}: results of retraining variant(s) {', '.join(unknown)} without the protocol.json that "
            "declares them: each is shown as its own board, without validation selection or swap test"
        )
    if plan:
        table = sanity_of(group)
        for v in plan.variants:
            declared = list(v.methods)
            if v.kind == "sanity":  # only the methods it applies to (prunebench.report.sanity)
                declared = declared_for(v.name, v.methods, table, {e.label for e in by_variant.get(v.name, [])})
            entries = [e.copy() for m in declared for e in by_variant.get(v.runs_as[m], []) if e.label == m]
            board = build_board(
                name,
                _setup(setup, v.name, v.retrain.model_dump(mode="json")),
                entries,
                mixed,
                methods,
                sparsities,
                declared=declared,
            )
            board.variant_kind = v.kind
            boards.append(_mark(board, v.name, f"{v.name}: {v.description}"))
        for level, candidates in plan.sweep.items():
            boards.append(_selected_board(name, setup, by_variant, plan, level, candidates, mixed, methods, sparsities))
    for vname in unknown:
        entries = [e.copy() for e in by_variant[vname]]
        boards.append(
            _mark(
                build_board(name, _setup(setup, vname, None), entries, mixed, methods, sparsities, declared=[]),
                vname,
                vname,
            )
        )
    return boards, notices


def _setup(setup: str, variant: str, recipe: Any) -> str:
    # A variant's board is a setup of its own (the protocol's, its recipe in place of `retrain`): the check
    # never matches it with the protocol's own board.
    return content_hash({"setup": setup, "variant": variant, "recipe": recipe})


def _mark(board: Leaderboard, variant: str, title: str) -> Leaderboard:
    board.variant, board.variant_title = variant, title
    for row in board.rows:
        row.retrain_variant = variant
    return board


def _selected_board(
    name: str,
    setup: str,
    by_variant: dict[str | None, list[Entry]],
    plan: VariantPlan,
    level: int,
    candidates: Sequence[str],
    mixed: bool,
    methods: Sequence[str] | None,
    sparsities: Sequence[float] | None,
) -> Leaderboard:
    labels = list(plan.get(candidates[-1]).methods)  # sweep candidates run for every method
    targets = sorted({e.target for es in by_variant.values() for e in es if e.target is not None})
    chosen: list[Entry] = []
    selections: dict[tuple[str, float], Selection] = {}
    for label in labels:
        for target in targets:
            pool: dict[str, list[Entry]] = {}
            for c in candidates:
                job = plan.job_variant(c, label)
                group = [e for e in by_variant.get(job, []) if e.label == label and same_target(e.target, target)]
                pool[c] = sorted(group, key=lambda e: str(e.path))
            task = next((e.record.task for es in pool.values() for e in es), DEFAULT_TASK)
            selection = select({c: validation_accuracies(e.record for e in es) for c, es in pool.items()}, task)
            if selection is not None:
                selections[(label, target)] = selection
                chosen.extend(e.copy() for e in pool[selection.chosen])
    variant = "selected" if level == 0 else f"selected_ext-{level}"
    extended = f", retraining extended by {level} epochs" if level else ""
    board = build_board(
        name,
        _setup(setup, variant, list(candidates)),
        chosen,
        mixed,
        methods,
        sparsities,
        declared=labels,
    )
    _mark(board, variant, f"validation-selected recipe among {', '.join(candidates)}{extended}")
    board.notes.append("VALIDATION-SELECTED RETRAINING RECIPE: " + selection_rule(board.metric))
    for row in board.rows:
        if row.kind != "method" or row.sparsity_target is None:
            continue
        sel = next(
            (s for (lab, t), s in selections.items() if lab == row.method and same_target(t, row.sparsity_target)),
            None,
        )
        if sel is not None:
            row.selected_variant = sel.chosen
            row.selection = sel.describe()
    return board
