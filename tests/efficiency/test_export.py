"""`prunebench export`: the pruned model of a record as a torch.export program or ONNX file, which another
runtime loads and which scores the record's test accuracy."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from prunebench.data import load_data
from prunebench.protocol import load_protocol
from prunebench.results import load_result
from prunebench.testing import TINY

pytestmark = pytest.mark.slow

PROTOCOL = TINY.replace("sparsities: [0.5, 0.9]", "sparsities: [0.5]").replace(
    "  - name: layerwise_magnitude\n  - name: random\n", "  - name: l1_filter\n"
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    protocol = root / "p.yaml"
    protocol.write_text(PROTOCOL)
    command = ["run", protocol, "--results", root / "r", "--cache", shared_cache, "--device", "cpu", "--save-models"]
    done = subprocess.run(
        [sys.executable, "-m", "prunebench", *map(str, command)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    (run_dir,) = (root / "r").iterdir()
    return protocol, run_dir


def accuracy(predict, protocol: Path) -> float:  # type: ignore[no-untyped-def]
    """Test top-1 of a function from inputs to logits, over the whole test split."""
    data = load_data(load_protocol(protocol).data)
    assert data.test is not None
    right = 0
    for x, y in data.test.batches(100, shuffle=False, train=False, generator=None, device="cpu"):
        right += int((predict(x).argmax(1) == y).sum())
    return right / data.test.num_examples


def test_a_compacted_export_scores_the_records_accuracy(cli, saved: tuple[Path, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    protocol, run_dir = saved
    record_file = run_dir / "l1_filter" / "sparsity-0.5_seed-0.json"
    record = load_result(record_file)
    assert record.weights_file == "models/l1_filter/sparsity-0.5_seed-0.pt"
    assert (run_dir / record.weights_file).is_file()
    out = tmp_path / "l1.pt"
    done = cli("export", record_file, "-o", out)
    assert done.code == 0, done.err
    assert "compacted model" in done.err and "on 256 test examples" in done.err
    module = torch.export.load(io.BytesIO(out.read_bytes())).module()
    params = sum(p.numel() for p in module.parameters())
    assert record.cost is not None and params == record.cost.params_effective < record.cost.params_dense
    assert record.metrics is not None
    assert accuracy(lambda x: module(x).detach(), protocol) == record.metrics.test_top1


def test_onnx_runs_in_onnxruntime_at_the_records_accuracy(cli, saved: tuple[Path, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    protocol, run_dir = saved
    record_file = run_dir / "global_magnitude" / "sparsity-0.5_seed-0.json"
    record = load_result(record_file)
    out = tmp_path / "gm.onnx"
    done = cli("export", record_file, "--format", "onnx", "-o", out)
    assert done.code == 0, done.err
    assert "masked model" in done.err
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(session.run(None, {name: x.numpy()})[0]))

    assert record.metrics is not None
    assert abs(accuracy(predict, protocol) - record.metrics.test_top1) <= 1 / 360  # one example of the test split
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gm.onnx"]  # self-contained: no weights file beside it


def test_bad_exports_are_one_line_and_write_nothing(
    cli, saved: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    _, run_dir = saved
    record_file = run_dir / "global_magnitude" / "sparsity-0.5_seed-0.json"
    out = tmp_path / "x.onnx"
    bad = cli("export", record_file, "--format", "tflite", "-o", out)
    assert bad.code == 2 and bad.err.strip() == "error: --format must be one of pt, onnx (got 'tflite')"

    import prunebench.run.measurement.export as export_module

    monkeypatch.setattr(export_module, "ONNX_PACKAGES", (*export_module.ONNX_PACKAGES, "onnx_runtime_not_here"))
    missing = cli("export", record_file, "--format", "onnx", "-o", out)
    assert missing.code == 2 and len(missing.err.strip().splitlines()) == 1
    assert "needs onnx_runtime_not_here, which is not installed: pip install 'prunebench[onnx]'" in missing.err

    (run_dir / "models" / "global_magnitude" / "sparsity-0.5_seed-0.pt").rename(tmp_path / "moved.pt")
    try:
        unsaved = cli("export", record_file, "-o", out)
    finally:
        (tmp_path / "moved.pt").rename(run_dir / "models" / "global_magnitude" / "sparsity-0.5_seed-0.pt")
    assert unsaved.code == 2 and "run it again with --save-models" in unsaved.err
    assert not out.exists() and not list(tmp_path.glob(".x*"))
