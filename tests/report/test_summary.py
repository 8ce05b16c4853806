"""The table that closes a run: the pivot of what `compare` ranks (status ok), the rest flagged."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from prunebench.report.summary import PlanRow, plan_table, run_summary
from prunebench.testing import make_protocol, make_record, write_run


def text_of(table: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_violations_are_flagged_not_averaged(tmp_path: Path) -> None:
    proto = make_protocol()
    records = [
        make_record(proto, "a", 0.9, 0, 0.90),
        make_record(proto, "a", 0.9, 1, 0.80),
        make_record(proto, "a", 0.9, 2, 0.99, status="violation", reasons=("over budget",)),
    ]
    text = text_of(run_summary(write_run(tmp_path, proto, records)))
    assert "85.00 ± 7.07 (!audit)" in text  # the violation kept out of the mean, flagged


def test_the_plan_table_shows_plain_rows_of_jobs(tmp_path: Path) -> None:
    """The plan is drawn from plain data (no runner): each job's line, each seed's dense model, the budget."""
    proto = make_protocol()
    run_dir = tmp_path / "tiny-run"
    rows = [
        PlanRow("a", None, 0.9, 0, "done", run_dir / "a" / "sparsity-0.9_seed-0.json"),
        PlanRow("b", "lr-0.3", 0.5, 1, "re-run (--force)", run_dir / "b" / "lr-0.3" / "sparsity-0.5_seed-1.json"),
    ]
    text = text_of(plan_table(proto, rows, run_dir, {0: True, 1: False, 2: True}))
    assert f"Plan of tiny (hash {proto.hash[:10]}, setup {proto.comparison}) -> {run_dir}" in text
    lines = [" ".join(line.replace("│", " ").split()) for line in text.splitlines()]
    assert f"1 a 0.9 0 done {run_dir / 'a' / 'sparsity-0.9_seed-0.json'}" in lines
    assert f"2 b @ lr-0.3 0.5 1 re-run (--force) {rows[1].path}" in lines
    caption = " ".join(text.split())
    assert "dense base models: seed 0 cached, seed 1 to train; base 3 epochs, pruning budget" in caption
    assert "seed 2" not in caption  # only the seeds of the planned jobs
