"""The runner's check that a method which trains nothing while pruning keeps the weights it started from
(prunebench.run.job.run: `check_kept_weights`, `kept_differences`), on model/state pairs built to pass and to fail
it. tests/hostile/test_cheats.py runs a method that gets past the seal (tamper_saved_state) through it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from prunebench.methods import Taxonomy
from prunebench.run.job.run import JobRun, kept_differences

KEYS = ["conv.weight", "conv.bias", "bn.running_mean"]
PRUNABLE = {"conv.weight"}


def states() -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    init = {k: torch.randn(4, 3) if k == "conv.weight" else torch.randn(4) for k in KEYS}
    final = {k: v + 1 for k, v in init.items()}
    return {"init": init, "rewind": init, "final": final}


def started(state: dict[str, torch.Tensor], keep: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """What a job reports at the start of retraining: the model (pruned where `keep` is False) and its masks."""
    model = {k: v.clone() for k, v in state.items()}
    model["conv.weight"] = model["conv.weight"] * keep
    return {"state": model, "weights": {"conv.weight": model["conv.weight"]}, "masks": {"conv.weight": keep}}


def test_kept_weights_and_other_entries_must_be_the_state_pruned_weights_may_be_anything() -> None:
    final = states()["final"]
    keep = torch.rand(4, 3, generator=torch.Generator().manual_seed(1)) > 0.5
    start = started(final, keep)
    assert kept_differences(start, final, KEYS, PRUNABLE, filters=False) == []
    start["state"]["conv.weight"][~keep] = 7.0  # where the masks prune: no matter
    assert kept_differences(start, final, KEYS, PRUNABLE, filters=False) == []
    changed = started(final, keep)
    changed["state"]["conv.weight"][tuple(keep.nonzero()[0].tolist())] += 1e-6  # one kept weight, by a hair
    assert kept_differences(changed, final, KEYS, PRUNABLE, filters=False) == ["conv.weight"]
    buffer = started(final, keep)
    buffer["state"]["bn.running_mean"] += 1  # BatchNorm statistics: whole, but not for a filter method
    assert kept_differences(buffer, final, KEYS, PRUNABLE, filters=False) == ["bn.running_mean"]
    assert kept_differences(buffer, final, KEYS, PRUNABLE, filters=True) == []


@pytest.mark.parametrize(
    "broken",
    [
        lambda s: s["state"].pop("conv.bias"),
        lambda s: s["masks"].update({"conv.weight": s["masks"]["conv.weight"].float()}),
        lambda s: s["masks"].pop("conv.weight"),
        lambda s: s["state"].update({"conv.bias": torch.zeros(5)}),
        lambda s: s.update({"state": "weights"}),
    ],
)
def test_a_reported_model_that_is_missing_or_malformed_differs(broken) -> None:  # type: ignore[no-untyped-def]
    final = states()["final"]
    start = started(final, torch.ones(4, 3, dtype=torch.bool))
    broken(start)
    assert kept_differences(start, final, KEYS, PRUNABLE, filters=False)


def job(
    when: str,
    regime: str,
    start: dict | None,
    *,
    trained_while_pruning: bool = False,
    reconstructed: frozenset = frozenset(),
) -> JobRun:
    """A JobRun at the step of the check, with what it reads: the job, the reports, the dense model, the method."""
    run = JobRun.__new__(JobRun)
    run.job = SimpleNamespace(ablation=None)  # no sanity ablation (reinit: tests/run/test_sanity_run.py)
    taxonomy = Taxonomy(when=when, granularity="unstructured", scope="global", schedule="one_shot", retraining=regime)
    run.info = SimpleNamespace(taxonomy=taxonomy)
    run.regime = regime
    run.base = SimpleNamespace(states=states())
    run.measurer = SimpleNamespace(keys=dict.fromkeys(KEYS), params=dict.fromkeys(PRUNABLE))
    run.log = SimpleNamespace(
        reports=SimpleNamespace(
            pruning_specs=["a run"] if trained_while_pruning else [],
            retrain_specs=["a run"],
            retraining_start=start,
            reconstructed=reconstructed,
        )
    )
    run.reasons = []
    return run


def test_retraining_starts_from_a_state_the_job_held_or_the_job_is_a_violation() -> None:
    s, keep = states(), torch.ones(4, 3, dtype=torch.bool)
    for name in ("final", "init"):  # the state it started from, or one it loaded
        run = job("after_training", "fine_tune", started(s[name], keep))
        run.check_kept_weights()
        assert run.reasons == [], name
    off_books = {k: v + 0.5 for k, v in s["final"].items()}
    run = job("after_training", "fine_tune", started(off_books, keep))
    run.check_kept_weights()
    assert len(run.reasons) == 1 and "differ from the final state it started from" in run.reasons[0]
    assert "conv.weight and 2 more" in run.reasons[0]
    # A method that prunes before training never held the trained weights: starting from them is a violation.
    run = job("before_training", "fine_tune", started(s["final"], keep))
    run.check_kept_weights()
    assert len(run.reasons) == 1 and "differ from the init state" in run.reasons[0]
    # What trained while pruning, or retrains from a fresh draw, has nothing to compare with.
    for run in (
        job("after_training", "fine_tune", started(off_books, keep), trained_while_pruning=True),
        job("after_training", "scratch", started(off_books, keep)),
    ):
        run.check_kept_weights()
        assert run.reasons == []
    run = job("after_training", "fine_tune", None)
    run.check_kept_weights()
    assert run.reasons == ["the job's process did not report the weights retraining started from"]


def test_only_the_prunable_weights_the_engines_solver_rewrote_may_differ_where_kept() -> None:
    """SparseGPT's reconstruction (the engine's declared solver) changes kept weights: the job's process reports which
    (`reconstructed`); they are the engine's work, every other entry must still be the state it started from."""
    s, keep = states(), torch.ones(4, 3, dtype=torch.bool)
    solved = {k: v.clone() for k, v in s["final"].items()}
    solved["conv.weight"] += 0.25
    run = job("after_training", "fine_tune", started(solved, keep), reconstructed={"conv.weight"})
    run.check_kept_weights()
    assert run.reasons == []
    run = job("after_training", "fine_tune", started(solved, keep))  # not reported as reconstructed
    run.check_kept_weights()
    assert len(run.reasons) == 1 and "conv.weight differ" in run.reasons[0]
    # Naming a non-prunable entry exempts nothing: a bias changed is still off the books.
    solved["conv.bias"] += 1
    run = job("after_training", "fine_tune", started(solved, keep), reconstructed={"conv.weight", "conv.bias"})
    run.check_kept_weights()
    assert len(run.reasons) == 1 and "conv.bias differ" in run.reasons[0]
