"""`run --save-models` keeps the weights each record was measured on and the dense models; `check --verify`
measures them again (an edited number, swapped or missing weights fail); `run --dense-from` starts from shipped
dense models instead of training them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from prunebench.results import load_result
from prunebench.run import weights_sha256


def run(cli, protocol: Path, results: Path, cache: Path, *extra: str):  # type: ignore[no-untyped-def]
    return cli("run", protocol, "--results", results, "--cache", cache, "--device", "cpu", *extra)


@pytest.mark.needs_confinement
def test_saved_weights_verify_and_a_doctored_record_does_not(tiny_protocol: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    results = tmp_path / "r"
    assert run(cli, tiny_protocol, results, tmp_path / "cache", "--save-models").code == 0
    (run_dir,) = results.iterdir()
    records = sorted(run_dir.rglob("sparsity-*.json"))
    assert len(records) == 6 and len(list((run_dir / "dense").glob("*.pt"))) == 1
    for file in records:
        record = load_result(file)
        weights = torch.load(run_dir / "models" / f"{record.job_id}.pt", weights_only=True)
        assert weights_sha256(weights) == record.weights_sha256
    honest = cli("check", results, "--reference", results, "--verify")
    assert honest.code == 0 and "the saved weights of 6 result(s) measure as recorded" in honest.out

    doctored = json.loads(records[0].read_text())
    doctored["metrics"]["test_top1"] = 1.0  # a valid record with a number nobody measured
    records[0].write_text(json.dumps(doctored))
    swapped = load_result(records[1])
    shutil.copy(
        run_dir / "models" / f"{load_result(records[2]).job_id}.pt", run_dir / "models" / f"{swapped.job_id}.pt"
    )
    (run_dir / "models" / f"{load_result(records[3]).job_id}.pt").unlink()
    caught = cli("check", results, "--reference", results, "--verify")
    assert caught.code == 1 and "FAIL" in caught.out
    text = " ".join(caught.out.split())
    assert f"{records[0]}: test top-1 100.00% in the record" in text
    assert f"{records[1]}: the saved weights are not the ones the record was measured on" in text
    assert f"{records[3]}: no saved weights at" in text


@pytest.mark.slow
def test_dense_from_starts_from_the_shipped_dense_models(tiny_protocol: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    first = tmp_path / "first"
    assert run(cli, tiny_protocol, first, tmp_path / "c1", "--save-models").code == 0
    (run_dir,) = first.iterdir()
    fresh_cache = tmp_path / "c2"
    again = run(cli, tiny_protocol, tmp_path / "again", fresh_cache, "--dense-from", run_dir / "dense")
    assert again.code == 0
    assert not list(fresh_cache.rglob("*.pt"))  # nothing trained, nothing cached
    shas = {load_result(f).base.checkpoint_sha256 for f in (tmp_path / "again").rglob("sparsity-*.json")}  # type: ignore[union-attr]
    assert shas == {load_result(next(run_dir.rglob("sparsity-*.json"))).base.checkpoint_sha256}  # type: ignore[union-attr]
