"""Deliberately unfair methods, each in a file of its own (tests/methods/fixtures/cheats/) loaded exactly as a user's
method is, run through the CLI in one grid next to an honest method: every cheat is caught (a violation or a
failure, with the reason) or has no effect on what is measured, the grid goes on, and the honest method gets
the very weights it gets alone (by their sha256).

Before job processes, 19 of these went unnoticed: a method's code ran in the runner's own process, next to
the test split, the ledger and the measuring code. Since a method's code runs in a process apart from its engine,
most have no effect at all; a grid with every method in its engine's process (as a method with code inside the
training step runs) shows the engine's seal still catching them there.
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

pytestmark = pytest.mark.slow

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

# label -> (status, what its reasons say); None: no reason expected (the cheat had no effect). A method's code runs in
# a process of its own (prunebench.run.sandbox.method_process): what it does to its copy of the model, to torch or
# to prunebench there never reaches the engine, which trains, counts and hands back the weights in another process.
ENGINE_GONE = "'RemoteAccess' object has no attribute '_engine'"  # the engine is not in the method's process
VERDICTS: dict[str, tuple[str, str | None]] = {
    "train_then_load": ("violation", "asked to load weights that are neither a saved state"),
    "train_then_train_zero": ("ok", None),  # its call of train(0) counts as a pruning run of no epochs
    "train_in_prune": ("ok", None),
    "train_in_epoch_end": ("ok", None),
    "train_in_step_end": ("ok", None),
    "train_in_loss_term": ("failed", "outside the engine in loss_term (undone)"),  # step code: the engine's process
    "train_in_retrain_epochs": ("ok", None),
    "train_in_own_parameters": ("violation", "outside the engine in own_parameters (undone)"),  # step code too
    "reset_ledger": ("failed", ENGINE_GONE),
    "edit_ledger_in_hook": ("failed", ENGINE_GONE),
    "revive_step_end": ("ok", None),
    "revive_pre_hook": ("ok", None),
    "revive_global_hook": ("ok", None),
    "gradient_hook": ("ok", None),
    "patch_forward": ("ok", None),
    "patch_eval": ("ok", None),
    "read_test_split": ("failed", ENGINE_GONE),
    "shadow_layer": ("ok", None),
    "replaced_conv": ("ok", None),
    "dense_copy": ("ok", None),
    "extra_capacity": ("ok", None),
    "batch_norm_stats": ("ok", None),
    "patch_evaluate": ("ok", None),
    "patch_audit": ("violation", "trained 10.00 epochs while pruning; the budget allows 0"),
    "patch_torch": ("ok", None),
    "poison_dtype": ("ok", None),
    "poison_grad": ("ok", None),
    "system_exit": ("failed", "prune raised SystemExit: 0"),
    "os_exit": ("failed", "os_exit.prune: the method's process ended"),
    "keyboard_interrupt": ("failed", "on_epoch_end raised KeyboardInterrupt"),
    "hang": ("failed", "ran past runtime.job_timeout (10 s) and was killed"),
    "memory_hog": ("failed", "over runtime.job_memory (1536 MiB), and was killed"),
    "kill_self": ("failed", "kill_self.prune: the method's process ended"),
    "kill_fork_server": ("failed", "or its fork server died) before it reported a result"),
    # What no seal saw while the method shared the engine's process: a profile hook firing inside the engine's loop,
    # a thread outliving retraining, tensors handed to load_weights and edited later, the engine's mask tensors,
    # the seal's own code replaced, the runner's messages forged or its connection closed.
    "trace_hook": ("ok", None),
    "thread_after_retraining": ("ok", None),
    "aliased_load": ("ok", None),
    "edit_engine_masks": ("ok", None),
    "replace_seal": ("ok", None),
    # Masks may move while retraining (dynamic sparse training), never grow beyond what retraining began with.
    "grow_while_retraining": ("failed", "grew its masks while retraining to"),
    "forge_messages": ("failed", "forge_messages.prune: the method's process sent a header without a known kind"),
    "silence_reports": ("failed", "silence_reports.prune: the method's process ended"),
    # A backward pass of its own (a loss term's autograd function) is code inside the training step: it runs in the
    # engine's process, where nothing stops it; its records say so, compare shows it apart and check refuses it.
    "autograd_backward": ("ok", None),
    # The data is in the engine's process alone: the method's holds not one example to rewrite.
    "swap_training_data": ("ok", None),
    "before_training_trained": ("ok", None),  # it finds no trained weights to load: see the test below
    "tamper_saved_state": ("failed", ENGINE_GONE),  # the engine's saved states are in another process
}
if confine.unavailable() is None:  # confined, the fork server is the init of the job's PID namespace: unkillable
    VERDICTS["kill_fork_server"] = ("ok", None)
# Cheats whose every change stays in their own process or is undone or refused: their final weights are the honest
# method's, bit for bit.
NO_EFFECT = {label for label, (status, _) in VERDICTS.items() if status == "ok"}
NO_EFFECT -= {"train_then_train_zero", "autograd_backward", "before_training_trained"}  # (it prunes the initialization)
NO_EFFECT |= {"train_then_load", "train_in_own_parameters"}
# Code inside the training step: the engine's process.
STEP_CODE = {"train_in_loss_term", "train_in_own_parameters", "autograd_backward"}

# The same cheats with every method in its engine's process (PRUNEBENCH_SHARED_ENGINE=1, as a method with code inside
# the training step runs): there the engine's seal undoes and reports what they change, and the code inventory names
# what they patch.
SHARED_VERDICTS: dict[str, tuple[str, str | None]] = {
    "train_in_prune": ("violation", "outside the engine in prune() (undone)"),
    "train_then_train_zero": ("violation", "outside the engine in its code before it called train (undone)"),
    "train_in_step_end": ("violation", "outside the engine in on_step_end (undone)"),
    "reset_ledger": ("violation", "trained 4.00 epochs while pruning; the budget allows 1"),
    "revive_pre_hook": ("violation", "registered a forward pre hook on features"),
    "replaced_conv": ("violation", "removed or replaced the module features"),
    "batch_norm_stats": ("violation", "running_mean"),
    "patch_evaluate": ("violation", "patched prunebench.engine.loop.Engine.evaluate (when its module was imported"),
    "poison_dtype": ("violation", "changed torch's default dtype to torch.float64 (in prune(); put back)"),
    "read_test_split": ("failed", "'NoneType' object has no attribute 'batches'"),
    "tamper_saved_state": ("violation", "none of the states the job held where its masks keep them"),
}


def run_grid(
    tmp: Path, cache: Path, methods: list[str], sparsities: str = "[0.5]", env: dict[str, str] | None = None
) -> tuple[int, str, dict]:
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
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
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
    records["results"] = list(tmp_path_factory.getbasetemp().glob("grid*/r"))  # where the grid's records are
    return code, output, records


@pytest.fixture(scope="module")
def shared_grid(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("cache")
    tmp = tmp_path_factory.mktemp("shared")
    return run_grid(tmp, cache, [*SHARED_VERDICTS, "global_magnitude"], env={"PRUNEBENCH_SHARED_ENGINE": "1"})[2]


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
    assert record.provenance.method_process is (label not in STEP_CODE)


@pytest.mark.parametrize("label", list(SHARED_VERDICTS))
def test_in_the_engines_process_the_seal_catches_each_cheat(shared_grid: dict, label: str) -> None:
    (record,) = shared_grid[label]
    status, reason = SHARED_VERDICTS[label]
    assert record.status == status and record.provenance.method_process is False, record.reasons
    assert reason is not None and any(reason in r for r in record.reasons), record.reasons


def test_code_inside_the_training_step_is_shown_apart_and_refused_by_the_gate(grid: tuple[int, str, dict]) -> None:
    from prunebench.report import compare
    from prunebench.report.check import FAILING_KINDS
    from prunebench.results import load_records

    _, _, records = grid
    (record,) = records["autograd_backward"]
    (alone,) = records["alone"]
    assert record.weights_sha256 != alone.weights_sha256  # in the engine's process its backward pass did change them
    (board,) = compare(load_records(records["results"])).boards
    (row,) = [r for r in board.rows if r.method == "autograd_backward"]
    assert row.rank is None and "engine's process" in (row.unranked_why or "")
    kinds = {i.kind for i in board.issues if i.method == "autograd_backward"}
    assert "shared_engine" in kinds and "shared_engine" in FAILING_KINDS


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
    # What had no effect did run: each attack notes that it did, in its own process.
    for label in ("trace_hook", "thread_after_retraining", "aliased_load", "replace_seal", "edit_engine_masks"):
        (r,) = records[label]
        assert r.method.notes.get("attack_ran") is True, (label, r.method.notes)
    (swapped,) = records["swap_training_data"]
    assert swapped.method.notes["splits_found"] == 0
    (zero,) = records["train_then_train_zero"]
    assert zero.ledger.pruning.runs == 1 and zero.ledger.pruning.epochs == 0.0
    (patched,) = records["patch_evaluate"]
    assert patched.metrics is not None and patched.metrics.test_top1 < 1.0
    (audit,) = records["patch_audit"]
    assert any("trained 10.00 epochs while pruning" in r for r in audit.reasons)
    assert audit.sparsity is not None and audit.sparsity.per_layer  # measured by the runner, not the patch
    for label in ("shadow_layer", "dense_copy", "extra_capacity"):  # extra weights stay in the method's copy
        (r,) = records[label]
        (alone,) = records["alone"]
        assert r.weights_sha256 == alone.weights_sha256 and r.metrics == alone.metrics


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
