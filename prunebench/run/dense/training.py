"""A seed's dense base model, made: trained here, checkpointing every epoch and resuming from a checkpoint a
killed run left (`train_dense`), or the user's own (`pretrained_dense`). Where it comes from (the cache, a
shipped reference, another worker) is the dense-model service's decision (prunebench.run.dense.service)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from prunebench.data import DataBundle
from prunebench.engine import Engine, TrainState, state_copy
from prunebench.errors import FieldError
from prunebench.protocol import Protocol
from prunebench.results import StageLedger
from prunebench.run.checkpoints import StageCheckpoints
from prunebench.run.dense.cache import BaseCheckpoint, weights_sha256
from prunebench.run.dense.pretrained import load_into, read_pretrained
from prunebench.run.events import EpochsShown, RunnerEvents
from prunebench.run.setup import build_engine, seeded_model
from prunebench.run.writing import RunWriter


@dataclass(frozen=True)
class DenseSetting:
    """What making a dense model takes from its run: the protocol, the data, where it trains, and where its
    checkpoints and progress go. On several ranks every rank trains and rank 0 writes."""

    protocol: Protocol
    data: DataBundle
    device: torch.device
    limit: int | None
    rank: int
    events: RunnerEvents
    checkpoints: StageCheckpoints
    writer: RunWriter

    def model(self, seed: int) -> nn.Module:
        """The protocol's architecture at the initialization of `seed`."""
        return seeded_model(self.protocol, self.data, seed)

    def engine(self, model: nn.Module, seed: int) -> Engine:
        return build_engine(
            self.protocol,
            model,
            self.data,
            device=self.device,
            seed=seed,
            saved={},
            observer=EpochsShown(self.events),
            limit=self.limit,
        )


def pretrained_dense(setting: DenseSetting, seed: int, key: str) -> BaseCheckpoint:
    """The user's dense checkpoint (`base.checkpoint`) as the seed's base model (the same for every seed; its
    initialization, for methods that prune before training, is the seed's), its accuracies measured here."""
    p = setting.protocol
    model = setting.model(seed)
    init = state_copy(model)
    try:
        load_into(model, read_pretrained(p.base), p.model.name)
    except FieldError as exc:
        raise p.locate(exc) from None
    engine = setting.engine(model, seed)
    final = state_copy(engine.model)
    test, val = engine.evaluate(setting.data.test), engine.evaluate(setting.data.val)
    return BaseCheckpoint(
        key=key,
        sha256=weights_sha256(final),
        states={"init": init, "final": final},
        test={"top1": test.top1, "top5": test.top5, "loss": test.loss},
        val_top1=val.top1,
        ledger=StageLedger(),  # trained elsewhere: nothing of this protocol's budget
    )


def train_dense(setting: DenseSetting, seed: int, key: str) -> BaseCheckpoint:
    """Train a seed's dense model, checkpointing every epoch (rank 0 writes); a checkpoint left by a killed run
    is resumed."""
    p, checkpoints = setting.protocol, setting.checkpoints
    progress_key = f"base-{key[:32]}"
    saved = checkpoints.load(progress_key)
    setting.events.base_started(seed, p.base.epochs)
    model = setting.model(seed)
    init = state_copy(model)
    engine = setting.engine(model, seed)
    steps_per_epoch = -(-setting.data.train.num_examples // p.base.batch_size)
    rewind_step = round(p.pruning.rewind_epoch * steps_per_epoch)
    states = {"init": init, "rewind": init}
    resume = None
    if saved is not None:
        resume = TrainState(**saved["train"])
        states["rewind"] = saved["rewind"]
        setting.events.base_resumed(seed, resume.epochs_done)

    def save_rewind(step: int, _: int) -> None:
        if step == rewind_step:
            states["rewind"] = state_copy(engine.model)

    def checkpoint(state: TrainState) -> None:
        if setting.rank != 0:
            return
        payload = {"train": state.__dict__, "rewind": states["rewind"]}
        setting.writer.write(checkpoints.path(progress_key), functools.partial(checkpoints.save, progress_key, payload))

    engine.train(
        p.base,
        stage="base",
        on_step=save_rewind if rewind_step > 0 else None,
        checkpoint=checkpoint,
        resume=resume,
        checkpoint_every=p.runtime.checkpoint_every,
    )
    states["final"] = state_copy(engine.model)
    test = engine.evaluate(setting.data.test)
    val = engine.evaluate(setting.data.val)
    base = BaseCheckpoint(
        key=key,
        sha256=weights_sha256(states["final"]),
        states=states,
        test={"top1": test.top1, "top5": test.top5, "loss": test.loss},
        val_top1=val.top1,
        ledger=engine.ledger.base,
        curves=engine.curves,
    )
    checkpoints.finished(progress_key)
    return base
