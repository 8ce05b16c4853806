"""The swap test of Wang et al. 2023 (§5), from result records.

For methods A and B with own retraining recipes FT_A and FT_B: the paired per-seed differences A - B under
FT_A and under FT_B, A+FT_A - B+FT_B (how papers compare, each method with its own recipe), and the
interaction (A - B under FT_A) - (A - B under FT_B), each with its 95% t-interval; the four runs of a seed
must share one dense checkpoint, or the seed is left out. The numbers are the ranked metric's (test top-1; a causal
LM's perplexity, where A wins by being lower: prunebench.report.metric).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rich.table import Table

from prunebench.console import text_console
from prunebench.report.audit import Entry, same_target, target_of
from prunebench.report.cells import interval
from prunebench.report.filters import passes_filters
from prunebench.report.load import ProtocolIndex
from prunebench.report.metric import DEFAULT_TASK, format_delta, ranked_value, ranking_metric, unit_words
from prunebench.report.render.markdown import md_escape
from prunebench.report.stats import CONFIDENCE, Paired, paired_difference
from prunebench.report.variants import group_plan
from prunebench.results import Loaded

if TYPE_CHECKING:
    from prunebench.tasks import Metric


@dataclass
class SwapResult:
    """The swap test of methods a and b at one sparsity. Differences are a - b in the ranked metric (accuracy:
    fractions, pp in tables; perplexity as it is)."""

    protocol: str
    setup_hash: str
    sparsity: float
    a: str
    b: str
    recipe_a: str  # the variant holding a's own recipe (FT_A)
    recipe_b: str
    seeds: list[int]
    under_a: Paired  # A+FT_A - B+FT_A
    under_b: Paired  # A+FT_B - B+FT_B
    own: Paired  # A+FT_A - B+FT_B: each method with its own recipe, as papers compare
    interaction: Paired  # (A+FT_A - B+FT_A) - (A+FT_B - B+FT_B)
    winner_a: str  # a, b, "tie" or "n/a", under FT_A
    winner_b: str
    verdict: str
    interaction_verdict: str
    accuracy: dict[str, dict[int, float]] = field(default_factory=dict)  # "A+FT_A" -> seed -> ranked value
    excluded: list[str] = field(default_factory=list)  # seeds left out, and why
    task: str = DEFAULT_TASK  # whose ranked metric the numbers are (written to JSON for another task only)


@dataclass
class SwapReport:
    results: list[SwapResult]
    notices: list[str]


def winner(diff: Paired, a: str, b: str, higher_is_better: bool = True) -> str:
    """Who wins a paired comparison a - b at 95%: a, b, "tie" (the interval holds 0) or "n/a" (< 2 seeds); a wins
    by being higher, or lower where less is better (perplexity)."""
    zero = diff.contains_zero()
    if zero is None or diff.mean is None:
        return "n/a"
    if zero:
        return "tie"
    return a if (diff.mean > 0) == higher_is_better else b


def swap_verdict(a: str, b: str, winner_a: str, winner_b: str) -> str:
    """The swap test's verdict from who wins under each recipe (FT_A, FT_B)."""
    if "n/a" in (winner_a, winner_b):
        return "n/a: fewer than 2 seeds have all four runs"
    if winner_a == winner_b == "tie":
        return "tied under both recipes"
    if winner_a == winner_b:
        return f"{winner_a} wins under both recipes"
    if {winner_a, winner_b} == {a, b}:
        whose = "its own" if winner_a == a else "the other's"
        return (
            f"RANKING FLIPS: {winner_a} wins under FT_{a}, {winner_b} under FT_{b} (each method wins with {whose} "
            "recipe: the recipe, not the method, decides)"
        )
    w, under, other = (winner_a, a, b) if winner_a != "tie" else (winner_b, b, a)
    return f"{w} wins under FT_{under} only; tied under FT_{other}"


def interaction_verdict(interaction: Paired) -> str:
    zero = interaction.contains_zero()
    if zero is None:
        return "n/a"
    return "no significant interaction" if zero else "significant method x recipe interaction"


