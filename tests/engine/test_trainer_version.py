"""TRAINER_VERSION names the numerics of dense training; this test pins what version 1 trains.

When it fails, dense training changed what it computes: bump TRAINER_VERSION in prunebench/engine/loop.py
(so that no cache reuses a dense model the old code trained) and pin the new numbers here. The tolerances
absorb the floating-point noise of another CPU, not a change of the recipe, the data order or the loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.engine import TRAINER_VERSION
from prunebench.protocol import parse_protocol
from prunebench.run import Runner
from prunebench.testing import TINY

PINNED = {
    1: {
        "train_loss": 2.234820641542697,
        "test_top1": 0.4401114206128134,
        "abs_sum": 463.91423170268536,
        "classifier.weight[0, 0]": -0.5104327201843262,
        "features.0.0.weight[0, 0, 0, 0]": 0.1487390249967575,
    }
}


def test_dense_training_computes_what_its_version_says(tmp_path: Path) -> None:
    p = parse_protocol(TINY.replace("epochs: 2,", "epochs: 1,"))
    base = Runner(p, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu").base(0)
    final = base.states["final"]
    got = {
        "train_loss": base.curves[-1].train_loss,
        "test_top1": base.test["top1"],
        "abs_sum": sum(float(t.abs().sum()) for t in final.values() if t.is_floating_point()),
        "classifier.weight[0, 0]": float(final["classifier.weight"][0, 0]),
        "features.0.0.weight[0, 0, 0, 0]": float(final["features.0.0.weight"][0, 0, 0, 0]),
    }
    pinned = PINNED[TRAINER_VERSION]
    message = "dense training changed: bump TRAINER_VERSION (prunebench/engine/loop.py) and pin its numbers here"
    assert got["test_top1"] == pytest.approx(pinned["test_top1"], abs=2 / 359), message  # at most 2 test images
    for key in ("train_loss", "abs_sum", "classifier.weight[0, 0]", "features.0.0.weight[0, 0, 0, 0]"):
        assert got[key] == pytest.approx(pinned[key], rel=1e-4, abs=1e-5), f"{key}: {message}"


def test_the_trainer_version_is_part_of_the_dense_checkpoint_key(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import prunebench.run.dense.cache as cache

    runner = Runner(parse_protocol(TINY), results_dir=tmp_path / "r", cache_dir=tmp_path / "c", device="cpu")
    _, key = runner.cache.locate(0)
    monkeypatch.setattr(cache, "TRAINER_VERSION", TRAINER_VERSION + 1)
    assert runner.cache.locate(0)[1] != key
