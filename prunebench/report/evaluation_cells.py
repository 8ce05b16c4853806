"""The cells of a board's optional evaluations (`compare --show robustness,calibration,forgetting`): headers, the
human-readable cells every format that people read shows, the columns JSON and CSV export, and their caption.
Accuracies and calibration errors are percentages here, differences percentage points; NLL is in nats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prunebench.report.evaluations import EvaluationRow
from prunebench.report.stats import ALPHA, MIN_SEEDS, Paired

HEADERS = {
    "robustness": ["corr. top-1 %", "Δ corr. (pp)", "Δ corr. - Δ clean (pp)", "most hurt corruption (pp)"],
    "calibration": ["ECE %", "Δ ECE (pp)", "NLL", "Δ NLL"],
    "forgetting": ["agree %", "PIEs", "top-1 on PIEs % (dense / pruned)", "worst class (pp)", "classes changed"],
}

CAPTIONS = {
    "robustness": "corr. top-1: mean test top-1 over every corruption and severity (Hendrycks & Dietterich 2019's "
    "corruptions generated from the test split: not CIFAR-10-C's numbers), mean over seeds; Δ corr.: minus the dense "
    "model's, paired by seed (95% t-interval); Δ corr. - Δ clean: what corruption takes beyond the clean test top-1's "
    "change, paired by seed; most hurt: the corruption whose accuracy fell most against the dense model's.",
    "calibration": "ECE: expected calibration error, 15 equal-width confidence bins (Guo et al. 2017); NLL: negative "
    "log-likelihood per test example (the test loss); means over seeds, Δ minus the dense model's, paired by seed.",
    "forgetting": "agree: share of test examples on which the pruned model predicts what its dense model does; PIEs: "
    "pruning-identified exemplars (Hooker et al. 2019), test examples whose modal prediction over the row's seeds "
    "differs from the dense models' (ties to the lowest class), with both populations' top-1 on them; worst class: "
    "the class whose accuracy fell most (mean over seeds); classes changed: classes whose change differs from the "
    f"overall change (paired t-tests over seeds, Holm-corrected, alpha {ALPHA:g}; needs {MIN_SEEDS} seeds).",
}


def evaluation_headers(show: Sequence[str]) -> list[str]:
    return ["method", "sparsity"] + [h for s in show for h in HEADERS[s]]


def evaluation_caption(show: Sequence[str]) -> str:
    return " ".join(CAPTIONS[s] for s in show)


def evaluation_cells(row: EvaluationRow, show: Sequence[str], target_label: str = "-") -> list[str]:
    """The row's cells under `evaluation_headers(show)`; `target_label`: its sparsity as the board writes it."""
    dense = row.kind == "dense"
    cells = [row.method, "0" if dense else target_label]
    for s in show:
        if s == "robustness":
            cells += [_pct(row.corruption_top1), "-" if dense else _delta(row.corruption_delta)]
            cells += ["-" if dense else _delta(row.corruption_excess), _most_hurt(row)]
        elif s == "calibration":
            cells += [_pct(row.ece), "-" if dense else _delta(row.ece_delta)]
            cells += [_num(row.nll, 3), "-" if dense else _delta(row.nll_delta, 1.0, 3)]
        else:
            cells += _forgetting(row) if not dense else ["-"] * len(HEADERS["forgetting"])
    return cells


def evaluation_columns(row: EvaluationRow, show: Sequence[str]) -> dict[str, Any]:
    """The row's evaluations as JSON and CSV export them (fractions, as records hold them)."""
    out: dict[str, Any] = {}
    if "robustness" in show:
        out |= {"corruption_top1": row.corruption_top1, **_paired("corruption_delta", row.corruption_delta)}
        out |= _paired("corruption_excess", row.corruption_excess)
        out |= {
            "corruption_top1_by_name": row.corruption_by_name,
            "corruption_delta_by_name": row.corruption_delta_by_name,
        }
    if "calibration" in show:
        out |= {
            "ece": row.ece,
            **_paired("ece_delta", row.ece_delta),
            "nll": row.nll,
            **_paired("nll_delta", row.nll_delta),
        }
    if "forgetting" in show:
        out |= {
            "agreement": row.agreement,
            "pies": row.pies,
            "test_examples": row.test_examples,
            "pie_top1_dense": row.pie_top1_dense,
            "pie_top1_pruned": row.pie_top1_pruned,
            "class_delta": row.class_delta,
            "changed_classes": row.changed_classes,
            "forgetting_note": row.forgetting_note,
        }
    return {k: _finite(v) for k, v in out.items()}


def _finite(v: Any) -> Any:
    """None for a float that is not finite (JSON has none), in lists and mappings too."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


def _forgetting(row: EvaluationRow) -> list[str]:
    if row.agreement is None:
        return ["-"] * len(HEADERS["forgetting"])
    pies = (
        "n/a"
        if row.pies is None or not row.test_examples
        else f"{row.pies} ({100 * row.pies / row.test_examples:.1f}%)"
    )
    on_pies = "-" if row.pie_top1_dense is None else f"{_pct(row.pie_top1_dense, 0)} / {_pct(row.pie_top1_pruned, 0)}"
    known = [(d, c) for c, d in enumerate(row.class_delta) if d is not None]
    worst = "-"
    if known:
        d, c = min(known)
        worst = f"{c}: {100 * d:+.1f}"
    classes = f"{row.changed_classes}/{len(row.class_delta)}" if row.changed_classes is not None else "n/a"
    return [_pct(row.agreement), pies if row.forgetting_note is None else "n/a", on_pies, worst, classes]


def _most_hurt(row: EvaluationRow) -> str:
    if row.kind == "dense" or not row.corruption_delta_by_name:
        return "-"
    name, delta = min(row.corruption_delta_by_name.items(), key=lambda kv: (kv[1], kv[0]))
    return f"{name} {100 * delta:+.2f}"


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def _num(x: float | None, digits: int) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _delta(d: Paired | None, k: float = 100.0, digits: int = 2) -> str:
    """A paired difference times `k` (100: percentage points), signed, with its 95% interval where there is one."""
    if d is None or d.mean is None:
        return "-"
    interval = "" if d.low is None or d.high is None else f" [{k * d.low:+.{digits}f}, {k * d.high:+.{digits}f}]"
    return f"{k * d.mean:+.{digits}f}{interval}"


def _paired(name: str, d: Paired | None) -> dict[str, float | None]:
    if d is None:
        return {name: None, f"{name}_ci_low": None, f"{name}_ci_high": None}
    return {name: d.mean, f"{name}_ci_low": d.low, f"{name}_ci_high": d.high}