def swap_result(
    protocol: str,
    setup: str,
    sparsity: float,
    a: str,
    b: str,
    recipe_a: str,
    recipe_b: str,
    runs: dict[str, dict[int, tuple[float, str]]],
    excluded: list[str] | None = None,
    task: str = DEFAULT_TASK,
) -> SwapResult:
    """The swap test from the four runs' (ranked value, dense checkpoint hash) per seed, keyed "A+FT_A",
    "A+FT_B", "B+FT_A", "B+FT_B", of results of `task`. A seed enters only when all four ran from one dense
    checkpoint."""
    keys = ("A+FT_A", "B+FT_A", "A+FT_B", "B+FT_B")
    excluded = list(excluded or [])
    seeds = []
    for seed in sorted(set.union(*(set(runs.get(k, {})) for k in keys))):
        lacking = [k for k in keys if seed not in runs.get(k, {})]
        if lacking:
            excluded.append(f"seed {seed}: no usable result of {', '.join(_named(k, a, b) for k in lacking)}")
            continue
        checkpoints = {runs[k][seed][1] for k in keys}
        if len(checkpoints) > 1:
            excluded.append(f"seed {seed}: the four runs started from {len(checkpoints)} different dense checkpoints")
            continue
        seeds.append(seed)
    acc = {k: {s: runs[k][s][0] for s in seeds} for k in keys}
    under_a = paired_difference(acc["A+FT_A"], acc["B+FT_A"])
    under_b = paired_difference(acc["A+FT_B"], acc["B+FT_B"])
    own = paired_difference(acc["A+FT_A"], acc["B+FT_B"])
    d_a = {s: acc["A+FT_A"][s] - acc["B+FT_A"][s] for s in seeds}
    d_b = {s: acc["A+FT_B"][s] - acc["B+FT_B"][s] for s in seeds}
    inter = paired_difference(d_a, d_b)
    up = ranking_metric(task).higher_is_better
    wa, wb = winner(under_a, a, b, up), winner(under_b, a, b, up)
    return SwapResult(
        protocol=protocol,
        setup_hash=setup,
        sparsity=sparsity,
        a=a,
        b=b,
        recipe_a=recipe_a,
        recipe_b=recipe_b,
        seeds=seeds,
        under_a=under_a,
        under_b=under_b,
        own=own,
        interaction=inter,
        winner_a=wa,
        winner_b=wb,
        verdict=swap_verdict(a, b, wa, wb),
        interaction_verdict=interaction_verdict(inter),
        accuracy={_named(k, a, b): v for k, v in acc.items()},
        excluded=excluded,
        task=task,
    )


def _named(key: str, a: str, b: str) -> str:
    m, r = key.split("+FT_")
    return f"{a if m == 'A' else b}+FT_{a if r == 'A' else b}"


def swap_report(
    loaded: Sequence[Loaded],
    *,
    protocols: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    index: ProtocolIndex | None = None,
) -> SwapReport:
    """The swap test of every pair of every protocol among the records that declares one."""
    index = index or ProtocolIndex()
    entries = []
    for item in loaded:
        r = item.record
        if passes_filters(r, protocols=protocols, sparsities=sparsities):
            entries.append(Entry(item.path, r, index.info(r.protocol, item.path), target_of(r)))
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for e in entries:  # a second pass: every protocol.json has been seen by now
        e.info = index.resolve(e.info)
        groups[(e.record.protocol.name, e.info.setup_hash)].append(e)
    results: list[SwapResult] = []
    notices: list[str] = []
    for (name, setup), group in sorted(groups.items()):
        plan = group_plan(group)
        if plan is None:
            if any(e.record.variant is not None and e.record.variant.kind == "swap" for e in group):
                notices.append(f"protocol {name!r}: swap-test results without the protocol.json that declares them")
            continue
        by_variant: dict[str | None, list[Entry]] = defaultdict(list)
        for e in group:
            by_variant[e.variant].append(e)
        targets = sorted({e.target for e in group if e.target is not None})
        for a, b in plan.swap_pairs:
            ra, rb = plan.swap_recipes[a], plan.swap_recipes[b]
            for target in targets:
                runs: dict[str, dict[int, tuple[float, str]]] = {}
                excluded: list[str] = []
                for key, method, recipe in (
                    ("A+FT_A", a, ra),
                    ("B+FT_A", b, ra),
                    ("A+FT_B", a, rb),
                    ("B+FT_B", b, rb),
                ):
                    job = plan.job_variant(recipe, method)
                    found = [
                        e.record
                        for e in sorted(by_variant.get(job, []), key=lambda e: str(e.path))
                        if e.label == method and same_target(e.target, target)
                    ]
                    runs[key] = _usable(found, _named(key, a, b), excluded)
                task = group[0].record.task
                results.append(swap_result(name, setup, target, a, b, ra, rb, runs, excluded, task))
    return SwapReport(results, notices)


def _usable(records: Sequence[Any], what: str, excluded: list[str]) -> dict[int, tuple[float, str]]:
    """Per seed, (ranked value, dense checkpoint) of the ok records; the others are named in `excluded`."""
    out: dict[int, tuple[float, str]] = {}
    conflicting: set[int] = set()
    for r in records:
        if r.status != "ok" or r.metrics is None or r.base is None:
            excluded.append(f"{what} seed {r.seed}: {r.status} ({'; '.join(r.reasons) or 'incomplete record'})")
            continue
        value = (ranked_value(r), r.base.checkpoint_sha256)
        if r.seed in out and out[r.seed] != value:
            conflicting.add(r.seed)
        out.setdefault(r.seed, value)
    for seed in sorted(conflicting):
        excluded.append(f"{what} seed {seed}: conflicting results of one job")
        del out[seed]
    return out


