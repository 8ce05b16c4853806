"""`prunebench run` of a protocol with sanity ablations: the jobs and records of each ablation, what the engine did
to the masks and weights (read back from the saved models), random_shuffled as the layer_shuffle ablation of global
magnitude bit for bit, and methods that try to escape the ablations (tests/methods/fixtures/evades_ablations.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prunebench.report.listing import list_runs
from prunebench.results import ResultRecord, load_records
from prunebench.testing import TINY, make_protocol

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parents[1] / "methods" / "fixtures" / "evades_ablations.py"
PROTOCOL = (
    TINY.replace("sparsities: [0.5, 0.9]", "sparsities: [0.5]").replace(
        "  - name: layerwise_magnitude\n  - name: random\n",
        f"  - name: random_shuffled\n  - name: {FIXTURE}:PeeksAtItsJob\n  - name: {FIXTURE}:RestoresItsMasks\n",
    )
    + "variants:\n  sanity: [layer_shuffle, reinit, invert]\n"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Path:
    root = tmp_path_factory.mktemp("sanity")
    (root / "p.yaml").write_text(PROTOCOL)
    cmd = [sys.executable, "-m", "prunebench", "run", str(root / "p.yaml"), "--results", str(root / "r")]
    cmd += ["--cache", str(shared_cache), "--device", "cpu", "--save-models"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done.stderr  # restores_its_masks' layer_shuffle (and reinit, invert) fail
    return root / "r"


def records(results: Path) -> dict[tuple[str, str | None], ResultRecord]:
    return {
        (x.record.method.label, x.record.variant.name if x.record.variant else None): x.record
        for x in load_records([results])
    }


def kept(results: Path, record: ResultRecord) -> dict[str, torch.Tensor]:
    """Where the final weights of the record's model are not zero, per prunable weight."""
    assert record.weights_file is not None and record.sparsity is not None
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    state = torch.load(run_dir / record.weights_file, weights_only=True)
    return {name: state[name] != 0 for name in record.sparsity.per_layer}


def test_each_ablation_runs_where_it_applies_with_its_record(run: Path) -> None:
    found = records(run)
    ran = {(m, v) for m, v in found}
    everything = {None, "layer_shuffle", "reinit", "invert"}
    assert {v for m, v in ran if m == "global_magnitude"} == everything
    assert {v for m, v in ran if m == "random_shuffled"} == {None, "layer_shuffle", "reinit"}  # not scored: no invert
    for (_, v), r in found.items():
        if v is not None:
            assert r.variant is not None and r.variant.kind == "sanity" and r.variant.ablation == v
            assert r.variant.recipe == make_protocol(TINY).retrain.model_dump(mode="json")  # the protocol's own
    (run_dir,) = [p for p in run.iterdir() if p.is_dir()]
    table = json.loads((run_dir / "protocol.json").read_text())["sanity"]
    assert table["random_shuffled"]["invert"].startswith("its masks do not come from masks_from_scores")
    assert table["global_magnitude"] == {"layer_shuffle": None, "reinit": None, "invert": None}


def test_layer_shuffle_keeps_each_layers_count_and_moves_the_kept_weights(run: Path) -> None:
    found = records(run)
    own, shuffled = found[("global_magnitude", None)], found[("global_magnitude", "layer_shuffle")]
    assert own.sparsity is not None and shuffled.sparsity is not None
    assert {n: x.zeros for n, x in shuffled.sparsity.per_layer.items()} == {
        n: x.zeros for n, x in own.sparsity.per_layer.items()
    }
    a, b = kept(run, own), kept(run, shuffled)
    assert all(int(a[n].sum()) == int(b[n].sum()) for n in a)
    big = max(a, key=lambda n: a[n].numel())
    assert int((a[big] & b[big]).sum()) < 0.75 * int(a[big].sum())  # half the layer kept: by chance, half shared


def test_reinit_keeps_the_masks_and_changes_the_weights(run: Path) -> None:
    found = records(run)
    own, fresh = found[("global_magnitude", None)], found[("global_magnitude", "reinit")]
    a, b = kept(run, own), kept(run, fresh)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert own.weights_sha256 != fresh.weights_sha256
    assert fresh.status == "ok", fresh.reasons  # the runner knows the fresh draw it started from


def test_invert_keeps_the_other_end_of_the_ranking(run: Path) -> None:
    found = records(run)
    a, b = kept(run, found[("global_magnitude", None)]), kept(run, found[("global_magnitude", "invert")])
    shared = sum(int((a[n] & b[n]).sum()) for n in a)
    assert shared <= 1 and sum(int(b[n].sum()) for n in b) == sum(int(a[n].sum()) for n in a)


def test_random_shuffled_is_the_layer_shuffle_of_global_magnitude_bit_for_bit(run: Path) -> None:
    found = records(run)
    method, ablation = found[("random_shuffled", None)], found[("global_magnitude", "layer_shuffle")]
    assert method.weights_sha256 == ablation.weights_sha256
    assert method.metrics == ablation.metrics


def test_a_method_cannot_change_what_the_ablation_does(run: Path) -> None:
    found = records(run)
    seen = {v: found[("peeks_at_its_job", v)].method.notes["saw_ablation"] for v in (None, "layer_shuffle", "reinit")}
    assert seen == {None: "none", "layer_shuffle": "none", "reinit": "none"}  # it sees its own job
    assert found[("peeks_at_its_job", "invert")].method.notes["saw_ablation"] == "invert"  # where it must know
    for v in ("layer_shuffle", "reinit"):  # the engine's draws are the same for every method: so are the weights
        assert found[("peeks_at_its_job", v)].weights_sha256 == found[("global_magnitude", v)].weights_sha256
    assert found[("restores_its_masks", None)].status == "ok"
    undone = found[("restores_its_masks", "layer_shuffle")]
    assert undone.status == "failed"
    assert any("changed its masks while retraining a layer_shuffle sanity ablation" in r for r in undone.reasons)


def test_ls_and_status_count_the_ablations_that_apply(run: Path, cli, shared_cache: Path) -> None:  # type: ignore[no-untyped-def]
    (listing,) = list_runs([run])
    assert listing.expected == 15  # 4 + 3 (random_shuffled: no invert) + 4 + 4
    shown = cli("status", run.parent / "p.yaml", "--results", run, "--cache", shared_cache)
    assert shown.code == 0, shown.err
    assert "15 job(s)" in shown.out
