"""Learning-rate schedules, optimizers and seeds of the one training loop."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from prunebench.engine import build_optimizer, derive_seed, lr_factor
from prunebench.protocol import OptimizerSpec, ScheduleSpec


def test_multistep_decays_at_milestones() -> None:
    f = lr_factor(ScheduleSpec(name="multistep", milestones=[2, 4], gamma=0.1), epochs=6, steps_per_epoch=10, peak_lr=1)
    assert [f(s) for s in (0, 19, 20, 39, 40, 59)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_step_schedule() -> None:
    f = lr_factor(ScheduleSpec(name="step", step_size=3, gamma=0.5), epochs=9, steps_per_epoch=4, peak_lr=1)
    assert [f(s) for s in (0, 11, 12, 24)] == pytest.approx([1, 1, 0.5, 0.25])


def test_cosine_reaches_min_lr_and_warmup_is_linear() -> None:
    spec = ScheduleSpec(name="cosine", warmup_epochs=1, min_lr=0.01)
    f = lr_factor(spec, epochs=11, steps_per_epoch=10, peak_lr=0.1)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx((1 + 0.1) / 2)  # halfway through the cosine: midway between peak and floor
    assert f(110) == pytest.approx(0.01 / 0.1)


def test_constant() -> None:
    f = lr_factor(ScheduleSpec(), epochs=3, steps_per_epoch=5, peak_lr=0.3)
    assert {f(s) for s in range(15)} == {1.0}


def test_optimizers_follow_the_spec() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(params, OptimizerSpec(name="sgd", lr=0.2, momentum=0.5, nesterov=True, weight_decay=0.1))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["lr"] == 0.2 and sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 0.1
    assert isinstance(build_optimizer(params, OptimizerSpec(name="adamw", lr=1e-3)), torch.optim.AdamW)


def test_derive_seed_is_stable_across_processes() -> None:
    here = derive_seed(3, "retrain", 1)
    code = "from prunebench.engine import derive_seed; print(derive_seed(3, 'retrain', 1))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(other) == here
    assert derive_seed(3, "retrain", 2) != here


def test_evaluation_follows_the_mixed_precision_of_the_stage_that_trained_the_weights() -> None:
    from prunebench.protocol import TrainingSpec
    from prunebench.testing import digits, engine_for

    engine = engine_for(digits())
    assert engine.eval_mixed_precision  # the default of a TrainingSpec
    engine.train(TrainingSpec(epochs=0, mixed_precision=False), stage="retrain")
    assert not engine.eval_mixed_precision
    engine.train(TrainingSpec(epochs=0, mixed_precision=True), stage="retrain")
    assert engine.eval_mixed_precision


def test_the_engine_grants_only_the_saved_states_it_holds() -> None:
    """A job's engine holds the states its method may start from (prunebench.fairness.job_states): a method asks for
    a saved state by the names of `SavedState` only, and loads only weights it holds (or changes at pruned
    positions); the trained weights of a job that prunes before training are refused, with a violation."""
    from prunebench.testing import digits, engine_for

    data = digits()
    engine = engine_for(data)
    init = {k: v.clone() for k, v in engine.model.state_dict().items()}
    trained = {k: v + 0.01 if v.is_floating_point() else v.clone() for k, v in init.items()}
    engine.saved = {"init": init, "rewind": init, "final": trained}  # an after-training job's
    with pytest.raises(KeyError):
        engine.saved_state("final")  # not a state a method asks for: it starts from it, or never gets it
    assert all(torch.equal(v, init[k]) for k, v in engine.saved_state("rewind").items())

    engine = engine_for(data)
    engine.saved = {"init": init}  # a before-training job's, with a rewind point later than its initialization
    with pytest.raises(KeyError):
        engine.saved_state("rewind")
    engine.load_weights_for_method(trained)
    assert engine.seal.violations and "neither a saved state" in engine.seal.violations[0]
    assert all(torch.equal(v, init[k]) for k, v in engine.model.state_dict().items())
    engine.load_weights_for_method(init)  # the initialization itself: granted
    assert len(engine.seal.violations) == 1


def test_on_step_end_is_called_at_the_steps_the_method_asks_for() -> None:
    """A hook that says when it wants its next call (`ctx.next_call_at`) skips the steps between; the count of
    calls follows, and a new run of the stage calls every step again until told otherwise."""
    from prunebench.methods import Method, StepContext, Taxonomy
    from prunebench.protocol import TrainingSpec
    from prunebench.testing import digits, engine_for

    class EveryThird(Method):  # type: ignore[type-arg]
        name = "every_third"
        taxonomy = Taxonomy(
            when="after_training",
            granularity="unstructured",
            scope="global",
            schedule="gradual",
            retraining="fine_tune",
        )

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[int, int]] = []

        def on_step_end(self, ctx: StepContext) -> None:
            self.calls.append((ctx.epoch, ctx.step))
            ctx.next_call_at(ctx.step + 3 if ctx.step < 9 else None)

    engine = engine_for(digits())
    method = EveryThird()
    engine.method = method
    spec = TrainingSpec(epochs=1, batch_size=64)
    engine.train(spec, stage="pruning")
    steps = [s for _, s in method.calls]
    assert steps == [1, 4, 7, 10]  # then None: not again in this run of the stage
    engine.train(spec, stage="pruning")
    assert [s for _, s in method.calls[4:]][:3] == [1, 4, 7]  # a new run starts from every step


def test_a_stage_checkpoints_at_the_interval_it_is_given() -> None:
    from prunebench.protocol import RuntimeSpec, TrainingSpec
    from prunebench.testing import digits, engine_for

    engine = engine_for(digits())
    saved: list[int] = []
    spec = TrainingSpec(epochs=3, batch_size=256)
    engine.train(spec, stage="retrain", checkpoint=lambda s: saved.append(s.epochs_done), checkpoint_every=0)
    assert saved == [1, 2, 3]  # 0: after every epoch
    saved.clear()
    engine.train(spec, stage="retrain", checkpoint=lambda s: saved.append(s.epochs_done), checkpoint_every=3600)
    assert saved == []  # epochs far shorter than the interval: none
    assert RuntimeSpec.model_validate({"checkpoint_every": "5m"}).checkpoint_every == 300.0
    assert RuntimeSpec().checkpoint_every == 30.0


def test_under_ddp_the_objective_keeps_the_loss_scaled_when_a_regularizer_adds_terms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DDP averages the ranks' gradients, so each rank minimizes its share of the global batch's loss times the
    ranks, plus the declared terms once: the averaged gradient is then the one-process gradient of the mean loss
    plus the terms. Two ranks are simulated in one process (each its half of the batch), their gradients averaged
    as DDP does, and compared with the gradient one process takes."""
    from types import SimpleNamespace

    from torch import nn

    from prunebench.data import load_data
    from prunebench.engine import distributed as ddp
    from prunebench.methods import BatchNormL1
    from prunebench.protocol import DataSpec, TrainingSpec
    from prunebench.testing import engine_for

    data = load_data(DataSpec(name="synthetic"))
    engine = engine_for(data)
    engine.regularization.begin([BatchNormL1(coefficient=0.05)], 1)
    model = engine.model
    x, y = next(iter(data.train.batches(16, shuffle=False, train=True, generator=None, device="cpu")))
    run = SimpleNamespace(spec=TrainingSpec(epochs=1), loss_term=None, autocast=torch.autocast("cpu", enabled=False))

    def gradient(distributed: bool, xs: torch.Tensor, ys: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        run.net, run.distributed = model, distributed
        _, _, _, objective = engine._forward(run, xs, ys, len(y))  # type: ignore[arg-type]
        objective.backward()
        return [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]

    model.eval()  # BatchNorm on running statistics: a rank's half gives the same activations as the whole batch
    one = gradient(False, x, y)
    monkeypatch.setattr(ddp, "world", lambda: 2)
    ranks = [gradient(True, x[r::2], y[r::2]) for r in range(2)]
    averaged = [(a + b) / 2 for a, b in zip(*ranks, strict=True)]
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for got, want in zip(averaged, one, strict=True):
        assert torch.allclose(got, want, atol=1e-6), (got - want).abs().max()
