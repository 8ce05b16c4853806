"""The one training loop, its optimizers and LR schedules, the budget ledger and mask enforcement.

Every stage (dense base training, a method's training while it prunes, retraining) runs through
`Engine.train`, so the budget of every stage is counted in one place and the masks are enforced
after every optimizer step whatever the method does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunebench.engine.optim import build_optimizer, lr_factor
from prunebench.engine.seeds import derive_seed
from prunebench.errors import JobFailed
from prunebench.masks import Masks, MaskSet, measure_sparsity
from prunebench.methods import Method, StepContext
from prunebench.protocol import TrainingSpec, retraining_recipe
from prunebench.results import EpochRecord, Ledger, StageLedger

if TYPE_CHECKING:
    from prunebench.data import DataBundle, Split

# The version of dense training's numerics: bump it with any change to how the loop, the optimizers, the LR
# schedules, the data order or the models train, so that cached dense models of the old code are never reused
# (it is part of the dense-checkpoint key). tests/engine/test_trainer_version.py pins what version 1 trains.
TRAINER_VERSION = 1

EpochCallback = Callable[[str, int, int, EpochRecord], None]
# (stage, prunable weights, masks) -> what the epoch's EpochRecord.analyses holds; it only reads them.
AnalysisCallback = Callable[[str, Mapping[str, Tensor], Mapping[str, Tensor]], dict[str, Any]]


@dataclass
class Evaluation:
    loss: float
    top1: float
    top5: float | None


def state_copy(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


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
        on_epoch: EpochCallback | None = None,
        base_spec: TrainingSpec | None = None,
        analyses: AnalysisCallback | None = None,
    ) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.model = model.to(device)
        self.data = data
        self.masks = masks
        self.masks.to(device)
        self.masks_active = False  # all-ones masks need no enforcement (dense training)
        self.all_macs = all_macs
        self.seed = seed
        self.eval_batch_size = eval_batch_size
        self.scoring_batch_size = scoring_batch_size  # hashed (pruning.scoring_batch_size): scores depend on it
        self.test_curves = test_curves
        self.top_k = top_k
        self.saved = saved_states or {}
        self.retrain_spec = retrain_spec
        self.base_spec = base_spec  # with retrain_spec, what the retraining regimes' recipes derive from
        self.on_epoch = on_epoch
        self.analyses = analyses  # per-epoch analyses (prunebench.engine.analyses), after validation, before on_epoch
        self.ledger = Ledger()
        self.curves: list[EpochRecord] = []
        self.method: Method[Any] | None = None
        self.pruning_specs: list[TrainingSpec] = []  # recipes a method trained with while pruning
        self.notes: dict[str, Any] = {}  # what a method reports about its job (informational only)
        self._optimizer: torch.optim.Optimizer | None = None
        self._forward_flops = 2.0 * masks.effective_macs(all_macs)
        self._stage_epochs: dict[str, int] = {}
        self.weights_changed = False  # by the engine itself: training or loading saved weights
        self._architecture_params = {id(p) for p in self.model.parameters()}
        self._runs = 0
        self.eval_mixed_precision = True  # bfloat16 autocast in evaluation on CUDA, until a stage says otherwise

    # ---- masks and weights ------------------------------------------------------------------
    def set_masks(self, masks: Masks) -> None:
        try:
            self.masks.set(masks, self._optimizer)
        except ValueError as exc:
            raise JobFailed(f"the method returned invalid masks: {exc}") from None
        self.masks_active = True
        self._forward_flops = 2.0 * self.masks.effective_macs(self.all_macs)

    def load_weights(self, state: dict[str, Tensor]) -> None:
        self.weights_changed = True
        self.model.load_state_dict(state)
        if self.masks_active:
            self.masks.apply_to_weights()

    def saved_state(self, which: str) -> dict[str, Tensor]:
        if which not in self.saved:
            raise KeyError(f"no saved {which} state")
        return {k: v.clone() for k, v in self.saved[which].items()}

    @property
    def forward_flops(self) -> float:
        """Forward FLOPs per example of the model under the current masks."""
        return self._forward_flops

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
            ledger = self.ledger.pruning
            ledger.forward_examples += take
            ledger.forward_flops += take * self._forward_flops * (3 if backward else 1)
            yield x, y

    # ---- training -----------------------------------------------------------------------------
    def train_while_pruning(self, epochs: int, spec: TrainingSpec | None) -> None:
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
        self.pruning_specs.append(spec)
        self.train(spec, stage="pruning")

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
    ) -> None:
        """Train for spec.epochs under the current masks, recording curves and the ledger."""
        model, data = self.model, self.data
        self._runs += 1
        self.weights_changed = True
        generator = torch.Generator().manual_seed(derive_seed(self.seed, stage, self._runs))
        # A method's hooks run in the stages it asks for (never in dense base training).
        method = self.method if self.method is not None and stage in self.method.hook_stages else None
        # Parameters a method added and steps itself (e.g. mask scores) stay out of the engine's
        # optimizer, weight decay and gradient clipping.
        own = {id(p) for p in method.own_parameters()} if method is not None else set()
        if own & self._architecture_params:
            # Only parameters a method added (mask scores) may escape the protocol's optimizer; the
            # model's own weights always train with the recipe every method shares.
            raise JobFailed("own_parameters() names weights of the model itself; only parameters the method added")
        params = [p for p in model.parameters() if id(p) not in own]
        optimizer = build_optimizer(params, spec.optimizer)
        self._optimizer = optimizer
        steps_per_epoch = max(1, math.ceil(data.train.num_examples / spec.batch_size))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(spec.schedule, spec.epochs, steps_per_epoch, spec.optimizer.lr)
        )
        ledger = self._stage_ledger(stage)
        amp = self.cuda and spec.mixed_precision
        if amp:
            model.to(memory_format=torch.channels_last)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()
        ledger.runs += 1
        step = 0
        for _ in range(spec.epochs):
            epoch = self._stage_epochs.get(stage, 0) + 1
            self._stage_epochs[stage] = epoch
            lr = optimizer.param_groups[0]["lr"]
            model.train()
            loss_sum = torch.zeros((), device=self.device)
            objective_sum = torch.zeros((), device=self.device)  # with a method's loss term
            correct = torch.zeros((), device=self.device, dtype=torch.long)
            seen = 0
            for x, y in data.train.batches(
                spec.batch_size, shuffle=True, train=True, generator=generator, device=self.device
            ):
                if amp and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast:
                    out = model(x)
                    loss = F.cross_entropy(out, y, label_smoothing=spec.label_smoothing)
                    total = loss
                    if method is not None:
                        extra = method.loss_term(model)
                        if extra is not None:
                            total = loss + extra
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if self.masks_active:
                    self.masks.apply_to_grads()
                if spec.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, spec.grad_clip)
                step_lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                if self.masks_active:
                    self.masks.apply_to_weights()
                n = len(y)
                step += 1
                seen += n
                loss_sum += loss.detach().float() * n
                if total is not loss:
                    objective_sum += total.detach().float() * n
                correct += (out.argmax(1) == y).sum()
                ledger.steps += 1
                ledger.examples += n
                ledger.train_flops += 3.0 * self._forward_flops * n
                if method is not None:
                    method.on_step_end(StepContext(stage, epoch, step, steps_per_epoch, model, self, lr=step_lr))
                if on_step is not None:
                    on_step(step, steps_per_epoch)
            ledger.epochs = ledger.examples / data.train.num_examples
            train_loss = float(loss_sum) / max(1, seen)
            if not math.isfinite(train_loss):
                raise JobFailed(f"the training loss diverged ({train_loss}) in {stage} epoch {epoch}")
            if not math.isfinite(float(objective_sum)):
                raise JobFailed(f"the method's loss term diverged ({float(objective_sum)}) in {stage} epoch {epoch}")
            if method is not None:
                method.on_epoch_end(StepContext(stage, epoch, step, steps_per_epoch, model, self, lr=lr))
            val = self.evaluate(data.val)
            test = self.evaluate(data.test).top1 if self.test_curves else None
            record = EpochRecord(
                stage=stage,  # type: ignore[arg-type]
                epoch=epoch,
                lr=lr,
                train_loss=train_loss,
                train_top1=float(correct) / max(1, seen),
                val_loss=val.loss,
                val_top1=val.top1,
                test_top1=test,
                sparsity=self.sparsity(),
                analyses=self.analyses(stage, self.masks.params, self.masks.masks) if self.analyses is not None else {},
            )
            self.curves.append(record)
            if self.on_epoch is not None:
                self.on_epoch(stage, epoch, spec.epochs, record)
        if amp:
            model.to(memory_format=torch.contiguous_format)
        self._optimizer = None
        self.eval_mixed_precision = spec.mixed_precision  # evaluation follows the stage that trained the weights

    def sparsity(self) -> float:
        """Zeros among the prunable weights, measured from the weights."""
        return measure_sparsity(self.masks.params)[0]

    @torch.no_grad()
    def evaluate(self, split: Split) -> Evaluation:
        model = self.model
        was_training = model.training
        model.eval()
        amp = self.cuda and self.eval_mixed_precision
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct1 = torch.zeros((), device=self.device, dtype=torch.long)
        correct5 = torch.zeros((), device=self.device, dtype=torch.long)
        n = 0
        k = min(5, self.data.num_classes)
        for x, y in split.batches(self.eval_batch_size, shuffle=False, train=False, generator=None, device=self.device):
            with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
                out = model(x)
            out = out.float()
            loss_sum += F.cross_entropy(out, y, reduction="sum").double()
            topk = out.topk(k, dim=1).indices
            hits = topk == y[:, None]
            correct1 += hits[:, 0].sum()
            correct5 += hits.any(1).sum()
            n += len(y)
        model.train(was_training)
        top5 = float(correct5) / n if 5 in self.top_k and self.data.num_classes > 5 else None
        return Evaluation(loss=float(loss_sum) / n, top1=float(correct1) / n, top5=top5)
