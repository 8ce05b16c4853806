"""The protocols that replicate published recipes run end to end on the CPU as smoke runs (`--limit 1`: a batch a
stage, one seed, one method, one sparsity) on generated images, and `check --published` on what they wrote says
that a smoke run reproduces nothing: exit 1, the row unfair for it. ResNet-110's protocols are ResNet-56's with
another model (tests/protocol/test_published_protocols.py), and are not run here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from prunebench.results import load_records
from prunebench.testing import write_image_folder

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

RUNS = [  # protocol, the variable naming its data, classes, method label, sparsity
    ("renda_resnet56_cifar10", "CIFAR10_ROOT", 10, "lr_rewinding", "0.36"),
    ("renda_resnet56_cifar10_finetune", "CIFAR10_ROOT", 10, "imp_fine_tune", "0.36"),
    ("synflow_vgg16bn_cifar100", "CIFAR100_ROOT", 100, "magnitude_init", "0.99"),
]


@pytest.mark.parametrize(("name", "variable", "classes", "method", "sparsity"), RUNS, ids=[r[0] for r in RUNS])
def test_a_smoke_run_of_the_shipped_protocol_and_its_published_check(
    cli: Callable[..., object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    variable: str,
    classes: int,
    method: str,
    sparsity: str,
) -> None:
    monkeypatch.setenv(variable, str(write_image_folder(tmp_path / "data", classes, 10, 2)))
    protocol, results = ROOT / "protocols" / f"{name}.yaml", tmp_path / "r"
    common = ["--results", results, "--cache", tmp_path / "c", "--device", "cpu", "--workers", "1"]
    filters = ["--seeds", "0", "--methods", method, "--sparsities", sparsity, "--limit", "1"]
    done = cli("run", protocol, "data.eval_batch_size=256", *common, *filters)
    assert done.code == 0, done.err  # type: ignore[attr-defined]
    (record,) = [x.record for x in load_records([results])]
    assert (record.method.label, record.limit, record.seed) == (method, 1, 0)
    assert record.sparsity is not None and abs(record.sparsity.achieved - float(sparsity)) <= 0.005
    if name.startswith("renda"):  # two rounds: the first trained a batch in the pruning stage
        assert record.ledger.pruning.steps == 1 and record.ledger.retrain.steps == 1
    else:  # pruned at initialization: no dense weights were used
        assert record.method.taxonomy.when == "before_training" and record.ledger.pruning.steps == 0
    gate = cli("check", results, "--published", ROOT / "protocols" / "published" / f"{name}.csv")
    assert gate.code == 1, gate.err  # type: ignore[attr-defined]
    assert "smoke_run" in gate.out and "UNFAIR" in gate.out  # type: ignore[attr-defined]
    assert "NOT SHOWN TO REPRODUCE: 1 unfair" in gate.out  # type: ignore[attr-defined]