# ---- rendering ---------------------------------------------------------------------------------------
SWAP_FORMATS = ("rich", "markdown", "json")  # what swap_render writes


def _swap_caption(units: str, above: str, below: str) -> str:
    return (
        f"Swap test (Wang et al. 2023, §5). Differences A - B in {units}, paired by seed over the "
        "seeds where all four runs (A+FT_A, B+FT_A, A+FT_B, B+FT_B) exist and share one dense checkpoint, with their "
        f"95% t-interval and p-value. A wins under a recipe when the interval lies {above} 0, B when {below}, tie "
        "when it holds 0. own recipes: A+FT_A - B+FT_B, the comparison papers usually make. interaction: (A - B "
        "under FT_A) - (A - B under FT_B); significant when its interval excludes 0."
    )


SWAP_CAPTION = _swap_caption("test top-1 percentage points", "above", "below")  # classification's


def swap_caption(tasks: Sequence[str]) -> str:
    """The caption of swap results of `tasks` (SWAP_CAPTION for classification's alone)."""
    captions = []
    for task in dict.fromkeys(tasks or [DEFAULT_TASK]):
        metric = ranking_metric(task)
        units = f"test top-1 {unit_words(metric)}" if metric.percent else unit_words(metric)
        above, below = ("above", "below") if metric.higher_is_better else ("below", "above")
        captions.append(_swap_caption(units, above, below))
    return " ".join(captions)


SWAP_HEADERS = [
    "protocol",
    "sparsity",
    "A vs B",
    "A - B under FT_A",
    "A - B under FT_B",
    "own recipes",
    "interaction",
    "n",
    "verdict",
]


def _diff_cell(d: Paired, metric: Metric) -> str:
    if d.mean is None:
        return "n/a"
    p = "" if d.p is None else f" p={d.p:.3g}"
    return f"{format_delta(metric, d.mean)} {interval(d.low, d.high, True, metric=metric)}{p}"


def swap_cells(r: SwapResult) -> list[str]:
    metric = ranking_metric(r.task)
    return [
        r.protocol,
        f"{r.sparsity:g}",
        f"{r.a} vs {r.b}",
        _diff_cell(r.under_a, metric),
        _diff_cell(r.under_b, metric),
        _diff_cell(r.own, metric),
        f"{_diff_cell(r.interaction, metric)}: {r.interaction_verdict}",
        str(len(r.seeds)),
        r.verdict + (f" (left out: {'; '.join(r.excluded)})" if r.excluded else ""),
    ]


def _paired_dict(d: Paired) -> dict[str, Any]:
    out = asdict(d)
    out["seeds"] = list(d.seeds)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def swap_json(report: SwapReport) -> str:
    doc = {
        "prunebench_swap": 1,
        "confidence": CONFIDENCE,
        "caption": swap_caption([r.task for r in report.results]),
        "notices": report.notices,
        "results": [
            {
                **{
                    k: v
                    for k, v in asdict(r).items()
                    if k not in ("under_a", "under_b", "own", "interaction")
                    and (k != "task" or v != DEFAULT_TASK)  # a classification result as it always was
                },
                "accuracy": {k: {str(s): v for s, v in acc.items()} for k, acc in r.accuracy.items()},
                "under_a": _paired_dict(r.under_a),
                "under_b": _paired_dict(r.under_b),
                "own": _paired_dict(r.own),
                "interaction": _paired_dict(r.interaction),
            }
            for r in report.results
        ],
    }
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def swap_markdown(report: SwapReport) -> str:
    lines = [f"> **Note:** {md_escape(n)}" for n in report.notices]
    lines += ["| " + " | ".join(SWAP_HEADERS) + " |", "|" + "|".join("---" for _ in SWAP_HEADERS) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in swap_cells(r)) + " |" for r in report.results]
    lines += ["", f"*{swap_caption([r.task for r in report.results])}*", ""]
    return "\n".join(lines)


def swap_table(report: SwapReport) -> Table:
    table = Table(title="Swap test", caption=swap_caption([r.task for r in report.results]))
    for h in SWAP_HEADERS:
        table.add_column(h, justify="right" if h in ("sparsity", "n") else "left")
    for r in report.results:
        style = "bold" if r.verdict.startswith("RANKING FLIPS") else None
        table.add_row(*swap_cells(r), style=style)
    return table


def swap_render(report: SwapReport, fmt: str, width: int = 220) -> str:
    """The swap report in one of SWAP_FORMATS (anything else: the terminal's table)."""
    if fmt == "json":
        return swap_json(report)
    if fmt == "markdown":
        return swap_markdown(report)
    console = text_console(width)
    for notice in report.notices:
        console.print(f"note: {notice}", markup=False, highlight=False)
    console.print(swap_table(report))
    return console.file.getvalue()  # type: ignore[attr-defined]
