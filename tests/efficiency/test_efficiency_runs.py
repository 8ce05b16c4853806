"""The `efficiency:` section as a user runs it: every record holds what was measured on which device, a filter
method's model is compacted for its counts and its timing, and the boards show the measured speedup."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.protocol import load_protocol
from prunebench.report.efficiency_plots import pareto_front
from prunebench.results import load_records
from prunebench.testing import TINY

pytestmark = pytest.mark.slow

METHODS = Path(__file__).parents[1] / "methods" / "fixtures"  # the test methods, loaded by path as a user's are

# 2:4 leaves the one-channel first conv dense: 0.4902 of the weights, within a tolerance of 0.01 (not the default).
EFFICIENT = (
    TINY.replace("sparsities: [0.5, 0.9]", "sparsities: [0.5], tolerance: 0.01").replace(
        "  - name: layerwise_magnitude\n  - name: random\n",
        f"  - name: l1_filter\n  - name: nm_magnitude\n  - name: {METHODS / 'claims_filter.py'}:ClaimsFilter\n",
    )
    + "efficiency: {batch_sizes: [1, 16], rounds: 2, min_run_time: 0.05}\n"
)


def run(cli, tmp_path: Path, text: str, cache: Path):  # type: ignore[no-untyped-def]
    protocol = tmp_path / "p.yaml"
    protocol.write_text(text)
    results = tmp_path / "r"
    return cli("run", protocol, "--results", results, "--cache", cache, "--device", "cpu"), results


@pytest.mark.needs_confinement
def test_records_hold_measured_efficiency_and_boards_show_it(cli, tmp_path: Path, shared_cache: Path) -> None:  # type: ignore[no-untyped-def]
    done, results = run(cli, tmp_path, EFFICIENT, shared_cache)
    assert done.code == 0, done.err
    records = {r.method.label: r for r in [x.record for x in load_records([results])]}
    assert set(records) == {"global_magnitude", "l1_filter", "nm_magnitude", "claims_filter"}

    l1 = records["l1_filter"]
    assert l1.status == "ok", l1.reasons
    cost, compaction = l1.cost, l1.cost.compaction  # type: ignore[union-attr]
    assert cost is not None and compaction is not None and cost.counted == "compacted"
    assert compaction.max_abs_diff < 1e-4 and compaction.channels_removed > 0
    assert cost.flops_effective == 2 * compaction.macs and cost.params_effective == compaction.params
    # Removing a filter removes the next layer's input channels too: FLOPs fall by more than the weights' zeros.
    assert 1 - cost.flops_effective / cost.flops_dense > l1.sparsity.achieved + 0.1  # type: ignore[union-attr]

    for label, kernel in (("l1_filter", "compacted"), ("global_magnitude", "dense")):
        e = records[label].efficiency
        assert e is not None and e.not_measured is None, label
        assert (e.device, e.threads, e.rounds, e.compiled) == ("cpu", 1, 2, False) and e.device_name
        assert e.pruned is not None and e.dense is not None and e.pruned.kernel == kernel
        cost = records[label].cost
        assert cost is not None  # the compacted module's parameters; the masked model keeps all of them
        assert e.pruned.params == (cost.params_effective if kernel == "compacted" else cost.params_dense)
        assert [s.batch_size for s in e.speedup] == [1, 16]
        for s in e.speedup:
            assert 0 < s.low <= s.median <= s.high
        for model in (e.pruned, e.dense):
            assert [t.batch_size for t in model.timings] == [1, 16]
            for t in model.timings:
                assert t.median_s > 0 and t.throughput == t.batch_size / t.median_s
                assert t.peak_memory_bytes is not None and t.peak_memory_bytes > 0
    gm = records["global_magnitude"].efficiency
    assert gm is not None and gm.sparse_kernel is not None and gm.sparse_kernel.startswith("none: unstructured")
    assert gm.pruned.weight_bytes == gm.dense.weight_bytes  # type: ignore[union-attr]  # zeros are stored
    assert records["nm_magnitude"].status == "ok", records["nm_magnitude"].reasons
    nm = records["nm_magnitude"].efficiency  # 2:4 has sparse kernels on recent GPUs only: said, then timed dense
    assert nm is not None and nm.pruned is not None and nm.pruned.kernel == "dense"
    assert nm.sparse_kernel == "no sparse kernel on cpu: semi-structured 2:4 kernels need a CUDA device"
    compacted = records["l1_filter"].efficiency
    assert compacted.pruned.weight_bytes < compacted.dense.weight_bytes  # type: ignore[union-attr]

    # A method that claims filter granularity and prunes single weights: a violation, and nothing timed.
    cheat = records["claims_filter"]
    assert cheat.status == "violation"
    assert any("claims filter granularity" in r and "outside whole filters" in r for r in cheat.reasons)
    assert cheat.cost is not None and cheat.cost.counted == "masked"
    assert cheat.efficiency is not None and "could not be compacted" in (cheat.efficiency.not_measured or "")
    assert "claims_filter/sparsity-0.5_seed-0: not compacted: the masks are not whole filters" in done.err

    board = cli("compare", results, "--format", "markdown")
    assert board.code == 0
    assert "speedup (measured): dense over pruned seconds per batch" in board.out and "on cpu (" in board.out
    l1_row = next(line for line in board.out.splitlines() if line.startswith("| ") and "| l1_filter |" in line)
    assert "b1 " in l1_row and "b16 " in l1_row and "x [" in l1_row and "(compacted)" in l1_row
    gm_row = next(line for line in board.out.splitlines() if line.startswith("| ") and "| global_magnitude |" in line)
    assert "(dense kernels)" in gm_row
    terminal = cli("compare", results)
    assert " speedup " in terminal.out

    figure = tmp_path / "efficiency.png"
    drawn = cli("plot", "efficiency", results, "-o", figure, "--batch-size", "16")
    assert drawn.code == 0 and figure.stat().st_size > 10_000
    untimed = cli("plot", "efficiency", results, "-o", figure, "--batch-size", "8")
    assert untimed.code == 2 and "--batch-size 8: the results were timed at batch size(s) [1, 16]" in untimed.err


def test_a_protocol_without_the_section_times_nothing(cli, tmp_path: Path, shared_cache: Path) -> None:  # type: ignore[no-untyped-def]
    plain = EFFICIENT.split("efficiency:")[0]
    assert load_protocol_text(tmp_path, plain).efficiency is None
    done, results = run(cli, tmp_path, plain, shared_cache)
    assert done.code == 0, done.err
    records = [x.record for x in load_records([results])]
    assert records and all(r.efficiency is None for r in records)
    l1 = next(r for r in records if r.method.label == "l1_filter")
    assert l1.cost is not None and l1.cost.counted == "compacted"  # counts come from the compacted model anyway
    assert " speedup " not in cli("compare", results).out
    nothing = cli("plot", "efficiency", results, "-o", tmp_path / "e.png")
    assert nothing.code == 2 and "no result has measured efficiency: add an `efficiency:` section" in nothing.err
    assert not (tmp_path / "e.png").exists()


def test_a_pareto_front_keeps_what_no_faster_point_beats() -> None:
    points = [(3.0, 90.0), (1.0, 80.0), (2.0, 79.0), (2.5, 85.0), (4.0, 89.0), (1.0, 70.0)]
    assert pareto_front(points) == [(1.0, 80.0), (2.5, 85.0), (3.0, 90.0)]


def load_protocol_text(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "plain.yaml"
    path.write_text(text)
    return load_protocol(path)
