"""A dense checkpoint the user has, in place of base training (`base: {checkpoint, sha256}`): verified by its hash,
loaded strictly, measured by the runner, the shared base of every method and seed; the hash, not the path, is
part of the protocol's identity. Nothing is downloaded: the test writes the checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from prunebench.protocol import load_protocol
from prunebench.run import Runner, plan
from prunebench.run.dense.pretrained import file_sha256
from prunebench.testing import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A dense small_cnn trained by a run of TINY, saved as a plain state dict the way a user's would be; and
    that run's record of global magnitude at 0.5."""
    root = tmp_path_factory.mktemp("trained")
    protocol = root / "tiny.yaml"
    protocol.write_text(TINY)
    p = load_protocol(protocol)
    runner = Runner(p, results_dir=root / "r", cache_dir=root / "c", device="cpu")
    (record,) = runner.run(plan(p, methods=["global_magnitude"], sparsities=[0.5]))
    weights = root / "weights.pt"
    torch.save({"state_dict": runner.base(0).states["final"]}, weights)
    return weights, record.model_dump(mode="json")


def _protocol(tmp_path: Path, weights: Path | str, sha256: str, extra: str = "") -> Path:
    text = TINY.replace(
        "base: {epochs: 2, batch_size: 128, optimizer: {lr: 0.1}}",
        f"base: {{epochs: 2, batch_size: 128, optimizer: {{lr: 0.1}}, checkpoint: '{weights}', sha256: '{sha256}'}}",
    )
    assert "checkpoint:" in text
    path = tmp_path / "pretrained.yaml"
    path.write_text(text + extra)
    return path


def test_a_dense_checkpoint_is_the_base_model_of_every_method_and_seed(trained, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    weights, trained_record = trained
    monkeypatch.setenv("PB_TEST_WEIGHTS", str(weights))
    protocol = _protocol(tmp_path, "${PB_TEST_WEIGHTS}", file_sha256(weights))
    p = load_protocol(protocol)
    records = Runner(p, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu").run(
        plan(p, sparsities=[0.5])
    )
    assert len(records) == 3 and all(r.status == "ok" for r in records)
    for r in records:
        assert r.base is not None and r.base.pretrained_sha256 == file_sha256(weights)
        # The same weights as the trained run's dense model, measured again by the runner: the same accuracy.
        assert r.base.checkpoint_sha256 == trained_record["base"]["checkpoint_sha256"]
        assert r.base.test_top1 == trained_record["base"]["test_top1"]
        assert r.ledger.base.epochs == 0  # trained elsewhere
    magnitude = next(r for r in records if r.method.name == "global_magnitude")
    assert magnitude.metrics.test_top1 == trained_record["metrics"]["test_top1"]  # pruned the very same weights


def test_the_hash_of_the_checkpoint_not_its_path_is_the_protocols_identity(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    weights, _ = trained
    moved = tmp_path / "elsewhere" / "w.pt"
    moved.parent.mkdir()
    shutil.copy(weights, moved)
    here = load_protocol(_protocol(tmp_path, weights, file_sha256(weights)))
    there = load_protocol(_protocol(tmp_path, moved, file_sha256(moved)))
    other = load_protocol(_protocol(tmp_path, weights, "0" * 64))
    plain = load_protocol(_write(tmp_path, TINY))
    assert here.hash == there.hash and len({here.hash, other.hash, plain.hash}) == 3


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plain.yaml"
    path.write_text(text)
    return path


def _one_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2 and len(lines) == 1 and "Traceback" not in result.err, result.err
    return " ".join(lines[0].split())


def test_a_checkpoint_of_another_file_is_refused_with_its_hash(trained, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    weights, _ = trained
    line = _one_line(cli("validate", _protocol(tmp_path, weights, "ab" * 32)))
    assert "base.sha256" in line and f"has sha256 {file_sha256(weights)}" in line and ":1" in line


def test_a_checkpoint_that_does_not_fit_the_model_says_what_does_not(trained, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    weights, _ = trained
    state = torch.load(weights, weights_only=True)["state_dict"]
    name = next(k for k in state if k.endswith("weight"))
    state[name] = torch.zeros(3, 3)
    del state[next(reversed(state))]
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    line = _one_line(cli("validate", _protocol(tmp_path, bad, file_sha256(bad))))
    assert "base.checkpoint" in line and "does not fit the protocol's small_cnn" in line
    assert (
        "1 key(s) missing" in line
        and "1 key(s) unexpected: extra.weight" in line
        and f"{name} (checkpoint [3, 3]" in line
    )


def test_rewinding_to_an_iterate_the_checkpoint_does_not_have_is_refused(trained, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    weights, _ = trained
    with_lottery = _protocol(tmp_path, weights, file_sha256(weights), "  - name: lottery_ticket\n")
    line = _one_line(cli("validate", with_lottery))
    assert "methods[3].name" in line and "lottery_ticket rewinds to an early iterate" in line
    rewound = (
        _protocol(tmp_path, weights, file_sha256(weights))
        .read_text()
        .replace("pruning: {sparsities: [0.5, 0.9]}", "pruning: {sparsities: [0.5, 0.9], rewind_epoch: 1}")
    )
    line = _one_line(cli("validate", _write(tmp_path, rewound)))
    assert "pruning.rewind_epoch" in line and "no early iterate" in line


def test_a_checkpoint_without_its_hash_is_refused(trained, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    weights, _ = trained
    text = _protocol(tmp_path, weights, "x").read_text().replace(", sha256: 'x'", "")
    line = _one_line(cli("validate", _write(tmp_path, text)))
    assert "base.checkpoint and base.sha256 go together" in line
    assert line.startswith(f"error: {tmp_path / 'plain.yaml'}:4:")  # the file and the line of `base`
