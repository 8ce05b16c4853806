"""Machine-readable leaderboards: JSON (every column, the audit, what each table is) and CSV.

A board of another task than classification names its ranked metric's columns after it (`perplexity_mean`, ...:
prunebench.report.row.columns_for) and says which metric it is; a classification board's are as they always were.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from typing import Any

from prunebench.report.audit import AUDIT_KINDS
from prunebench.report.board import Comparison, Leaderboard
from prunebench.report.cells import CAPTION, TIED_DEFINITION, caption
from prunebench.report.evaluation_cells import evaluation_caption, evaluation_columns
from prunebench.report.metric import DEFAULT_TASK, ranking_metric
from prunebench.report.row import COLUMNS, Row, columns_for, exported_name
from prunebench.report.stats import CONFIDENCE


def plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def row_dict(r: Row) -> dict[str, Any]:
    """A row's exported columns (columns_for its task)."""
    out = {exported_name(k, r.task): plain(v) for k, v in asdict(r).items()}
    return {c: out[c] for c in columns_for(r.task)}


def _ranking(task: str) -> dict[str, Any]:
    """What ranks a board of another task than classification (nothing for a classification board)."""
    if task == DEFAULT_TASK:
        return {}
    metric = ranking_metric(task)
    return {"task": task, "ranking": {**asdict(metric), "caption": caption(metric)}}


def _evaluations(b: Leaderboard) -> dict[str, Any]:
    """A board's optional evaluations (`compare --show`), one per row in the rows' order; nothing when none are."""
    if not b.evaluations:
        return {}
    rows = [
        {"method": e.method, "sparsity_target": e.sparsity_target, "n_seeds": e.n_seeds}
        | evaluation_columns(e, b.shown)
        for e in b.evaluations
    ]
    return {"evaluations": {"shown": list(b.shown), "caption": evaluation_caption(b.shown), "rows": rows}}


def to_json(c: Comparison) -> str:
    """Every column of every row, the audit and what each table is (another task's: its metric and caption, in
    `ranking`); `pd.DataFrame(doc["rows"])`."""
    doc = {
        "prunebench_leaderboard": 1,
        "confidence": CONFIDENCE,
        "definitions": {"caption": CAPTION, "tied": TIED_DEFINITION, "audit_kinds": AUDIT_KINDS},
        "notices": c.notices,
        "tables": [
            {
                "protocol": b.protocol,
                "setup_hash": b.setup_hash,
                "protocol_hashes": b.protocol_hashes,
                "mixed_protocols": b.mixed,
                "retrain_variant": b.variant,
                "expected_seeds": b.expected_seeds,
                "title": b.title,
                "notes": b.notes,
                "dense_checkpoints": {str(k): v for k, v in b.dense_checkpoints.items()},
                "n_issues": len(b.issues),
                **_ranking(b.task),
                **_evaluations(b),
            }
            for b in c.boards
        ],
        "rows": [row_dict(r) for b in c.boards for r in b.rows],
        "audit": [asdict(i) for b in c.boards for i in b.issues],
    }
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def to_csv(c: Comparison) -> str:
    """One line per row with every column (lists joined by ' | '), for pandas.read_csv."""
    buffer = io.StringIO()
    columns = list(dict.fromkeys(col for b in c.boards for col in columns_for(b.task))) or list(COLUMNS)
    # The optional evaluations' columns (`compare --show`) after every board's own.
    columns += dict.fromkeys(k for b in c.boards for e in b.evaluations[:1] for k in evaluation_columns(e, b.shown))
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for b in c.boards:
        extra = [evaluation_columns(e, b.shown) for e in b.evaluations] or [{} for _ in b.rows]
        for r, more in zip(b.rows, extra, strict=True):
            writer.writerow({k: _csv_cell(v) for k, v in (row_dict(r) | more).items()})
    return buffer.getvalue()


def _csv_cell(v: Any) -> Any:
    """Lists joined by ' | ', None empty."""
    return " | ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
