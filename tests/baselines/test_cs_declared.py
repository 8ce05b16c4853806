"""Continuous Sparsification ported to declared soft masks (prunebench.methods.SoftMasks) computes, bit for bit,
what its own code computed inside the engine's step (loss_term, own_parameters, on_step_end, on_epoch_end: the
copy in tests/methods/fixtures/cs_in_process.py), on the same protocol, seed and dense model."""

from __future__ import annotations

from pathlib import Path

import pytest
from prunebench_baselines.continuous_sparsification import ContinuousSparsification

from prunebench.engine import overrides
from prunebench.protocol import parse_protocol
from prunebench.results import ResultRecord
from prunebench.run import Runner, plan
from prunebench.testing import TINY

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parents[1] / "methods" / "fixtures" / "cs_in_process.py"
# The schedules and resets the port must reproduce: the defaults (reset at temperature 1, the engine's LR,
# the tiny penalty); a reset at the last temperature with a fixed LR, s0 > 0 and a penalty that moves the
# scores; one-epoch rounds (beta 1 throughout) without a penalty term or momentum.
CONFIGS = {
    "default": "{rounds: 2}",
    "final": "{rounds: 2, round_epochs: 2, reset_temperature: final, threshold: zero, penalty: 0.001, "
    "mask_initial_value: 0.01, mask_lr: 2.0, mask_momentum: 0.5}",
    "flat": "{rounds: 3, round_epochs: 1, penalty: 0, mask_momentum: 0}",
}


def _records(tmp_path: Path, cache: Path) -> dict[str, ResultRecord]:
    methods = "".join(
        f"  - name: {FIXTURE}:{cls}\n    label: {which}_{label}\n    config: {config}\n"
        for label, config in CONFIGS.items()
        for which, cls in (("old", "OldCS"), ("new", "NewCS"))
    )
    # Weight decay and gradient clipping in the rounds' recipe: the scores must stay out of both.
    text = TINY.split("methods:")[0].replace("[0.5, 0.9]", "[0.9]")
    text = text.replace("optimizer: {lr: 0.05}}", "optimizer: {lr: 0.05, weight_decay: 0.0005}, grad_clip: 1.0}")
    text += "budget: {pruning_epochs: 4}\nmethods:\n" + methods
    p = parse_protocol(text, tmp_path / "p.yaml")
    records = Runner(p, results_dir=tmp_path / "r", cache_dir=cache, device="cpu").run(plan(p))
    return {r.method.label: r for r in records}


def _compared(r: ResultRecord) -> dict[str, object]:
    """What must be equal: every number the job produced, its curves, masks and weights (by digest)."""
    assert r.status != "failed", r.reasons
    return {
        "status": (r.status, r.reasons),  # `threshold: zero` may miss the target: a violation, the same in both
        "notes": r.method.notes,  # masks_sha256, pruned_state_sha256, natural_sparsity, beta_per_epoch, ...
        "weights_sha256": r.weights_sha256,  # the final, retrained weights
        "curves": [c.model_dump() for c in r.curves],
        "ledger": r.ledger.model_dump(),
        "sparsity": r.sparsity.model_dump() if r.sparsity else None,
        "metrics": r.metrics.model_dump() if r.metrics else None,
    }


def test_declared_soft_masks_reproduce_the_in_process_method_bit_for_bit(tmp_path: Path, shared_cache: Path) -> None:
    for hook in ("loss_term", "own_parameters", "on_step_end", "on_epoch_end"):
        assert not overrides(ContinuousSparsification(), hook), hook
    got = _records(tmp_path, shared_cache)
    for label in CONFIGS:
        old, new = _compared(got[f"old_{label}"]), _compared(got[f"new_{label}"])
        assert old["weights_sha256"] is not None and "masks_sha256" in old["notes"]  # type: ignore[operator]
        for key in old:
            assert new[key] == old[key], (label, key)
    # The comparison has teeth: the configurations train differently, and the rounds do change the weights.
    digests = {got[f"new_{label}"].method.notes["pruned_state_sha256"] for label in CONFIGS}
    assert len(digests) == len(CONFIGS)
    assert got["new_final"].method.notes["beta_per_epoch"] == [[1.0, 200.0]] * 2
    assert 0 < got["new_final"].method.notes["natural_sparsity"] < 1
