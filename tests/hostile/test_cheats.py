"""Deliberately unfair methods, each in a file of its own (tests/methods/fixtures/cheats/) loaded exactly as a user's
method is, run through the CLI in one grid next to an honest method: every cheat is caught (a violation or a
failure, with the reason) or has no effect on what is measured, the grid goes on, and the honest method gets
the very weights it gets alone (by their sha256).

Before job processes, 19 of these went unnoticed: a method's code ran in the runner's own process, next to
the test split, the ledger and the measuring code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prunebench import confine
from prunebench.results import ResultRecord, load_result

CHEATS = Path(__file__).parents[1] / "methods" / "fixtures" / "cheats"
PROTOCOL = textwrap.dedent(
    """\
    name: cheats
    data: {{name: digits}}
    model: {{name: small_cnn, args: {{width: 0.25}}}}
    base: {{epochs: 2, batch_size: 128, optimizer: {{lr: 0.1}}}}
    pruning: {{sparsities: {sparsities}}}
    retrain: {{epochs: 2, batch_size: 128, optimizer: {{lr: 0.05}}}}
    seeds: [0]
    runtime: {{job_timeout: 10, job_memory: 1.5GiB}}
    methods:
    {methods}
    """
)
STATED_BUDGET = {"reset_ledger": "budget: {pruning_epochs: 1}"}

# label -> (status, what its reasons say); None: no reason expected (the cheat had no effect).
VERDICTS: dict[str, tuple[str, str | None]] = {
    "train_then_load": ("violation", "asked to load weights that are neither a saved state"),
    "train_then_train_zero": ("violation", "outside the engine in its code before it called train (undone)"),
    "train_in_prune": ("violation", "outside the engine in prune() (undone)"),
    "train_in_epoch_end": ("violation", "outside the engine in on_epoch_end (undone)"),
    "train_in_step_end": ("violation", "outside the engine in on_step_end (undone)"),
    "train_in_loss_term": ("failed", "outside the engine in loss_term (undone)"),
    "train_in_retrain_epochs": ("violation", "outside the engine in retrain_epochs() (undone)"),
    "train_in_own_parameters": ("violation", "outside the engine in own_parameters (undone)"),
    "reset_ledger": ("violation", "trained 4.00 epochs while pruning; the budget allows 1"),
    "edit_ledger_in_hook": ("ok", None),
    "revive_step_end": ("violation", "outside the engine in on_step_end (undone)"),
    "revive_pre_hook": ("violation", "registered a forward pre hook on features"),
    "revive_global_hook": ("violation", "registered a global forward pre hook on every module"),
    "gradient_hook": ("violation", "registered a backward hook on a parameter"),
    "patch_forward": ("violation", "replaced the forward of the model in prune() (removed)"),
    "patch_eval": ("violation", "replaced the eval of the model in prune() (removed)"),
    "read_test_split": ("failed", "'NoneType' object has no attribute 'batches'"),
    "shadow_layer": ("violation", "parameter(s) or buffer(s) the protocol's architecture does not"),
    "replaced_conv": ("violation", "removed or replaced the module features"),
    "dense_copy": ("violation", "parameter(s) or buffer(s) the protocol's architecture does not (dense_copy."),
    "extra_capacity": ("violation", "into a parametrization while retraining"),
    "batch_norm_stats": ("violation", "running_mean"),
    "patch_evaluate": ("violation", "patched prunebench.engine.loop.Engine.evaluate (when its module was imported"),
    "patch_audit": ("violation", "patched prunebench.fairness.audit_budget, prunebench.masks.measure_sparsity"),
    "patch_torch": ("violation", "patched torch.nn.functional.cross_entropy (when its module was imported"),
    "poison_dtype": ("violation", "changed torch's default dtype to torch.float64 (in prune(); put back)"),
    "poison_grad": ("violation", "changed autograd (torch.set_grad_enabled) to False (in prune(); put back)"),
    "system_exit": ("failed", "prune raised SystemExit: 0"),
    "os_exit": ("failed", "exited with code 0 before it reported a result"),
    "keyboard_interrupt": ("failed", "retraining raised KeyboardInterrupt"),
    "hang": ("failed", "ran past runtime.job_timeout (10 s) and was killed"),
    "memory_hog": ("failed", "over runtime.job_memory (1536 MiB), and was killed"),
    "kill_self": ("failed", "killed by SIGKILL before it reported a result"),
    "kill_fork_server": ("failed", "or its fork server died) before it reported a result"),
    "before_training_trained": ("ok", None),  # it finds no trained weights to load: see the test below
    "tamper_saved_state": ("violation", "none of the states the job held where its masks keep them"),
}
if confine.unavailable() is None:  # confined, the fork server is the init of the job's PID namespace: unkillable
    VERDICTS["kill_fork_server"] = ("ok", None)
# Cheats whose every change is undone or refused: their final weights are the honest method's, bit for bit.
NO_EFFECT = {
    "train_then_load",
    "train_in_epoch_end",
    "train_in_step_end",
    "train_in_retrain_epochs",
    "train_in_own_parameters",
    "edit_ledger_in_hook",
    "revive_step_end",
    "revive_pre_hook",
    "revive_global_hook",
    "gradient_hook",
    "patch_forward",
    "patch_eval",
    "batch_norm_stats",
    "patch_evaluate",
    "patch_torch",
    "poison_dtype",
    "poison_grad",
} | ({"kill_fork_server"} if confine.unavailable() is None else set())


def run_grid(tmp: Path, cache: Path, methods: list[str], sparsities: str = "[0.5]") -> tuple[int, str, dict]:
    """`prunebench run` in a process of its own, as a user runs it: (exit code, stderr, records by label)."""
    entries = []
    for label in methods:
        if label in ("global_magnitude", "honest_last"):
            entries.append(f"  - {{name: global_magnitude, label: {label}}}")
        else:
            budget = f", {STATED_BUDGET[label]}" if label in STATED_BUDGET else ""
            entries.append(f"  - {{name: '{CHEATS / label}.py:Cheat', label: {label}{budget}}}")
    protocol = tmp / "cheats.yaml"
    protocol.write_text(PROTOCOL.format(sparsities=sparsities, methods="\n".join(entries)))
    command = [sys.executable, "-m", "prunebench.cli", "run", str(protocol), "--results", str(tmp / "r")]
    done = subprocess.run(
        [*command, "--cache", str(cache), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    records: dict[str, list[ResultRecord]] = {}
    for path in sorted((tmp / "r").rglob("sparsity-*.json")):
        record = load_result(path)
        records.setdefault(record.method.label, []).append(record)
    return done.returncode, done.stderr + done.stdout, records


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict]:
    cache = tmp_path_factory.mktemp("cache")
    alone = run_grid(tmp_path_factory.mktemp("alone"), cache, ["global_magnitude"])
    code, output, records = run_grid(
        tmp_path_factory.mktemp("grid"), cache, ["global_magnitude", *VERDICTS, "honest_last"]
    )
    records["alone"] = alone[2]["global_magnitude"]
    return code, output, records


@pytest.mark.parametrize("label", list(VERDICTS))
def test_each_cheat_is_caught_or_has_no_effect(grid: tuple[int, str, dict], label: str) -> None:
    _, output, records = grid
    assert label in records, output[-3000:]
    (record,) = records[label]
    status, reason = VERDICTS[label]
    assert record.status == status, record.reasons
    if reason is not None:
        assert any(reason in r for r in record.reasons), record.reasons
    if label in NO_EFFECT:
        (alone,) = records["alone"]
        assert record.weights_sha256 == alone.weights_sha256 and record.metrics == alone.metrics


def test_the_grid_goes_on_and_the_honest_method_is_untouched(grid: tuple[int, str, dict]) -> None:
    code, output, records = grid
    assert code == 1 and "job(s) FAILED" in output  # failed jobs; never the exit code 0 a cheat asked for
    (alone,) = records["alone"]
    for label in ("global_magnitude", "honest_last"):
        (honest,) = records[label]
        assert honest.status == "ok" and honest.weights_sha256 == alone.weights_sha256
        assert honest.metrics == alone.metrics and honest.ledger == alone.ledger


def test_a_cheat_cannot_shrink_its_ledger_or_claim_what_it_did_not_measure(grid: tuple[int, str, dict]) -> None:
    _, _, records = grid
    (reset,) = records["reset_ledger"]
    assert reset.ledger.pruning.epochs == 4.0 and reset.ledger.pruning.runs == 1
    (edited,) = records["edit_ledger_in_hook"]
    assert edited.ledger.retrain.epochs == 2.0 and edited.ledger.retrain.steps == 22
    (patched,) = records["patch_evaluate"]
    assert patched.metrics is not None and patched.metrics.test_top1 < 1.0
    (audit,) = records["patch_audit"]
    assert any("trained 10.00 epochs while pruning" in r for r in audit.reasons)
    assert audit.sparsity is not None and audit.sparsity.per_layer  # measured by the runner, not the patch
    for label in ("shadow_layer", "dense_copy", "extra_capacity"):
        (r,) = records[label]
        assert r.metrics is None or r.status == "violation"


def test_a_method_that_prunes_before_training_never_gets_the_trained_weights(grid: tuple[int, str, dict]) -> None:
    """Its job holds the initialization only (prunebench.fairness.job_states): not in the engine's saved states,
    asked for or read from the engine, nor in the job's task, nor on disk; so it prunes the initialization."""
    _, _, records = grid
    (record,) = records["before_training_trained"]
    assert record.method.taxonomy["when"] == "before_training"
    assert json.loads(record.method.notes["obtained"]) == [], record.method.notes
    if confine.unavailable() is None:  # the cache and the references' dense models are hidden from the job
        assert record.method.notes["readable"] == 0


def test_no_state_survives_from_one_job_to_the_next(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _, output, records = run_grid(tmp_path, tmp_path_factory.mktemp("cache"), ["stash_across_jobs"], "[0.5, 0.9]")
    found = [r.method.notes.get("found_stash") for r in records["stash_across_jobs"]]
    assert found == [False, False], output[-2000:]
    assert json.dumps([r.status for r in records["stash_across_jobs"]]) == '["ok", "ok"]'
