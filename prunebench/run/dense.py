"""A seed's dense base model, as the runner makes it: trained here, checkpointing every epoch and resuming from
a checkpoint a killed run left (`train_dense`), or the user's own (`pretrained_dense`). Where it comes from (the
cache, a shipped reference, another worker) is the runner's decision (Runner.base)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from prunebench.engine import TrainState, state_copy
from prunebench.errors import FieldError
from prunebench.results import StageLedger
from prunebench.run.cache import BaseCheckpoint, weights_sha256
from prunebench.run.pretrained import load_into, read_pretrained

if TYPE_CHECKING:
    from prunebench.run.runner import Runner


class BaseBusy(Exception):
    """Another worker is training this seed's dense model."""

    def __init__(self, seed: int) -> None:
        super().__init__(f"the dense model of seed {seed} is being trained by another worker")
        self.seed = seed


def pretrained_dense(runner: Runner, seed: int) -> BaseCheckpoint:
    """The user's dense checkpoint (`base.checkpoint`) as the seed's base model (the same for every seed; its
    initialization, for methods that prune before training, is the seed's), its accuracies measured here."""
    p = runner.protocol
    _, key = runner.cache.locate(seed)
    model = runner.build_model(seed)
    init = state_copy(model)
    try:
        load_into(model, read_pretrained(p.base), p.model.name)
    except FieldError as exc:
        raise p.locate(exc) from None
    engine = runner.engine(model, seed, {})
    final = state_copy(engine.model)
    test, val = engine.evaluate(runner.data.test), engine.evaluate(runner.data.val)
    return BaseCheckpoint(
        key=key,
        sha256=weights_sha256(final),
        states={"init": init, "final": final},
        test={"top1": test.top1, "top5": test.top5, "loss": test.loss},
        val_top1=val.top1,
        ledger=StageLedger(),  # trained elsewhere: nothing of this protocol's budget
    )


def train_dense(runner: Runner, seed: int) -> BaseCheckpoint:
    """Train a seed's dense model, checkpointing every epoch (rank 0 writes); a checkpoint left by a killed run
    is resumed."""
    p = runner.protocol
    _, key = runner.cache.locate(seed)
    progress_key = f"base-{key[:32]}"
    saved = runner.progress.load(progress_key)
    runner.events.base_started(seed, p.base.epochs)
    model = runner.build_model(seed)
    init = state_copy(model)
    engine = runner.engine(model, seed, {})
    steps_per_epoch = -(-runner.data.train.num_examples // p.base.batch_size)
    rewind_step = round(p.pruning.rewind_epoch * steps_per_epoch)
    states = {"init": init, "rewind": init}
    resume = None
    if saved is not None:
        resume = TrainState(**saved["train"])
        states["rewind"] = saved["rewind"]
        runner.events.base_resumed(seed, resume.epochs_done)

    def save_rewind(step: int, _: int) -> None:
        if step == rewind_step:
            states["rewind"] = state_copy(engine.model)

    def checkpoint(state: TrainState) -> None:
        if runner.rank != 0:
            return
        payload = {"train": state.__dict__, "rewind": states["rewind"]}
        path = runner.progress.path(progress_key)
        runner.write(path, functools.partial(runner.progress.save, progress_key, payload))

    engine.train(
        p.base,
        stage="base",
        on_step=save_rewind if rewind_step > 0 else None,
        checkpoint=checkpoint,
        resume=resume,
    )
    states["final"] = state_copy(engine.model)
    test = engine.evaluate(runner.data.test)
    val = engine.evaluate(runner.data.val)
    base = BaseCheckpoint(
        key=key,
        sha256=weights_sha256(states["final"]),
        states=states,
        test={"top1": test.top1, "top5": test.top5, "loss": test.loss},
        val_top1=val.top1,
        ledger=engine.ledger.base,
        curves=engine.curves,
    )
    runner.track_checkpoint(progress_key)
    return base
