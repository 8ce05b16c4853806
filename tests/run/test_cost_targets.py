"""Targets stated as a cost (`pruning.targets: {flops_reduction: [...]}`): jobs keyed by the target as stated,
the reduction counted by the runner from the physically compacted model, a method whose claim is wrong marked,
and the board's columns named by the target; every protocol error one line before any training."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from prunebench.testing import run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "methods" / "fixtures"

PROTOCOL = textwrap.dedent(
    f"""\
    name: cost
    data: {{name: digits}}
    model: {{name: small_cnn, args: {{width: 1.0}}}}
    base: {{epochs: 2, batch_size: 128, optimizer: {{lr: 0.1}}}}
    pruning:
      targets: {{flops_reduction: [2.0, 4.0]}}
      granularity: filter
    retrain: {{epochs: 1, batch_size: 128, optimizer: {{lr: 0.05}}}}
    seeds: [0]
    methods:
      - name: {FIXTURES / "uniform_channels.py"}:UniformChannels
      - name: {FIXTURES / "uniform_channels.py"}:UnderPruning
    """
)


def _write(tmp_path: Path, text: str = PROTOCOL) -> Path:
    path = tmp_path / "cost.yaml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_cost_targets_are_counted_from_the_compacted_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    protocol, results = _write(tmp_path), tmp_path / "r"
    code, out, err = run_cli(capsys, "run", str(protocol), "--results", str(results), "--cache", str(tmp_path / "c"))
    assert code == 0, out + err  # violations are results (shown apart), not failures
    run_dir = next(results.iterdir())
    for target in (2.0, 4.0):
        record = json.loads((run_dir / "uniform_channels" / f"flops_reduction-{target:g}_seed-0.json").read_text())
        assert record["target_sparsity"] is None and record["status"] == "ok", record["reasons"]
        assert record["target"]["kind"] == "flops_reduction" and record["target"]["value"] == target
        achieved = record["target"]["achieved"]
        assert abs(achieved / target - 1) <= 0.05, achieved
        cost = record["cost"]
        assert cost["counted"] == "compacted"
        assert achieved == pytest.approx(cost["flops_dense"] / cost["flops_effective"])
        assert record["sparsity"]["target"] is None
        under = json.loads((run_dir / "under_pruning" / f"flops_reduction-{target:g}_seed-0.json").read_text())
        assert under["status"] == "violation" and under["target"]["achieved"] < target * 0.95
        assert any(f"FLOPs {target:g}x target" in reason for reason in under["reasons"]), under["reasons"]
    code, out, _ = run_cli(capsys, "compare", str(results), "--table", "pivot")
    assert code == 0 and "FLOPs 2x" in out and "FLOPs 4x" in out and "sparsity" not in out.split("Test top-1")[0]
    code, out, _ = run_cli(capsys, "compare", str(results))
    assert "cost_target" in out and "FLOPs 2x target: " in out  # the audit names the kind and the count
    code, out, _ = run_cli(capsys, "compare", str(results), "--format", "markdown")
    assert "| rank | method | FLOPs target | top-1 %" in out and "| uniform_channels | 2x |" in out
    # The audit's target column too: a cost board's violations name the reduction, not a sparsity.
    assert "| kind | method | FLOPs target | seed |" in out and "| under_pruning | 2x | 0 |" in out


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (("granularity: filter", "granularity: unstructured"), "pruning.granularity: filter"),
        (("targets: {flops_reduction: [2.0, 4.0]}", "targets: {flops_reduction: [0.5]}"), "not a reduction"),
        (
            ("targets: {flops_reduction: [2.0, 4.0]}", "targets: {flops_reduction: [2.0], params_reduction: [2.0]}"),
            "one kind of target",
        ),
        (
            ("targets: {flops_reduction: [2.0, 4.0]}", "targets: {flops_reduction: [2.0, 1.0e+4]}"),
            "10000x is beyond what whole filters reach on small_cnn: at most",
        ),
        (
            ("targets: {flops_reduction: [2.0, 4.0]}", "sparsities: [0.5]\n  targets: {flops_reduction: [2.0]}"),
            "state the targets once",
        ),
    ],
)
def test_a_bad_cost_target_is_one_line_before_any_training(
    tmp_path: Path, capsys: pytest.CaptureFixture, change: tuple[str, str], fragment: str
) -> None:
    protocol = _write(tmp_path, PROTOCOL.replace(*change))
    code, out, err = run_cli(capsys, "validate", str(protocol))
    assert code != 0 and fragment in err and "Traceback" not in err + out, err
    assert str(protocol) in err  # the file, with the line of the field


def test_a_method_that_prunes_only_to_sparsities_is_refused_in_a_cost_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    protocol = _write(tmp_path, PROTOCOL.replace(f"{FIXTURES / 'uniform_channels.py'}:UnderPruning", "l1_filter"))
    code, _, err = run_cli(capsys, "validate", str(protocol))
    assert code != 0 and "l1_filter prunes to sparsity targets; this protocol's are flops_reduction" in err, err


@pytest.mark.parametrize(
    ("method", "model", "fragment"),
    [
        (
            "{name: channel_l1, config: {max_layer_ratio: 0.1}}",
            "{name: small_cnn, args: {width: 1.0}}",
            "channel_l1 cannot prune small_cnn to FLOPs 2x: target FLOPs 2x is out of reach of channel pruning here: "
            "removing every channel group it may (each of 3 coupling(s) keeping a channel, within its cap) gives a "
            "FLOPs reduction of 1.2",
        ),
        (
            "{name: network_slimming, budget: {pruning_epochs: 1}}",
            "{name: lenet_300_100}",
            "network_slimming cannot prune lenet_300_100 to FLOPs 2x: network_slimming ranks channels by their "
            "BatchNorm scales",
        ),
        (
            "{name: hrank}",
            "{name: lenet_300_100}",
            "hrank cannot prune lenet_300_100 to FLOPs 2x: hrank ranks the H x W",
        ),
    ],
)
def test_what_a_channel_criterion_cannot_do_on_the_model_is_one_line_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture, method: str, model: str, fragment: str
) -> None:
    text = PROTOCOL.replace("{name: small_cnn, args: {width: 1.0}}", model)
    text = text.replace(f"  - name: {FIXTURES / 'uniform_channels.py'}:UnderPruning\n", "")
    text = text.replace(f"  - name: {FIXTURES / 'uniform_channels.py'}:UniformChannels", f"  - {method}")
    protocol = _write(tmp_path, text)
    code, out, err = run_cli(capsys, "validate", str(protocol))
    assert code == 2 and fragment in err and "Traceback" not in err + out, err
    assert str(protocol) in err and err.count("\n") <= 1
