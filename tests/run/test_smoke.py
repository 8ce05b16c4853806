"""`run --limit N`, a smoke run (lm-evaluation-harness's convention, for testing only): every stage trains N
batches and every evaluation runs N, in a run directory and with dense models of its own; its records say so,
and neither `compare` nor `check` ranks them."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.results import load_records
from prunebench.testing import TINY


@pytest.mark.needs_confinement
def test_a_smoke_run_is_quick_marked_and_never_ranked(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY)
    cache, results = tmp_path / "cache", tmp_path / "r"
    common = ["--results", results, "--cache", cache, "--device", "cpu", "--sparsities", "0.5"]
    done = cli("run", protocol, "data.eval_batch_size=100", *common, "--limit", "2")
    assert done.code == 0, done.err
    (run_dir,) = results.iterdir()
    assert run_dir.name.endswith("-limit2")
    records = [x.record for x in load_records([run_dir], curves=True)]
    assert len(records) == 3
    for r in records:
        assert r.limit == 2 and r.status == "ok", r.reasons  # no budget violation for the batches it skipped
        assert r.ledger.base.steps == 2 and r.ledger.retrain.steps == 2  # TINY's epochs have 12 steps each
        assert [c.stage for c in r.curves] == ["retrain"] and r.curves[0].epoch == 1
        assert r.metrics is not None and r.metrics.test_examples == 200  # 2 batches of 100 of the 360
    assert len(list((cache / "base").glob("*.pt"))) == 1  # its own dense model, trained on 2 batches

    board = cli("compare", results, "--format", "markdown")
    assert board.code == 0
    assert board.out.count("a smoke run (--limit 2: 2 batches a stage), for testing only") == 3
    rows = [line.split(" | ") for line in board.out.splitlines() if line.startswith("| ") and "magnitude" in line]
    rows += [line.split(" | ") for line in board.out.splitlines() if line.startswith("| ") and "| random |" in line]
    # The audit's rows (a smoke run; a seed at chance, which 2 batches of training may well be) are not the board's.
    method_rows = [cells for cells in rows if cells[2] == "0.5" and cells[0] == "| -"]
    assert any(cells[0] == "| smoke_run" for cells in rows)
    assert len(method_rows) == 3  # every method's row is there, unranked ("-"): a ranked one would be missing here

    real = cli("run", protocol, *common, "--methods", "global_magnitude")
    assert real.code == 0, real.err
    assert len(list(results.iterdir())) == 2 and len(list((cache / "base").glob("*.pt"))) == 2  # never mixed
    gate = cli("check", run_dir, "--reference", results)
    assert gate.code == 1 and "smoke run" in gate.out + gate.err


@pytest.mark.slow
def test_the_shipped_swap_protocol_runs_end_to_end_as_a_smoke_run(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = Path(__file__).resolve().parents[2] / "protocols" / "science_swap.yaml"
    results = tmp_path / "r"
    done = cli("run", protocol, "--results", results, "--cache", tmp_path / "c", "--device", "cpu", "--limit", "2")
    assert done.code == 0, done.err
    records = [x.record for x in load_records([results])]
    assert len(records) == 12  # 3 seeds x (2 own + 2 under the other's recipe)
    assert {r.variant.name if r.variant else None for r in records} == {None, "recipe-magnitude"}
    swap = cli("swap", results)
    assert swap.code == 0 and "magnitude vs snip" in swap.out
