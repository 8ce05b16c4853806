"""The channel methods through the real CLI, each job in its own sandboxed processes: a filter protocol on the
digits at two sparsities. Every job ends `ok`, on target, and the runner's own counts of the compacted model are
what the method said its allocation would give."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.results import load_records
from prunebench.testing import TINY

pytestmark = pytest.mark.slow

METHODS = ("channel_l1", "channel_l2", "group_norm", "random_channels")
PROTOCOL = (
    TINY.replace("width: 0.25", "width: 0.5")
    .replace(
        "pruning: {sparsities: [0.5, 0.9]}", "pruning: {sparsities: [0.3, 0.6], granularity: filter, tolerance: 0.01}"
    )
    .replace(
        "  - name: global_magnitude\n  - name: layerwise_magnitude\n  - name: random\n",
        "".join(f"  - name: {m}\n" for m in METHODS),
    )
)


def test_a_filter_protocol_runs_the_channel_methods(cli, tmp_path: Path, shared_cache: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = tmp_path / "channels.yaml"
    protocol.write_text(PROTOCOL)
    results = tmp_path / "r"
    done = cli("run", protocol, "--results", results, "--cache", shared_cache, "--device", "cpu")
    assert done.code == 0, done.err
    records = [x.record for x in load_records([results])]
    assert sorted((r.method.label, r.target_sparsity) for r in records) == sorted(
        (m, s) for m in METHODS for s in (0.3, 0.6)
    )
    for r in records:
        assert r.status == "ok", (r.method.label, r.reasons)
        assert r.method.taxonomy["granularity"] == "filter"
        sparsity, cost, notes = r.sparsity, r.cost, r.method.notes
        assert sparsity is not None and cost is not None and cost.compaction is not None
        assert abs(sparsity.achieved - r.target_sparsity) <= 0.01
        assert cost.counted == "compacted" and cost.compaction.channels_removed > 0
        # What the method counted is what the runner measured on the compacted model.
        assert notes["achieved_weight_sparsity"] == pytest.approx(sparsity.achieved, abs=1e-6)
        assert notes["flops_reduction"] == pytest.approx(cost.flops_dense / cost.flops_effective, abs=1e-4)
        assert notes["params_reduction"] == pytest.approx(cost.params_dense / cost.params_effective, abs=1e-4)
