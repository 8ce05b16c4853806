"""Effective sparsity, collapse and degenerate accuracy through `prunebench run` and `compare` (docs/analyses.md): a
method that prunes a whole layer of a chain disconnects its network, which the record, the audit and the board say;
global magnitude beside it keeps every layer connected."""

from __future__ import annotations

from pathlib import Path

from prunebench.results import load_records
from prunebench.testing import TINY

FIXTURE = Path(__file__).resolve().parents[1] / "methods" / "fixtures" / "collapses_layer.py"


def test_a_collapsed_layer_is_recorded_audited_and_counted_at_chance(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = TINY.replace("pruning: {sparsities: [0.5, 0.9]}", "pruning: {sparsities: [0.5], effective_margin: 0.1}")
    text = text.replace("  - name: layerwise_magnitude\n  - name: random\n", f"  - name: {FIXTURE}:CollapsesLayer\n")
    assert "CollapsesLayer" in text and "effective_margin" in text
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(text + "evaluation: {chance_margin: 0.05}\n")
    results = tmp_path / "r"
    done = cli("run", protocol, "--results", results, "--cache", tmp_path / "c", "--device", "cpu")
    assert done.code == 0, done.err
    records = {x.record.method.label: x.record for x in load_records([results])}

    collapsed = records["collapses_layer"]
    assert collapsed.status in ("ok", "violation") and "sparsity" not in " ".join(collapsed.reasons)
    s, m = collapsed.sparsity, collapsed.metrics
    assert s is not None and m is not None and s.connectivity is not None
    assert abs(s.achieved - 0.5) < 1e-3 and s.effective == 1.0 and s.effective_margin == 0.1
    assert s.connectivity.collapsed == ["features.1.0.weight"] and s.connectivity.disconnected is True
    assert all(layer.effective_zeros == layer.numel for layer in s.per_layer.values())
    assert m.chance == 0.1 and m.degenerate is True and m.test_top1 <= 0.15

    magnitude = records["global_magnitude"]
    s, m = magnitude.sparsity, magnitude.metrics
    assert s is not None and m is not None and s.connectivity is not None
    assert s.connectivity.disconnected is False and s.connectivity.collapsed == [] and m.degenerate is False
    assert s.achieved <= s.effective < s.achieved + 0.1  # type: ignore[operator]
    assert all(layer.zeros <= layer.effective_zeros <= layer.numel for layer in s.per_layer.values())  # type: ignore[operator]

    board = cli("compare", results, "--format", "markdown")
    assert board.code == 0, board.err
    audit = [line.split(" | ") for line in board.out.splitlines() if "| collapses_layer | 0.5 |" in line]
    assert {cells[0].removeprefix("| ") for cells in audit} >= {
        "collapsed",
        "disconnected",
        "effective_sparsity",
        "degenerate",
    }
    assert not any(line.split(" | ")[1] == "global_magnitude" for line in board.out.splitlines() if ".json" in line)
    header = next(line for line in board.out.splitlines() if line.startswith("| rank |")).split(" | ")
    row = next(line for line in board.out.splitlines() if line.startswith("| ") and " collapses_layer | 0.5 " in line)
    cells = dict(zip(header, row.split(" | "), strict=True))
    assert cells["n"] == "1/1 (1 at chance)" and cells["effective"] == "1.0000"
    assert "at chance: seeds whose test top-1 is within" in board.out
