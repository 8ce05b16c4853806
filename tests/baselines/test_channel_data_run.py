"""The data-driven channel criteria through the real CLI, each job in its own sandboxed processes: a filter protocol
on the digits at a FLOPs target, the criteria that train within a stated pruning budget of one epoch. Every job ends
`ok` at its target, counted by the runner from the compacted model, and says what its allocation gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.results import load_records
from prunebench.testing import TINY

pytestmark = pytest.mark.slow

METHODS = {
    "channel_taylor": "",
    "channel_hessian": "",
    "hrank": "",
    "network_slimming": "    budget: {pruning_epochs: 1}\n",
    "group_norm": "    config: {sparsity_epochs: null}\n    budget: {pruning_epochs: 1}\n",
}
PROTOCOL = (
    TINY.replace("width: 0.25", "width: 0.5")
    .replace(
        "pruning: {sparsities: [0.5, 0.9]}",
        "pruning: {targets: {flops_reduction: [2.0]}, granularity: filter, scoring_examples: 256}",
    )
    .replace(
        "  - name: global_magnitude\n  - name: layerwise_magnitude\n  - name: random\n",
        "".join(f"  - name: {m}\n{extra}" for m, extra in METHODS.items()),
    )
)


def test_a_flops_target_through_the_cli(cli, tmp_path: Path, shared_cache: Path) -> None:  # type: ignore[no-untyped-def]
    protocol = tmp_path / "criteria.yaml"
    protocol.write_text(PROTOCOL)
    results = tmp_path / "r"
    done = cli("run", protocol, "--results", results, "--cache", shared_cache, "--device", "cpu")
    assert done.code == 0, done.err
    records = {x.record.method.label: x.record for x in load_records([results])}
    assert set(records) == set(METHODS)
    for label, r in records.items():
        assert r.status == "ok", (label, r.reasons)
        assert r.method.taxonomy["granularity"] == "filter" and r.target is not None
        cost, notes = r.cost, r.method.notes
        assert cost is not None and cost.counted == "compacted" and cost.compaction is not None
        assert r.target.kind == "flops_reduction" and abs(r.target.achieved / 2.0 - 1) <= 0.05
        assert notes["flops_reduction"] == pytest.approx(cost.flops_dense / cost.flops_effective, abs=1e-4)
        trains = bool(METHODS[label])
        assert (r.ledger.pruning.epochs == 1.0) is trains and (r.ledger.pruning.forward_examples == 256) is not trains
        assert r.method.taxonomy["when"] == ("during_training" if trains else "after_training")
