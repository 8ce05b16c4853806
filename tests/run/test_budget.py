"""Budgets through the runner: method-chosen retraining epochs, parameters a method steps itself, the recipe
of learning-rate rewinding in the record."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import torch

from prunebench.protocol import parse_protocol
from prunebench.results import ResultRecord
from prunebench.run import Runner, plan
from prunebench.testing import TINY

# ---- the engine and the runner --------------------------------------------------------------------

CORE_METHODS = textwrap.dedent(
    """\
    import torch
    from torch import nn
    from prunebench.methods import Method, Taxonomy

    class OwnScale(Method):
        '''Adds a parameter to the model that it never steps, and trains while pruning: the engine's
        optimizer must leave it alone. Records the LR its hooks see and what the context offers.'''
        name = "own_scale"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="gradual", retraining="fine_tune")
        def __init__(self, config=None):
            super().__init__(config)
            self.extra = None
            self.lrs = []
        def own_parameters(self):
            return [self.extra] if self.extra is not None else []
        def prune(self, ctx):
            self.extra = nn.Parameter(torch.ones(()))
            ctx.model.register_parameter("own_scale", self.extra)
            ctx.note("budget", ctx.budget.pruning_epochs)
            ctx.note("flops_ratio", ctx.forward_flops(dense=True) / ctx.forward_flops())
            ctx.train(2, spec=ctx.recipe("fine_tune", 2))
            # What it saw goes into the record's notes (each job runs a fresh instance of its method).
            ctx.note("grad_seen", self.extra.grad is not None)
            ctx.note("extra", self.extra.item())
            ctx.note("lrs", self.lrs)
            del ctx.model.own_scale
            return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
        def loss_term(self, model):
            return 1e-3 * self.extra ** 2 if self.extra is not None and hasattr(model, "own_scale") else None
        def on_step_end(self, ctx):
            if ctx.stage == "pruning":
                self.lrs.append(ctx.lr)

    class AsksEpochs(Method):
        name = "asks_epochs"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="one_shot", retraining="fine_tune")
        answer = 3
        def prune(self, ctx):
            return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
        def retrain_epochs(self, ctx):
            return self.answer

    class AsksNonsense(AsksEpochs):
        name = "asks_nonsense"
        answer = 2.5
    """
)


def _run(tmp_path: Path, cache: Path, methods: list[str], extra: str = "") -> dict[str, ResultRecord]:
    (tmp_path / "core.py").write_text(CORE_METHODS)
    head = TINY.split("methods:")[0].replace("[0.5, 0.9]", "[0.5]")
    text = head + extra + "methods:\n" + "".join(f"  - name: {m}\n" for m in methods)
    (tmp_path / "p.yaml").write_text(text)
    p = parse_protocol(text, tmp_path / "p.yaml")
    runner = Runner(p, results_dir=tmp_path / "r", cache_dir=cache, device="cpu")
    return {r.method.label: r for r in runner.run(plan(p))}


def test_parameters_a_method_steps_itself_stay_out_of_the_engine_optimizer(tmp_path: Path, shared_cache: Path):
    (tmp_path / "core.py").write_text(CORE_METHODS)
    text = TINY.split("methods:")[0].replace("[0.5, 0.9]", "[0.5]") + "budget: {pruning_epochs: 2}\n"
    text += "methods:\n  - name: core.py:OwnScale\n"
    p = parse_protocol(text, tmp_path / "p.yaml")
    runner = Runner(p, results_dir=tmp_path / "r", cache_dir=shared_cache, device="cpu")
    (r,) = runner.run(plan(p))
    notes = r.method.notes
    assert r.status == "ok", r.reasons
    assert notes["grad_seen"], "the loss term reached the parameter"
    assert notes["extra"] == 1.0, "weight decay and SGD of the engine would have moved it"
    # Hooks see the engine's LR (the retraining recipe's, 0.05 constant) and the stage is counted as a run.
    assert set(notes["lrs"]) == {0.05} and len(notes["lrs"]) == r.ledger.pruning.steps == 22
    assert (r.ledger.pruning.runs, r.ledger.retrain.runs) == (1, 1)
    assert r.method.notes["budget"] == 2
    assert r.method.notes["flops_ratio"] == pytest.approx(1.0)


def test_retraining_epochs_a_method_asks_for_are_run_recorded_and_judged(tmp_path: Path, shared_cache: Path):
    got = _run(tmp_path, shared_cache, ["core.py:AsksEpochs", "core.py:AsksNonsense"])
    asks = got["asks_epochs"]
    assert asks.ledger.retrain.epochs == pytest.approx(3)
    assert (asks.retraining.epochs, asks.retraining.recipe, asks.retraining.batch_size) == (3, "retrain", 128)
    assert asks.status == "violation" and asks.reasons == ["S3.2: retrained 3.00 epochs; the protocol fixes 1"]
    nonsense = got["asks_nonsense"]
    assert nonsense.status == "failed" and "returned 2.5, not a number of epochs" in nonsense.reasons[0]


def test_the_result_records_the_recipe_of_learning_rate_rewinding(tmp_path: Path, shared_cache: Path):
    got = _run(tmp_path, shared_cache, ["lr_rewinding"], extra="comparison: S3.1\nbudget: {pruning_epochs: 3}\n")
    r = got["lr_rewinding"]
    assert r.status == "ok", r.reasons  # S3.1 fixes the epochs, not the schedule
    assert r.retraining.recipe == "base_tail" and r.retraining.regime == "lr_rewinding"
    assert r.retraining.optimizer["lr"] == 0.1  # base training's, not the protocol's retraining 0.05
    assert (r.retraining.schedule["span_epochs"], r.retraining.schedule["start_epoch"]) == (2, 1.0)
    assert r.ledger.retrain.epochs == pytest.approx(1)
    assert math.isclose(r.curves[-1].lr, 0.1)
    assert torch.isfinite(torch.tensor(r.metrics.test_top1))  # type: ignore[union-attr]
