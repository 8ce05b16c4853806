"""The dense-model service: a seed's base model from the cache when its weights verify (a shipped reference's
first), else made by this worker while it holds the seed's lease; never trained twice by workers that share a
cache. On several ranks (torchrun) rank 0 decides, every rank trains, rank 0 writes."""

from __future__ import annotations

import functools
import math
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from prunebench.data import DataBundle
from prunebench.engine import distributed as ddp
from prunebench.errors import FieldError
from prunebench.fairness import job_states
from prunebench.protocol import Protocol
from prunebench.run.checkpoints import StageCheckpoints
from prunebench.run.dense.cache import BaseCheckpoint, DenseCache
from prunebench.run.dense.training import DenseSetting, pretrained_dense, train_dense
from prunebench.run.events import RunnerEvents
from prunebench.run.leases import Claims
from prunebench.run.writing import RunWriter


class BaseBusy(Exception):
    """Another worker is training this seed's dense model."""

    def __init__(self, seed: int) -> None:
        super().__init__(f"the dense model of seed {seed} is being trained by another worker")
        self.seed = seed


class DenseModels:
    """The dense base models of one run: each seed's made or loaded once, and kept for the run's jobs."""

    def __init__(
        self,
        protocol: Protocol,
        cache: DenseCache,
        *,
        data: Callable[[], DataBundle],
        device: torch.device,
        limit: int | None,
        checkpoints: StageCheckpoints,
        writer: RunWriter,
        events: RunnerEvents,
        dense_asked: bool = False,
    ) -> None:
        self.protocol = protocol
        self.cache = cache
        self.claims = Claims(cache.folder, key=cache.key)  # leases of dense models, beside them in the cache
        self._data = data  # loaded when a model must be made, never to answer what is cached
        self.device = device
        self.limit = limit
        self.checkpoints = checkpoints
        self.writer = writer
        self.events = events
        self.rank = ddp.rank()
        self._dense_asked = dense_asked  # `--dense-from`: a model it lacks is trained, with a warning
        self._bases: dict[int, BaseCheckpoint] = {}
        self._states: dict[tuple[int, str], bytes] = {}

    def get(self, seed: int) -> BaseCheckpoint:
        """The dense model of a seed: from the cache when its weights verify, else made now by this worker once it
        holds the seed's lease; BaseBusy while another worker trains it."""
        if seed not in self._bases:
            path, key = self.cache.locate(seed)
            source = ddp.broadcast(self._source(seed) if self.rank == 0 else None)
            if source == "busy":
                raise BaseBusy(seed)
            try:
                found = self.cache.find(seed) if source == "load" else None
                if found is None:
                    found = self._make(seed, key), path
                elif self.rank == 0:
                    self.events.base_loaded(seed, found[1])
            finally:
                if self.rank == 0:
                    self.claims.release(path.stem)
            self._check_expected(found[0])
            self._bases[seed] = found[0]
        return self._bases[seed]

    def _check_expected(self, base: BaseCheckpoint) -> None:
        """The dense model measures what the protocol says it should (base.expect), before any pruned result of
        it is accepted; a smoke run (`--limit`) evaluates too little to say."""
        expect = self.protocol.base.expect
        if expect is None or self.limit is not None:
            return
        mismatch = expect.mismatch(math.exp(base.test["loss"]))
        if mismatch is not None:
            raise self.protocol.locate(FieldError(("base", "expect", "test_perplexity"), mismatch))

    def states(self, seed: int, when: str) -> bytes:
        """The saved states of a seed's dense model (initialization, rewind point, final) that a job of a method
        pruning `when` may have (prunebench.fairness.job_states), pickled once a seed and kind: what its job
        process gets. A method that prunes before training never gets the trained weights."""
        if (seed, when) not in self._states:
            held = held_states(self.get(seed).states, when)
            self._states[(seed, when)] = pickle.dumps(held, protocol=pickle.HIGHEST_PROTOCOL)
        return self._states[(seed, when)]

    def keep_copy(self, seed: int, folder: Path) -> None:
        """The seed's dense model in `folder` (a run's dense/, `--save-models`), once, when this run has it."""
        path = folder / self.cache.locate(seed)[0].name
        if not path.exists() and seed in self._bases:
            self.writer.write(path, functools.partial(self.cache.save, seed, self._bases[seed], path))

    def _make(self, seed: int, key: str) -> BaseCheckpoint:
        if self._dense_asked:
            warnings.warn(
                f"--dense-from: no dense model of seed {seed} for this protocol in "
                f"{', '.join(map(str, self.cache.shipped))}; training it",
                stacklevel=4,
            )
        setting = DenseSetting(
            self.protocol,
            self._data(),
            self.device,
            self.limit,
            self.rank,
            self.events,
            self.checkpoints,
            self.writer,
        )
        base = (pretrained_dense if self.protocol.base.checkpoint else train_dense)(setting, seed, key)
        if self.rank == 0:
            path = self.cache.locate(seed)[0]
            self.writer.write(path, functools.partial(self.cache.save, seed, base))
            self.checkpoints.written()
        return base

    def _source(self, seed: int) -> str:
        """load (a verified checkpoint is there), busy (another worker trains it) or train (its lease held)."""
        if self.cache.find(seed) is not None:
            return "load"
        if self.claims.claim(self.cache.locate(seed)[0].stem) is None:
            return "busy"
        return "load" if self.cache.find(seed) is not None else "train"  # trained meanwhile by another worker


def held_states(states: Mapping[str, dict[str, torch.Tensor]], when: str) -> dict[str, dict[str, torch.Tensor]]:
    """Of a dense model's saved states, those a job of a method pruning `when` holds (prunebench.fairness.job_states):
    a method that prunes before training holds no trained weights."""
    init, rewind = states.get("init"), states.get("rewind")
    rewind_is_init = init is not None and rewind is not None and same_state(init, rewind)
    allowed = job_states(when, rewind_is_init=rewind_is_init)
    return {name: state for name, state in states.items() if name in allowed}


def same_state(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
