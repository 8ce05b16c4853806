"""What the engine hands a method: the pruning context (weights, masks, scoring batches, saved states, and
training through the engine) and the context of a training step. Everything that trains or touches data goes
through here, so the engine can count it.

A context holds no engine: it holds an access object (prunebench.methods.access), whose operations are all the
contract's way into the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from prunebench.fairness import Allowance
from prunebench.masks import Masks, masks_from_scores
from prunebench.methods.access import PruningAccess, StepAccess
from prunebench.methods.layerwise import LayerScore, Layerwise
from prunebench.methods.regularizers import Regularizer, validate_regularizers
from prunebench.protocol import BudgetSpec, PruningSpec
from prunebench.results.targets import Target
from prunebench.results.taxonomy import Regime, Scope

if TYPE_CHECKING:
    from prunebench.protocol import TrainingSpec


class PruningContext:
    """What the engine hands a method when it prunes. Everything that trains or touches data
    goes through here, so the engine can count it."""

    def __init__(
        self,
        access: PruningAccess,
        *,
        target_sparsity: float | None,
        generator: torch.Generator,
        scoring_examples: int | None = None,
        budget: BudgetSpec | None = None,
        target: Target | None = None,
        invert: bool = False,
    ) -> None:
        """`access`: the engine's side of the contract (prunebench.engine.access.EnginePruningAccess). `target`:
        what the job prunes to (prunebench.results.targets); by default the weight sparsity `target_sparsity`,
        which is None when the target is a cost reduction. `invert`: a job of the `invert` sanity ablation
        (prunebench.protocol.sanity): `masks_from_scores` keeps the lowest scores."""
        self._access = access
        if target is None:
            if target_sparsity is None:
                raise ValueError("a pruning context needs a target sparsity or a target")
            target = Target("sparsity", target_sparsity)
        self.target = target
        self.target_sparsity = target.value if target.kind == "sparsity" else None
        self.generator = generator  # seeded per job: use it for every random choice
        # The protocol's pruning.scoring_examples; its default where a context is built by hand.
        self._scoring_examples = scoring_examples
        self._budget = budget
        self._invert = invert
        self.last_from_scores: Masks | None = None  # what masks_from_scores returned last (Method.scored)

    @property
    def model(self) -> nn.Module:
        return self._access.model

    @property
    def device(self) -> torch.device:
        return self._access.device

    @property
    def num_classes(self) -> int:
        return self._access.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one example, e.g. for a data-free criterion's synthetic input."""
        return self._access.input_shape

    @property
    def scoring_examples(self) -> int:
        """How many examples `batches` may yield in all under the protocol (pruning.scoring_examples):
        the natural default of a data-dependent criterion."""
        if self._scoring_examples is not None:
            return self._scoring_examples
        return int(PruningSpec.model_fields["scoring_examples"].default)

    @property
    def budget(self) -> BudgetSpec:
        """The budget in force for this method: the one the protocol states for it, else the protocol's.
        Methods that train while pruning plan with `budget.pruning_epochs`; the audit holds them to it."""
        if self._budget is not None:
            return self._budget
        return BudgetSpec()

    @property
    def retrain_epochs(self) -> int:
        """Epochs of the protocol's retraining stage."""
        return self._access.retrain_epochs()

    def allowance(self) -> Allowance:
        """What the comparison setup lets this job spend from where it starts: total epochs under SX-A, total
        training FLOPs under SX-B (pruning and retraining; base training's too for a job that starts from the
        initialization, which did not use it); both None under the other setups. A method that asks for its
        training's length (`retrain_epochs`) plans with it; the audit holds the ledger to it
        (prunebench.fairness.allowance)."""
        return self._access.allowance()

    def forward_flops(self, *, dense: bool = False) -> float:
        """Forward FLOPs per example of the model under the current masks (or of the dense model)."""
        return self._access.forward_flops(dense=dense)

    def recipe(self, regime: Regime, epochs: int) -> TrainingSpec:
        """The protocol's training recipe of a retraining regime over `epochs` epochs, e.g. for the rounds
        of an iterative method (fine_tune / weight_rewinding / scratch: the retraining recipe stretched to
        `epochs`; lr_rewinding: the last `epochs` epochs of base training's recipe)."""
        return self._access.recipe(regime, epochs)

    def note(self, key: str, value: Any) -> None:
        """Record something about this job in the result (`method.notes`), e.g. how the final mask was
        chosen. Informational: nothing is measured from it."""
        self._access.note(key, value)

    def weights(self) -> dict[str, Tensor]:
        """The prunable weight tensors (parameters, in execution order), by parameter name."""
        return self._access.weights()

    def masks(self) -> Masks:
        """A copy of the current keep-masks (True = kept)."""
        return self._access.masks()

    def layer_macs(self) -> dict[str, int]:
        """Forward multiply-accumulates per example of each prunable weight's layer."""
        return self._access.layer_macs()

    def initial_weights(self) -> dict[str, Tensor]:
        """The model's state at initialization (the base model's seed), for rewinding."""
        return self._access.saved_state("init")

    def rewind_weights(self) -> dict[str, Tensor]:
        """The model's state at the protocol's rewind epoch of base training. A method that prunes before training
        has it only when it is the initialization (rewind_epoch 0): it never gets weights base training made."""
        return self._access.saved_state("rewind")

    def batches(self, num_examples: int, *, backward: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """Training batches for data-dependent criteria, at most the protocol's scoring budget.
        Pass backward=True when the method backpropagates through them (it costs 3x the FLOPs)."""
        return self._access.scoring_batches(num_examples, backward=backward)

    def masks_from_scores(self, scores: dict[str, Tensor], *, scope: Scope, sparsity: float | None = None) -> Masks:
        """Keep the highest scores so that exactly the target sparsity is reached; weights already
        pruned stay pruned. In a job of the `invert` sanity ablation, the lowest (the scores negated)."""
        if self._invert:
            scores = {k: -s for k, s in scores.items()}
        masks = masks_from_scores(
            scores, self.target_sparsity if sparsity is None else sparsity, scope=scope, current=self.masks()
        )
        self.last_from_scores = masks
        return masks

    def set_masks(self, masks: Masks) -> None:
        """Apply intermediate masks (iterative methods); the engine validates and enforces them."""
        self._access.set_masks(masks)

    def load_weights(self, state: dict[str, Tensor]) -> None:
        """Load a saved state (`initial_weights()`, `rewind_weights()`), or the current weights
        changed only at pruned positions; the current masks are applied on top. Any other weights would have
        been trained off the books: the engine refuses them and the job is a violation."""
        self._access.load_weights(state)

    def train(self, epochs: int, *, spec: TrainingSpec | None = None, regularizers: Iterable[Regularizer] = ()) -> None:
        """Train the masked model with the engine's loop; defaults to the protocol's retraining
        recipe cut to `epochs`. Counted in the pruning stage of the ledger. `regularizers` (SoftMasks, BatchNormL1,
        GroupLasso: prunebench.methods.regularizers) are applied by the engine for this call only; soft masks'
        scores carry over to the job's later calls (`soft_mask_scores`)."""
        self._access.train(epochs, spec, validate_regularizers(regularizers))

    def soft_mask_scores(self) -> dict[str, Tensor]:
        """A copy of the soft masks' learned scores by weight name, as the last train call that declared
        `SoftMasks` left them; empty when none did. Free: nothing is counted."""
        return self._access.soft_mask_scores()

    def prune_layerwise(self, spec: Layerwise, score: LayerScore | None = None) -> Masks:
        """Prune a causal LM to the target sparsity layer by layer on the protocol's calibration windows
        (prunebench.methods.layerwise): `score(name, weight, statistic)` gives each prunable linear's scores (the
        highest kept), or `spec.solver` reconstructs the weights (SparseGPT). The masks are applied when this
        returns; return them from `prune`. The calibration windows are counted in the pruning ledger."""
        if (score is None) == (spec.solver is None):
            raise ValueError("give a score, or declare a solver (spec.solver), not both")
        if self.target_sparsity is None:
            raise ValueError("layer-by-layer pruning prunes to a sparsity target, not a cost target")
        return self._access.prune_layerwise(spec, score, self.target_sparsity)


class StepContext:
    """What training hooks see: where training stands, the masks and the weights. `access` is the engine's side
    of the contract (prunebench.engine.access.EngineStepAccess, or the method process's remote access); the
    context keeps it private. `model` is the model as the engine holds it (in a method process of its own: a copy,
    brought up to date when read)."""

    def __init__(
        self,
        stage: str,
        epoch: int,
        step: int,
        steps_per_epoch: int,
        model: nn.Module | None,
        access: StepAccess,
        lr: float = 0.0,
        epochs: int = 0,
    ) -> None:
        self.stage = stage
        self.epoch = epoch  # 1-based, within the stage
        self.step = step  # optimizer steps so far within the stage
        self.steps_per_epoch = steps_per_epoch
        # The epochs this run of the stage trains (its recipe's, or what the method asked for): with
        # steps_per_epoch, the length a schedule of mask updates is laid out over.
        self.epochs = epochs
        # The engine optimizer's learning rate at this step (at on_epoch_end: at the epoch's first step), so
        # a method stepping its own optimizer can follow the protocol's schedule.
        self.lr = lr
        self._model = model
        self._access = access

    def __repr__(self) -> str:
        return f"StepContext(stage={self.stage!r}, epoch={self.epoch}, step={self.step}, lr={self.lr:g})"

    @property
    def model(self) -> nn.Module:
        return self._model if self._model is not None else self._access.model

    def set_masks(self, masks: Masks) -> None:
        """Prune while training (gradual methods); the engine validates and enforces the masks."""
        self._access.set_masks(masks)

    def masks(self) -> Masks:
        return self._access.masks()

    def weights(self) -> dict[str, Tensor]:
        return self._access.weights()

    def next_call_at(self, step: int | None) -> None:
        """The cadence of on_step_end: call it next at optimizer step `step` of this stage (`ctx.step` counts them;
        None: not again in this run of the stage). Until then the engine skips it: a method whose hook acts at
        known steps (a pruning schedule) saves a call per step, a round trip to its own process. Only on_step_end;
        a stage that starts again (or resumes) calls it at every step until it says otherwise."""
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise TypeError(f"next_call_at takes an optimizer step (an int) or None, not {step!r}")
        self._access.next_call_at(step)

    def dense_gradients(self) -> dict[str, Tensor]:
        """The gradient of this step's objective with respect to every prunable weight, by name, pruned positions
        included: computed before the masks zeroed it and before the optimizer step (under DDP: all-reduced, the
        same on every rank). Only for a method whose class sets `dense_gradients`, in on_step_end: at the steps
        where the hook is called the engine keeps it and counts it in the training FLOPs (a dense weight gradient,
        Evci et al. 2020's (3 f_S ΔT + 2 f_S + f_D) / (ΔT + 1) per step); the hook's cadence (`next_call_at`)
        decides how often that is. RuntimeError elsewhere."""
        return self._access.dense_gradients()
