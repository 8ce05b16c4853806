"""The one training loop, its optimizers and LR schedules, the budget ledger and mask enforcement.

Every stage (dense base training, a method's training while it prunes, retraining) runs through
`Engine.train`, so the budget of every stage is counted in one place and the masks are enforced
after every optimizer step whatever the method does. Method code (its hooks) runs under the engine's seal
(prunebench.engine.guard): whatever it changes outside the engine's own steps is undone and reported.
"""

from __future__ import annotations

import functools
import math
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunebench.engine import distributed as ddp
from prunebench.engine.access import EngineStepAccess
from prunebench.engine.evaluate import Evaluation, evaluate
from prunebench.engine.events import EngineObserver, EpochReport, Snapshot
from prunebench.engine.guard import Seal
from prunebench.engine.layerwise import prune_layerwise as layerwise_pass
from prunebench.engine.optim import build_optimizer, lr_factor
from prunebench.engine.regularizers import Regularization
from prunebench.engine.resume import TrainState, rng_state, set_rng_state
from prunebench.engine.seeds import derive_seed
from prunebench.errors import JobFailed
from prunebench.fairness import Allowance
from prunebench.masks import Masks, MaskSet, measure_sparsity
from prunebench.methods import Method, Regularizer, SavedState, StepContext
from prunebench.methods.layerwise import LayerScore, Layerwise
from prunebench.protocol import TrainingSpec, retraining_recipe
from prunebench.results import EpochRecord, Ledger, StageLedger
from prunebench.tasks import CLASSIFICATION, Task

if TYPE_CHECKING:
    from prunebench.data import DataBundle, Split

# The version of dense training's numerics: bump it with any change to how the loop, the optimizers, the LR
# schedules, the data order or the models train, so that cached dense models of the old code are never reused
# (it is part of the dense-checkpoint key). tests/engine/test_trainer_version.py pins what version 1 trains.
TRAINER_VERSION = 1

T = TypeVar("T")


def overrides(method: Method[Any] | None, hook: str) -> bool:
    """Whether a method implements an optional hook (the base class's does nothing, and is not called)."""
    return method is not None and getattr(type(method), hook) is not getattr(Method, hook)


@dataclass
class _StageRun:
    """One call of `Engine.train` as it trains: the stage, its recipe, the method's hooks that run in it, the
    optimizer, LR schedule and data-order generator, and the steps taken so far."""

    stage: str  # base, pruning or retrain
    spec: TrainingSpec
    method: Method[Any] | None  # None in a stage the method's hooks do not run in
    loss_term: Callable[[nn.Module], Tensor | None] | None  # the hooks the method overrides; None: not called
    on_step_end: Callable[[StepContext], None] | None
    on_epoch_end: Callable[[StepContext], None] | None
    params: list[nn.Parameter]  # what the optimizer steps and the gradient clipping clips
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # the order of the training data
    steps_per_epoch: int
    amp: bool  # bfloat16 autocast and channels-last on CUDA
    autocast: AbstractContextManager[Any]
    ledger: StageLedger  # the engine's own count of the stage (the runner counts again from the reports)
    distributed: bool
    net: nn.Module  # the model as it trains: wrapped for DDP when distributed
    step: int  # optimizer steps of this run of the stage, over all its epochs
    first_epoch: int  # 0-based: the epochs a resumed stage had done, else 0


@dataclass
class _EpochTotals:
    """What one epoch adds up as it trains, on the device (read once, when it ends)."""

    loss_sum: Tensor  # the cross-entropy, summed over examples
    objective_sum: Tensor  # what was minimized, where it is not the cross-entropy itself (a method's loss term)
    correct: Tensor
    seen: int = 0
    predicted: int = 0  # the task's units of prediction (an image; a token), this rank's: what correct counts among
    step_examples: list[int] = field(default_factory=list)
    step_flops: list[float] = field(default_factory=list)

    @classmethod
    def zeros(cls, device: torch.device) -> _EpochTotals:
        """The totals of an epoch before its first step."""
        return cls(
            loss_sum=torch.zeros((), device=device),
            objective_sum=torch.zeros((), device=device),
            correct=torch.zeros((), device=device, dtype=torch.long),
        )

    def count(self, n: int, scores: Tensor, labels: Tensor, loss: Tensor, objective: Tensor) -> None:
        """Add a batch of `n` examples (global; `scores` and `labels`, the task's predictions, this rank's share)."""
        self.seen += n
        self.loss_sum += loss.detach().float() * n
        if objective is not loss:
            self.objective_sum += objective.detach().float() * n
        self.correct += (scores.argmax(1) == labels).sum()
        self.predicted += labels.numel()


