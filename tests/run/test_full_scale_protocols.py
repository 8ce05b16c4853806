"""The shipped full-scale protocols run unchanged but for their size: ResNet-50 on an ImageNet
ImageFolder tree generated here (no ImageNet on this machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from prunebench.protocol import load_protocol
from prunebench.run import Runner, plan

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def make_imagenet_tree(root: Path, classes: int = 2, train: int = 6, val: int = 2) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(count):
                size = (int(rng.integers(240, 320)), int(rng.integers(240, 320)))
                pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
                pixels[..., c] = 255  # a learnable color cue per class
                Image.fromarray(pixels).save(folder / f"img{i}.JPEG", quality=80)


def test_resnet50_imagenet_protocol_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_imagenet_tree(tmp_path / "imagenet")
    monkeypatch.setenv("IMAGENET_ROOT", str(tmp_path / "imagenet"))
    shipped = yaml.safe_load((ROOT / "protocols" / "resnet50_imagenet.yaml").read_text())
    # Same protocol, shrunk to a CPU test: fewer epochs, smaller batches, one sparsity, one method.
    shipped["data"].update(val_fraction=0.2, num_workers=0, eval_batch_size=4)
    shipped["base"].update(epochs=1, batch_size=4)
    shipped["base"]["schedule"] = {"name": "constant"}
    shipped["retrain"].update(epochs=1, batch_size=4)
    shipped["pruning"]["sparsities"] = [0.8]
    shipped["seeds"] = [0]
    path = tmp_path / "resnet50_imagenet.yaml"
    path.write_text(yaml.safe_dump(shipped))
    protocol = load_protocol(path)
    runner = Runner(protocol, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu")
    (record,) = runner.run(plan(protocol, methods=["global_magnitude"]))
    assert record.status == "ok", record.reasons
    assert record.sparsity is not None and abs(record.sparsity.achieved - 0.8) < 1e-4
    assert "conv1.weight" not in record.sparsity.per_layer  # the stem stays dense, as the protocol says
    assert record.cost is not None and record.cost.flops_dense == pytest.approx(2 * 4.089e9, rel=0.01)
    assert record.metrics is not None and record.metrics.test_top5 is None  # 2 classes: no top-5
    assert record.ledger.base.examples == 10 and record.ledger.retrain.examples == 10
