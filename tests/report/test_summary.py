"""The table that closes a run: the pivot of what `compare` ranks (status ok), the rest flagged."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from prunebench.report.summary import run_summary
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