class Engine:
    """Trains and evaluates one model under masks, keeping the ledger of everything it spends."""

    def __init__(
        self,
        model: nn.Module,
        data: DataBundle,
        *,
        device: torch.device,
        masks: MaskSet,
        all_macs: dict[str, int],
        seed: int,
        eval_batch_size: int,
        scoring_batch_size: int = 512,
        test_curves: bool = False,
        top_k: tuple[int, ...] = (1, 5),
        saved_states: dict[str, dict[str, Tensor]] | None = None,
        retrain_spec: TrainingSpec | None = None,
        base_spec: TrainingSpec | None = None,
        observer: EngineObserver | None = None,
        limit: int | None = None,
        task: Task = CLASSIFICATION,
    ) -> None:
        self.device = device
        self.task = task  # how the model's outputs are scored (prunebench.tasks)
        # A smoke run (`run --limit N`, for testing only): every stage trains N steps, every evaluation N batches.
        self.limit = limit
        self.cuda = device.type == "cuda"
        self.model = model.to(device)
        self.data = data
        self.masks = masks
        self.masks.to(device)
        self.masks_active = False  # all-ones masks need no enforcement (dense training)
        self._retrain_kept: int | None = None  # during retraining: the weights kept when it began (set_masks)
        # Set (to why) for a job whose masks the engine made (a sanity ablation): a method may not move them while
        # retraining.
        self.frozen_masks: str | None = None
        self.all_macs = all_macs
        self.seed = seed
        self.eval_batch_size = eval_batch_size
        self.scoring_batch_size = scoring_batch_size  # hashed (pruning.scoring_batch_size): scores depend on it
        self.test_curves = test_curves and data.test is not None  # a job's process never holds the test split
        self.top_k = top_k
        self.saved = saved_states or {}
        self.retrain_spec = retrain_spec
        self.base_spec = base_spec  # with retrain_spec, what the retraining regimes' recipes derive from
        self.observer = observer or EngineObserver()
        self.ledger = Ledger()
        self.curves: list[EpochRecord] = []
        self.method: Method[Any] | None = None
        self.notes: dict[str, Any] = {}  # what a method reports about its job (informational only)
        # What the comparison setup lets the job spend from where it starts (SX-A / SX-B), set by the job.
        self.allowance = Allowance()
        self.failure: str | None = None  # why the engine failed the job, even if a method caught the exception
        self._optimizer: torch.optim.Optimizer | None = None
        self._forward_flops = 2.0 * masks.effective_macs(all_macs)
        self._stage_epochs: dict[str, int] = {}
        self._architecture_params = {id(p) for p in self.model.parameters()}
        self._architecture_keys = list(self.model.state_dict())
        self.seal = Seal(self.model)
        # Declared regularizers (soft masks, ...): what a pruning-stage train call applies, and the soft masks'
        # scores, kept over the job's calls (prunebench.engine.regularizers).
        self.regularization = Regularization(self.model, self.masks.params)
        self._runs = 0
        self._next_step_hook: float = 0
        # At a step whose on_step_end reads them (Method.dense_gradients): the prunable weights' gradients before
        # the masks zeroed them; None at every other moment.
        self._dense_grads: dict[str, Tensor] | None = None
        self.eval_mixed_precision = True  # bfloat16 autocast in evaluation on CUDA, until a stage says otherwise

    # ---- method code, under the seal ------------------------------------------------------------
    def call_method(self, where: str, call: Callable[[], T], *, remask: bool = True) -> T:
        """Run method code (a hook) under the seal: what it changed outside the engine is undone and reported,
        and the masks hold again afterwards (`remask`; not between a forward pass and its backward)."""
        self.seal.seal()
        result = call()
        self.seal.verify(where)
        if remask and self.masks_active:
            self.masks.apply_to_weights()
        return result

    def _entered_from_method(self, what: str) -> None:
        """The method called into the engine: first check what it did since the engine last had control."""
        self.seal.verify(f"its code before it called {what}")

    def _resealed(self) -> None:
        if self.seal.active:
            self.seal.seal()

    def _fail(self, message: str) -> JobFailed:
        self.failure = self.failure or message
        return JobFailed(message)

    def next_step_hook_at(self, step: int | None) -> None:
        """The method's on_step_end is next called at optimizer step `step` of the stage (None: not again in this
        run of the stage); the steps between skip it (calls that would do nothing cost a round trip each to a
        method in its own process)."""
        self._next_step_hook = math.inf if step is None else step

    def dense_gradients(self) -> dict[str, Tensor]:
        """A copy of this step's dense gradients of the prunable weights (StepContext.dense_gradients)."""
        if self._dense_grads is None:
            raise RuntimeError(
                "no dense gradient here: only in on_step_end, for a method whose class sets dense_gradients = True"
            )
        return {name: g.clone() for name, g in self._dense_grads.items()}

    # ---- masks and weights ------------------------------------------------------------------
    def set_masks(self, masks: Masks) -> None:
        self._entered_from_method("set_masks")
        try:
            valid = self.masks.validate(masks)
        except ValueError as exc:
            raise self._fail(f"the method returned invalid masks: {exc}") from None
        kept = sum(int(m.sum()) for m in valid.values())
        if self._retrain_kept is not None and self.frozen_masks is not None:
            raise self._fail(self.frozen_masks)
        if self._retrain_kept is not None and kept > self._retrain_kept:
            # Retraining is the same for every method: moving connections (dynamic sparse training) is a method's
            # choice, training more weights than it pruned to is not (a dense network trained, then cut at the end).
            raise self._fail(
                f"the method grew its masks while retraining to {kept} kept weights, more than the "
                f"{self._retrain_kept} it kept when retraining began"
            )
        self.masks.set(valid, self._optimizer)
        self.masks_active = True
        self._forward_flops = 2.0 * self.masks.effective_macs(self.all_macs)
        self._resealed()

    def load_weights(self, state: dict[str, Tensor]) -> None:
        """Put weights in place (the engine's own steps: rewinding, a fresh initialization); masks on top."""
        self.model.load_state_dict(state)
        if self.masks_active:
            self.masks.apply_to_weights()
        self._resealed()

    def load_weights_for_method(self, state: dict[str, Tensor]) -> None:
        """A method's request to load weights: granted for a saved state (initialization, rewind point, base
        model) or for the current weights changed only where they are pruned; anything else would be weights
        trained off the books, and is refused (a violation)."""
        self._entered_from_method("load_weights")
        if not (any(_same_state(state, saved) for saved in self.saved.values()) or self._pruned_only(state)):
            self.seal._violate(
                "the method asked to load weights that are neither a saved state (initialization, rewind point, "
                "base model) nor the current weights outside pruned positions (refused)"
            )
            return
        self.load_weights(state)

    def _pruned_only(self, state: dict[str, Tensor]) -> bool:
        current = self.model.state_dict()
        if set(state) != set(current):
            return False
        keep = {name: self.masks.masks[name] for name in self.masks.params}
        for name, value in current.items():
            other = state[name]
            if not isinstance(other, Tensor) or other.shape != value.shape:
                return False
            other = other.to(value.device)
            if name in keep and self.masks_active:
                if not torch.equal(other[keep[name]], value[keep[name]]):
                    return False
            elif not torch.equal(other, value):
                return False
        return True

    def saved_state(self, which: str) -> dict[str, Tensor]:
        """A copy of a state a method may ask for (`SavedState`: the initialization, the rewind point) that this
        engine holds: a job holds only the states its method may start from (prunebench.fairness.job_states)."""
        if which not in get_args(SavedState) or which not in self.saved:
            raise KeyError(f"no saved {str(which)[:40]} state")
        return {k: v.clone() for k, v in self.saved[which].items()}

    @property
    def forward_flops(self) -> float:
        """Forward FLOPs per example of the model under the current masks."""
        return self._forward_flops

    @property
    def dense_forward_flops(self) -> float:
        """Forward FLOPs per example of the dense model."""
        return 2.0 * sum(self.all_macs.values())

    def snapshot(self) -> Snapshot:
        """The model as it computes (see Snapshot), its prunable weights and masks, on the CPU."""
        state = {}
        for key in self._architecture_keys:
            value: Any = self.model
            for part in key.split("."):
                value = getattr(value, part, None)
            if isinstance(value, Tensor):
                state[key] = value.detach().cpu().clone()
        return Snapshot(
            state=state,
            weights={k: p.detach().cpu().clone() for k, p in self.masks.params.items()},
            masks={k: m.cpu().clone() for k, m in self.masks.masks.items()},
        )

    # ---- data for scoring ---------------------------------------------------------------------
    def scoring_batches(self, num_examples: int, *, backward: bool) -> Iterator[tuple[Tensor, Tensor]]:
        """A fixed, seeded sample of training batches for data-dependent criteria, in batches of the protocol's
        pruning.scoring_batch_size (never the evaluation batch size, which is not part of the protocol's
        identity: criteria that score under batch statistics depend on the batches); counted."""
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "scoring"))
        seen = 0
        bs = min(num_examples, self.scoring_batch_size)
        for x, y in self.data.train.batches(bs, shuffle=True, train=False, generator=generator, device=self.device):
            if seen >= num_examples:
                break
            take = min(len(y), num_examples - seen)
            x, y = x[:take], y[:take]
            seen += take
            self.count_scoring(take, take * self._forward_flops * (3 if backward else 1))
            yield x, y

    def count_scoring(self, examples: int, flops: float) -> None:
        """Examples passed forward (and backward) outside training, for a method: counted in the pruning ledger."""
        self.ledger.pruning.count_scoring(examples, flops)
        self.observer.scored(examples, flops)

    def prune_layerwise(self, spec: Layerwise, score: LayerScore | None, sparsity: float) -> Masks:
        """A method's layer-by-layer one-shot pass of a causal LM on the calibration windows, every prunable layer
        to `sparsity` (prunebench.engine.layerwise; the runner measures what it reached); the masks it chose are in
        place afterwards, and so are the weights of a declared solver (the one way a method changes the weights it
        keeps)."""
        self._entered_from_method("prune_layerwise")
        masks = layerwise_pass(self, spec, score, sparsity)
        valid = self.masks.validate(masks)
        self.masks.set(valid, self._optimizer)
        self.masks_active = True
        self._forward_flops = 2.0 * self.masks.effective_macs(self.all_macs)
        self._resealed()
        return {name: mask.clone() for name, mask in valid.items()}

    # ---- training -----------------------------------------------------------------------------
    def train_while_pruning(
        self, epochs: int, spec: TrainingSpec | None, regularizers: Sequence[Regularizer] = ()
    ) -> None:
        """A method's training in the pruning stage: `spec`, or the retraining recipe cut to `epochs`, with the
        declared `regularizers` (declarations or their model_dump()) applied."""
        self._entered_from_method("train")
        if spec is None:
            if self.retrain_spec is None:
                raise RuntimeError("no retraining recipe to train with")
            base = self.retrain_spec.model_dump()
            base["epochs"] = epochs
            base["schedule"]["milestones"] = [m for m in base["schedule"]["milestones"] if m < epochs]
            if base["schedule"]["name"] == "multistep" and not base["schedule"]["milestones"]:
                base["schedule"] = {"name": "constant"}
            spec = TrainingSpec.model_validate(base)
        elif spec.epochs != epochs:
            spec = spec.model_copy(update={"epochs": epochs})
        self.train(spec, stage="pruning", regularizers=regularizers)

    def soft_mask_scores(self) -> dict[str, Tensor]:
        """A copy of the soft masks' learned scores by weight name (empty when no call declared soft masks)."""
        return self.regularization.scores()

    def recipe(self, regime: str, epochs: int | None = None) -> tuple[str, TrainingSpec]:
        """(name, recipe) of a retraining regime under this engine's protocol recipes."""
        if self.retrain_spec is None:
            raise RuntimeError("no retraining recipe to derive from")
        base = self.base_spec or self.retrain_spec
        return retraining_recipe(regime, base=base, retrain=self.retrain_spec, epochs=epochs)

    def _stage_ledger(self, stage: str) -> StageLedger:
        return getattr(self.ledger, stage)

    def train(
        self,
        spec: TrainingSpec,
        *,
        stage: str,
        on_step: Callable[[int, int], None] | None = None,
        checkpoint: Callable[[TrainState], None] | None = None,
        resume: TrainState | None = None,
        regularizers: Sequence[Regularizer] = (),
        checkpoint_every: float = 0.0,
    ) -> None:
        """Train for spec.epochs under the current masks, recording curves and the ledger. After an epoch that ends
        `checkpoint_every` seconds or more after the last checkpoint (0: after every epoch) the stage's state goes to
        `checkpoint`; a stage given the state of its epoch k (`resume`) runs epochs k+1.. exactly as the
        uninterrupted stage would have (prunebench.engine.resume). `regularizers` are applied for this call only
        (prunebench.engine.regularizers; their state is not part of a checkpoint)."""
        try:
            run = self._begin_stage(spec, stage, resume, regularizers)
            last_checkpoint = time.monotonic()
            for epochs_done in range(run.first_epoch, spec.epochs):
                epoch = self._next_epoch(stage)
                lr = run.optimizer.param_groups[0]["lr"]  # the LR the epoch starts with: what its record shows
                totals = self._train_one_epoch(run, epoch, on_step)
                train_loss = self._close_epoch(run, epoch, totals)
                self._method_epoch_end(run, epoch, lr)
                record = self._evaluate_epoch(run, epoch, lr, train_loss, totals)
                self._report_epoch(run, record, totals)
                if checkpoint is not None and time.monotonic() - last_checkpoint >= checkpoint_every:
                    checkpoint(self._train_state(run, epochs_done + 1))
                    last_checkpoint = time.monotonic()
                if self._past_limit(run.step):
                    break
            self._end_stage(run)
        finally:
            self.regularization.end()  # the parametrization off the model, however the call ended

    # ---- the steps of a stage, in the order `train` takes them ----------------------------------
    def _begin_stage(
        self, spec: TrainingSpec, stage: str, resume: TrainState | None, regularizers: Sequence[Regularizer]
    ) -> _StageRun:
        """Set a stage up: its data-order generator, the declared regularizers (soft masks attached to the model),
        the method's hooks that run in it, the optimizer and LR schedule; then either announce the stage (to the
        ledger and the observer) or, resuming, put back the state of the epoch it resumes after."""
        self._runs = resume.runs if resume is not None else self._runs + 1
        self._next_step_hook = 0  # every step's on_step_end, until the method says when it wants the next
        generator = torch.Generator().manual_seed(derive_seed(self.seed, stage, self._runs))
        try:
            self.regularization.begin(regularizers, spec.epochs)
        except ValueError as exc:
            raise self._fail(f"the method declared regularizers the engine cannot apply: {exc}") from None
        # A method's hooks run in the stages it asks for (never in dense base training).
        method = self.method if self.method is not None and stage in self.method.hook_stages else None
        params = self._optimized_parameters(method)
        optimizer = build_optimizer(params, spec.optimizer)
        self._optimizer = optimizer
        # The weights retraining may train: those kept when it begins (masks may move, not grow; set_masks).
        retraining = stage == "retrain" and self.masks_active
        self._retrain_kept = sum(int(m.sum()) for m in self.masks.masks.values()) if retraining else None
        steps_per_epoch = max(1, math.ceil(self.data.train.num_examples / spec.batch_size))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(spec.schedule, spec.epochs, steps_per_epoch, spec.optimizer.lr)
        )
        amp = self.cuda and spec.mixed_precision
        if amp:
            self.model.to(memory_format=torch.channels_last)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()
        if resume is None:
            self._stage_ledger(stage).runs += 1
            start = stage == "retrain" and self.observer.wants_retraining_start
            self.observer.stage_started(stage, spec, self.snapshot() if start else self._snapshot_if_wanted())
        else:
            self._restore(resume, optimizer, scheduler, generator, method)
        return _StageRun(
            stage=stage,
            spec=spec,
            method=method,
            loss_term=method.loss_term if overrides(method, "loss_term") else None,
            on_step_end=method.on_step_end if overrides(method, "on_step_end") else None,
            on_epoch_end=method.on_epoch_end if overrides(method, "on_epoch_end") else None,
            params=params,
            optimizer=optimizer,
            scheduler=scheduler,
            generator=generator,
            steps_per_epoch=steps_per_epoch,
            amp=amp,
            autocast=autocast,
            ledger=self._stage_ledger(stage),  # only now: resuming replaces the engine's ledger
            distributed=ddp.active(),  # one stage on several processes (prunebench.engine.distributed)
            net=ddp.wrap(self.model, self.device),  # after resuming: DDP hands every rank rank 0's weights as of now
            step=resume.step if resume is not None else 0,
            first_epoch=resume.epochs_done if resume is not None else 0,
        )

    def _optimized_parameters(self, method: Method[Any] | None) -> list[nn.Parameter]:
        """The parameters the engine's optimizer steps: the model's, less those the method added and steps
        itself (e.g. mask scores) and those declared regularizers added (soft-mask scores), which stay out of the
        engine's optimizer, weight decay and gradient clipping."""
        own = {id(p) for p in self.call_method("own_parameters", method.own_parameters)} if method else set()
        if own & self._architecture_params:
            # Only parameters a method added (mask scores) may escape the protocol's optimizer; the
            # model's own weights always train with the recipe every method shares.
            raise self._fail("own_parameters() names weights of the model itself; only parameters the method added")
        own |= self.regularization.parameter_ids()
        return [p for p in self.model.parameters() if id(p) not in own]

    def _next_epoch(self, stage: str) -> int:
        """Count an epoch of `stage`: its number among all the stage's epochs, over every run of the stage."""
        epoch = self._stage_epochs.get(stage, 0) + 1
        self._stage_epochs[stage] = epoch
        return epoch

    def _train_one_epoch(self, run: _StageRun, epoch: int, on_step: Callable[[int, int], None] | None) -> _EpochTotals:
        """One pass over the training split in the stage's data order (or up to the smoke run's limit)."""
        self.model.train()
        totals = _EpochTotals.zeros(self.device)
        for x, y in self.data.train.batches(
            run.spec.batch_size, shuffle=True, train=True, generator=run.generator, device=self.device
        ):
            if self._past_limit(run.step):
                break
            self._train_step(run, epoch, x, y, totals)
            if on_step is not None:
                on_step(run.step, run.steps_per_epoch)
        run.ledger.close_epoch(self.data.train.num_examples)
        return totals

    def _train_step(self, run: _StageRun, epoch: int, x: Tensor, y: Tensor, totals: _EpochTotals) -> None:
        """One batch: forward, backward and an optimizer step under the masks, counted in the ledger and the
        epoch's totals; then the method's on_step_end."""
        n = len(y)  # the global batch's examples: what the ledger counts, on any number of ranks
        if run.distributed:
            x, y = ddp.shard(x, y)
        if run.amp and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        scores, labels, loss, total = self._forward(run, x, y, n)
        hook_due = run.on_step_end is not None and run.step + 1 >= self._next_step_hook
        dense = hook_due and run.method is not None and run.method.dense_gradients
        # A step's FLOPs: forward, the backward pass's input gradients and its weight gradients, each a sparse
        # forward's worth; where the method reads the dense gradient, the weight gradients are the dense model's
        # (Evci et al. 2020, section 4: an update step costs 2 f_S + f_D).
        sparse = self._forward_flops
        flops = (2.0 * sparse + self.dense_forward_flops if dense else 3.0 * sparse) * n
        step_lr = self._optimizer_step(run, total, keep_dense=dense)
        run.step += 1
        totals.count(n, scores, labels, loss, total)
        run.ledger.count_step(n, flops)
        totals.step_examples.append(n)
        totals.step_flops.append(flops)
        self.regularization.step(step_lr)  # the soft-mask scores' own step, where a method's on_step_end runs
        if run.on_step_end is not None and run.step >= self._next_step_hook:
            context = self._step_context(run, epoch, step_lr)
            try:
                self.call_method("on_step_end", functools.partial(run.on_step_end, context))
            finally:
                self._dense_grads = None

    def _forward(self, run: _StageRun, x: Tensor, y: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(scores, labels, loss, objective) of a batch of `n` examples (global): the task's predictions
        (prunebench.tasks), the batch's mean cross-entropy over them, and what is minimized (this rank's share, the
        declared regularizers' terms and the method's loss term added)."""
        spec, loss_term = run.spec, run.loss_term
        with run.autocast:
            scores, labels = self.task.predictions(self.task.outputs(run.net, x), y)
            if run.distributed:
                # This rank's share of the global batch's mean loss; DDP averages the gradients over ranks.
                loss = F.cross_entropy(scores, labels, label_smoothing=spec.label_smoothing, reduction="sum") / n
                total = loss * ddp.world()
            else:
                loss = F.cross_entropy(scores, labels, label_smoothing=spec.label_smoothing)
                total = loss
            terms = self.regularization.terms()
            if loss_term is not None:
                extra = self.call_method("loss_term", lambda: loss_term(self.model), remask=False)
                if extra is not None:
                    terms.append(extra)
            if terms:  # on the objective: under DDP the loss's share is scaled by the ranks, the terms are not
                total = total + functools.reduce(operator.add, terms)
        return scores, labels, loss, total

    def _optimizer_step(self, run: _StageRun, objective: Tensor, *, keep_dense: bool = False) -> float:
        """Backpropagate the objective and take one optimizer and LR-schedule step, the masks holding on the
        gradients and on the weights; the LR the step took. `keep_dense`: keep the prunable weights' gradients as
        backpropagation left them (under DDP already averaged over the ranks), before the masks zero them."""
        optimizer = run.optimizer
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if keep_dense:
            self._dense_grads = {
                name: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                for name, p in self.masks.params.items()
            }
        if self.masks_active:
            self.masks.apply_to_grads()
        if run.spec.grad_clip is not None:
            nn.utils.clip_grad_norm_(run.params, run.spec.grad_clip)
        step_lr: float = optimizer.param_groups[0]["lr"]
        optimizer.step()
        run.scheduler.step()
        if self.masks_active:
            self.masks.apply_to_weights()
        return step_lr

    def _close_epoch(self, run: _StageRun, epoch: int, totals: _EpochTotals) -> float:
        """The epoch's mean training loss, its totals summed over the ranks (which must hold the same weights);
        a loss or loss term that diverged fails the job."""
        if run.distributed:
            totals.loss_sum, totals.correct = ddp.all_sum(totals.loss_sum), ddp.all_sum(totals.correct)
            totals.predicted = int(ddp.all_sum(torch.tensor(totals.predicted, device=self.device)))
            ddp.sync_buffers(self.model)
            if not ddp.same_everywhere(self.model, self.masks.masks if self.masks_active else None):
                raise self._fail(f"the ranks' weights or masks differ after {run.stage} epoch {epoch}")
        train_loss = float(totals.loss_sum) / max(1, totals.seen)
        if not math.isfinite(train_loss):
            raise self._fail(f"the training loss diverged ({train_loss}) in {run.stage} epoch {epoch}")
        objective = float(totals.objective_sum)
        if not math.isfinite(objective):
            raise self._fail(f"the method's loss term diverged ({objective}) in {run.stage} epoch {epoch}")
        return train_loss

    def _method_epoch_end(self, run: _StageRun, epoch: int, lr: float) -> None:
        """The declared soft masks' next temperature, then the method's on_epoch_end, before the epoch is evaluated
        (what they do there shows in the record)."""
        self.regularization.end_epoch()
        if run.on_epoch_end is not None:
            self.call_method("on_epoch_end", functools.partial(run.on_epoch_end, self._step_context(run, epoch, lr)))

    def _step_context(self, run: _StageRun, epoch: int, lr: float) -> StepContext:
        """What a training hook sees of the stage as it stands (its access: the engine's side of the contract)."""
        access = EngineStepAccess(self)
        return StepContext(
            run.stage, epoch, run.step, run.steps_per_epoch, self.model, access, lr=lr, epochs=run.spec.epochs
        )

    def _evaluate_epoch(
        self, run: _StageRun, epoch: int, lr: float, train_loss: float, totals: _EpochTotals
    ) -> EpochRecord:
        """The epoch's record: its training figures, the validation (and, for test curves, test) evaluation and
        the sparsity measured from the weights."""
        val = self.evaluate(self.data.val)
        test = self.evaluate(self.data.test).top1 if self.test_curves and self.data.test is not None else None
        return EpochRecord(
            stage=run.stage,  # type: ignore[arg-type]
            epoch=epoch,
            lr=lr,
            train_loss=train_loss,
            train_top1=float(totals.correct) / max(1, totals.predicted),
            val_loss=val.loss,
            val_top1=val.top1,
            test_top1=test,
            sparsity=self.sparsity(),
        )

    def _report_epoch(self, run: _StageRun, record: EpochRecord, totals: _EpochTotals) -> None:
        """Add the epoch to the curves and report it to the observer, with every step's examples and FLOPs."""
        self.curves.append(record)
        report = EpochReport(run.stage, run.spec.epochs, record, totals.step_examples, totals.step_flops)
        self.observer.epoch_ended(report, self._snapshot_if_wanted())

    def _end_stage(self, run: _StageRun) -> None:
        """Leave the model as evaluation and method code expect it between stages."""
        self._retrain_kept = None
        if run.amp:
            self.model.to(memory_format=torch.contiguous_format)
        self.regularization.end()  # the plain weights back in place before the seal is taken again
        self._optimizer = None
        self.eval_mixed_precision = run.spec.mixed_precision  # evaluation follows the stage that trained the weights
        self._resealed()

    def _past_limit(self, step: int) -> bool:
        """Whether a smoke run (`limit`) has taken all the steps it trains a stage."""
        return self.limit is not None and step >= self.limit

    def _snapshot_if_wanted(self) -> Snapshot | None:
        return self.snapshot() if self.observer.wants_snapshots else None

    # ---- resuming a stage -----------------------------------------------------------------------
    def _train_state(self, run: _StageRun, epochs_done: int) -> TrainState:
        """What resumes the stage after its first `epochs_done` epochs (prunebench.engine.resume)."""
        method = run.method
        own = self.call_method("state_dict", method.state_dict, remask=False) if method is not None else {}
        return TrainState(
            stage=run.stage,
            epochs_done=epochs_done,
            step=run.step,
            model={k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            optimizer=run.optimizer.state_dict(),
            scheduler=run.scheduler.state_dict(),
            generator=run.generator.get_state(),
            rng=rng_state(),
            masks={k: m.cpu().clone() for k, m in self.masks.masks.items()} if self.masks_active else None,
            ledger=self.ledger.model_dump(),
            curves=[c.model_dump() for c in self.curves],
            stage_epochs=dict(self._stage_epochs),
            runs=self._runs,
            method=own,
        )

    def _restore(
        self,
        state: TrainState,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        generator: torch.Generator,
        method: Method[Any] | None,
    ) -> None:
        self.model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        generator.set_state(state.generator)
        set_rng_state(state.rng)
        self.ledger = Ledger.model_validate(state.ledger)
        self.curves = [EpochRecord.model_validate(c) for c in state.curves]
        self._stage_epochs = dict(state.stage_epochs)
        if method is not None:
            self.call_method("load_state_dict", lambda: method.load_state_dict(state.method))
        self._resealed()

    def sparsity(self) -> float:
        """Zeros among the prunable weights, measured from the weights."""
        return measure_sparsity(self.masks.params)[0]

    def evaluate(self, split: Split) -> Evaluation:
        return evaluate(
            self.model,
            split,
            num_classes=self.data.num_classes,
            batch_size=self.eval_batch_size,
            device=self.device,
            top_k=self.top_k,
            mixed_precision=self.eval_mixed_precision,
            limit=self.limit,
            task=self.task,
        )


def _same_state(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    if set(a) != set(b):
        return False
    return all(
        isinstance(a[k], Tensor) and a[k].shape == b[k].shape and torch.equal(a[k].to(b[k].device), b[k]) for k in b
    )
