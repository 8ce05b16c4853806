"""RigL (Evci et al. 2020): dynamic sparse training that grows the connections of largest dense gradient."""

from __future__ import annotations

import math
from collections.abc import Callable

from prunebench_baselines.sparse_evolutionary import SETConfig, SparseEvolutionaryTraining
from torch import Tensor

from prunebench.methods import Masks, PruningContext, StepContext


class RigL(SparseEvolutionaryTraining):
    """Rigging the Lottery: SET's mask, schedule and drop (ERK or uniform; every ΔT = 100 steps from step 0 until
    75 % of training, the active connections of smallest |w| dropped, a fraction decaying from alpha = 0.3 on a
    cosine), with growth where the dense gradient of the step's batch is largest among the connections not kept.
    New connections start at zero with zero optimizer state. The dense gradient is the engine's (an update step
    costs 2 f_S + f_D FLOPs an example instead of 3 f_S, as the ledger counts), all-reduced under DDP, so every
    rank grows the same connections (RigL's appendix: masks diverged where it was not).

    Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners" (ICML); google-research/rigl,
    `SparseRigLOptimizer` (grow_init zeros, initial_acc_scale 0). Where the code's defaults differ from the paper
    the paper's are taken: the drop fraction decays on a cosine (`drop_fraction_anneal` defaults to constant), and
    which layers are sparse is the protocol's prunable set (the code keeps the first layer dense unless told). The
    reference skips the optimizer update at an update step; here every step takes it, as for every method (the
    gradient is of the weights before it, the drop of the weights after it)."""

    name = "rigl"
    version = "1.0"
    citation = "Evci et al. 2020 (ICML), Rigging the Lottery: Making All Tickets Winners"
    dense_gradients = True  # (its taxonomy is SET's: from the initialization, layerwise, dynamic)
    Config = SETConfig
    config: SETConfig

    def grow_scores(self, ctx: StepContext, masks: Masks) -> dict[str, Tensor]:
        return {name: g.abs() for name, g in ctx.dense_gradients().items()}

    def training_flops(self, ctx: PruningContext) -> Callable[[int], float]:
        """SET's, plus a dense weight gradient at every update step: f_D - f_S more an example of its batch
        (Evci et al. 2020: (3 f_S ΔT + 2 f_S + f_D) / (ΔT + 1) a step while the mask moves)."""
        c, sparse = self.config, super().training_flops(ctx)
        examples = ctx.allowance().train_examples
        batch = ctx.recipe(self.taxonomy.retraining, 1).batch_size
        extra = (ctx.forward_flops(dense=True) - ctx.forward_flops()) * batch

        def cost(epochs: int) -> float:
            updates = math.ceil(math.floor(c.end_fraction * epochs * math.ceil(examples / batch)) / c.update_steps)
            return sparse(epochs) + extra * updates

        return cost
