"""The optional evaluations end to end: `prunebench run` of the tiny digits protocol with them on writes them into
the records, beside numbers that are otherwise the same as without them; with them off (stated or not) the records
are as they were; a causal LM protocol and a data set streamed from disk refuse them in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from prunebench.results import decode_labels
from prunebench.testing import TINY

ON = (
    "evaluation: {calibration: true, forgetting: true, "
    "robustness: {corruptions: [contrast, gaussian_noise], severities: [1, 5], seed: 3}}\n"
)
VOLATILE = {"started_at", "finished_at", "duration_s", "command"}  # the command names its protocol file


def run_one(cli, tmp_path: Path, name: str, extra: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The record of global magnitude at 0.9, seed 0, of TINY with `extra` appended, in a run of its own."""
    protocol = tmp_path / f"{name}.yaml"
    protocol.write_text(TINY + extra)
    results = tmp_path / name
    done = cli("run", protocol, "--results", results, "--cache", tmp_path / "cache", "--workers", "1",
               "--methods", "global_magnitude", "--sparsities", "0.9")  # fmt: skip
    assert done.code == 0, done.err
    (path,) = results.glob("*/global_magnitude/sparsity-0.9_seed-0.json")
    return json.loads(path.read_text())


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what differs between two runs of one job: times, the seal, the protocol's hash and file."""
    out = {k: v for k, v in record.items() if k not in ("digest", "mac", "evaluation")}
    out["provenance"] = {k: v for k, v in record["provenance"].items() if k not in VOLATILE}
    out["protocol"] = {k: v for k, v in record["protocol"].items() if k not in ("hash", "source")}
    return out


def test_the_fields_on_are_measured_and_change_nothing_else_and_off_change_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plain = run_one(cli, tmp_path, "plain", "")
    off = run_one(cli, tmp_path, "off", "evaluation: {calibration: false, forgetting: false, robustness: null}\n")
    on = run_one(cli, tmp_path, "on", ON)
    assert "evaluation" not in plain and "evaluation" not in off
    assert off["protocol"]["hash"] == plain["protocol"]["hash"]  # stated defaults: the same protocol
    assert comparable(off) == comparable(plain)
    assert comparable(on) == comparable(plain)  # the same training, weights and every other number
    assert on["protocol"]["hash"] != plain["protocol"]["hash"]

    evaluation, metrics = on["evaluation"], on["metrics"]
    robustness = evaluation["robustness"]
    assert robustness["seed"] == 3 and robustness["severities"] == [1, 5]
    assert set(robustness["top1"]) == set(robustness["dense_top1"]) == {"contrast", "gaussian_noise"}
    entries = [v for per in robustness["top1"].values() for v in per]
    assert len(entries) == 4 and robustness["mean_top1"] == pytest.approx(sum(entries) / 4)
    calibration = evaluation["calibration"]
    assert calibration["bins"] == 15 and 0 <= calibration["ece"] <= 1
    assert calibration["nll"] == pytest.approx(metrics["test_loss"], rel=1e-6)  # the test loss's definition
    forgetting = evaluation["forgetting"]
    n = metrics["test_examples"]
    predicted = decode_labels(forgetting["predictions"], 10)
    dense = decode_labels(forgetting["dense_predictions"], 10)
    labels = decode_labels(forgetting["labels"], 10)
    assert len(predicted) == len(dense) == len(labels) == n
    assert sum(p == y for p, y in zip(predicted, labels, strict=True)) / n == pytest.approx(metrics["test_top1"])
    assert sum(d == y for d, y in zip(dense, labels, strict=True)) / n == pytest.approx(on["base"]["test_top1"])
    assert forgetting["agreement"] == pytest.approx(sum(p == d for p, d in zip(predicted, dense, strict=True)) / n)
    assert len(forgetting["class_top1"]) == 10

    board = cli("compare", tmp_path / "on", "--show", "robustness,calibration,forgetting", "--format", "markdown")
    assert board.code == 0 and "What pruning takes away (robustness, calibration, forgetting)" in board.out
    figure = cli("plot", "evaluations", tmp_path / "on", "-o", tmp_path / "evaluations.png")
    assert figure.code == 0 and (tmp_path / "evaluations.png").stat().st_size > 0
    nothing = cli("plot", "evaluations", tmp_path / "plain", "-o", tmp_path / "none.png")
    assert nothing.code != 0 and "evaluation.robustness, calibration or forgetting" in nothing.err


@pytest.mark.parametrize("field", ["calibration: true", "forgetting: true", "robustness: {}"])
def test_a_causal_lm_protocol_refuses_them_in_one_line(field: str, tmp_path: Path) -> None:
    from prunebench.errors import ProtocolError
    from prunebench.protocol import parse_protocol

    lm = (Path(__file__).resolve().parents[2] / "protocols" / "lm_quickstart.yaml").read_text()
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(lm + f"evaluation: {{{field}}}\n", "lm.yaml")
    name = field.split(":")[0]
    message = str(caught.value)
    assert "\n" not in message and f"evaluation.{name}: only a classification protocol has it" in message


def test_a_data_set_streamed_from_disk_refuses_robustness_in_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "imagenet"
    for wnid in ("n01440764", "n01443537"):
        for part in ("train", "val"):
            (root / part / wnid).mkdir(parents=True)
            for i in range(2):
                pixels = np.full((40, 40, 3), 40 * i, dtype=np.uint8)
                Image.fromarray(pixels).save(root / part / wnid / f"{wnid}_{i}.JPEG")
    protocol = tmp_path / "imagenet.yaml"
    text = TINY.replace("{name: digits}", f"{{name: imagenet, root: {root}, augmentation: imagenet}}")
    protocol.write_text(text + "evaluation: {robustness: {}}\n")
    res = cli("validate", protocol)
    lines = res.err.strip().splitlines()
    assert res.code == 2 and len(lines) == 1, res
    assert "evaluation.robustness: not supported for ImageNet, streamed from disk" in lines[0]
