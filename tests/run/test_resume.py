"""A job killed with SIGKILL, mid-base-training or mid-retraining, and run again goes on from its last
checkpoint, and its record is bit-identical to the uninterrupted job's. Real processes, real kills."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunebench.testing import TINY

pytestmark = pytest.mark.slow

LONG = (
    TINY.replace("base: {epochs: 2,", "base: {epochs: 40,")
    .replace("retrain: {epochs: 1,", "retrain: {epochs: 40,")
    .replace("sparsities: [0.5, 0.9]", "sparsities: [0.9]")
    .replace("  - name: layerwise_magnitude\n  - name: random\n", "")
    + "runtime: {checkpoint_every: 0}\n"  # a checkpoint after every epoch: the kills land between them
)


def _cmd(protocol: Path, results: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "prunebench", "run", str(protocol), "--results", str(results), "--cache", str(cache)]


def _run(protocol: Path, results: Path, cache: Path) -> str:
    done = subprocess.run(
        [*_cmd(protocol, results, cache), "--device", "cpu"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _kill_when(protocol: Path, results: Path, cache: Path, checkpoint: str) -> None:
    """Start a run and SIGKILL it (all its processes) once a checkpoint of the named kind is there."""
    proc = subprocess.Popen(
        [*_cmd(protocol, results, cache), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list((cache / "progress").glob(f"{checkpoint}-*.prev.pt")):
        time.sleep(0.005)  # two epochs checkpointed: well into the stage
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    assert not list(results.rglob("sparsity-*.json")), "the run ended before it was killed"


def _record(results: Path) -> dict:
    (path,) = results.rglob("sparsity-*.json")
    record = json.loads(path.read_text())
    record.pop("provenance")  # when and where it ran
    record.pop("digest"), record.pop("mac")  # over the provenance too
    return record


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("uninterrupted")
    protocol = root / "long.yaml"
    protocol.write_text(LONG)
    _run(protocol, root / "r", root / "c")
    assert not list((root / "c" / "progress").glob("*.pt"))  # a finished job's checkpoints are removed
    return protocol, root / "c", _record(root / "r")


def test_killed_in_base_training_and_resumed_is_bit_identical(uninterrupted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    protocol, _, expected = uninterrupted
    results, cache = tmp_path / "r", tmp_path / "c"
    _kill_when(protocol, results, cache, "base")
    out = _run(protocol, results, cache)
    assert "dense base model, seed 0: resumed from its checkpoint after epoch" in out
    assert _record(results) == expected
    assert not list((cache / "progress").glob("*.pt"))


def test_killed_in_retraining_and_resumed_is_bit_identical(uninterrupted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    protocol, dense, expected = uninterrupted
    results, cache = tmp_path / "r", tmp_path / "c"
    shutil.copytree(dense, cache)  # the dense model is there: the kill lands in the job
    _kill_when(protocol, results, cache, "job")
    out = _run(protocol, results, cache)
    assert "global_magnitude/sparsity-0.9_seed-0: resumed from its checkpoint after retraining epoch" in out
    assert _record(results) == expected
    assert not list((cache / "progress").glob("*.pt"))


def test_a_corrupt_checkpoint_falls_back_to_the_one_before_it(uninterrupted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    protocol, dense, expected = uninterrupted
    results, cache = tmp_path / "r", tmp_path / "c"
    shutil.copytree(dense, cache)
    _kill_when(protocol, results, cache, "job")
    (latest,) = [p for p in (cache / "progress").glob("job-*.pt") if p.name.count(".") == 1]
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte: the digest no longer matches
    latest.write_bytes(bytes(data))
    out = _run(protocol, results, cache)
    assert "does not verify; not used" in out and "resumed from its checkpoint" in out
    assert _record(results) == expected


SPARSE_TRAINING = (
    LONG.replace("base: {epochs: 40,", "base: {epochs: 4,")
    .replace("retrain: {epochs: 40,", "retrain: {epochs: 26,")
    .replace("  - name: global_magnitude\n", "  - name: set\n    config: {update_steps: 4}\n")
    + "comparison: SX-A\n"
)


def test_sparse_training_killed_mid_training_resumes_bit_identically(tmp_path: Path) -> None:
    """SET trained from scratch (30 epochs under SX-A), SIGKILLed mid-training: its state (updates, the draws of
    its random growth) goes through state_dict, so the resumed job moves its masks as the uninterrupted one did."""
    assert "name: set" in SPARSE_TRAINING and "global_magnitude" not in SPARSE_TRAINING
    protocol = tmp_path / "dst.yaml"
    protocol.write_text(SPARSE_TRAINING)
    _run(protocol, tmp_path / "r0", tmp_path / "c0")
    expected = _record(tmp_path / "r0")
    assert expected["status"] == "ok" and expected["ledger"]["retrain"]["epochs"] == 30, expected["reasons"]
    cache = tmp_path / "c"
    shutil.copytree(tmp_path / "c0", cache)  # the dense model is there: the kill lands in the job
    _kill_when(protocol, tmp_path / "r", cache, "job")
    out = _run(protocol, tmp_path / "r", cache)
    assert "set/sparsity-0.9_seed-0: resumed from its checkpoint after retraining epoch" in out
    assert _record(tmp_path / "r") == expected
