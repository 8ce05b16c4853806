"""Sanity ablations: what is left of a method when the engine takes away what its masks chose.

Frankle et al. 2021 ("Pruning neural networks at initialization: why are we missing the mark?", ICLR, section 5)
and Su et al. 2020 ("Sanity-checking pruning methods: random tickets can win the jackpot", NeurIPS) find that
several methods keep their accuracy when their masks are shuffled within each layer or their weights are drawn
again: their value is in the per-layer densities alone. A protocol's `variants: {sanity: [...]}` runs, for every
method, seed and target, each ablation that applies; each is a variant with the protocol's own retraining recipe:

- `layer_shuffle`: within each prunable tensor, the same number of kept weights at uniformly random positions
  (prunebench.masks.shuffle_within_layers), done by the engine on the masks the method returned;
- `reinit`: the same masks, with the weights of a fresh initialization in place of those retraining would start
  from (Frankle et al. 2021's "reinitialization"; Frankle & Carbin 2019's random reinitialization of a ticket);
- `invert`: the lowest scores kept instead of the highest, by the context's `masks_from_scores`, for a method
  whose masks come from it (it says so: `Method.scored`).

`not_applicable` says, from a method's taxonomy, why an ablation does not apply to it (None: it applies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from prunebench.results.taxonomy import Taxonomy

Ablation = Literal["layer_shuffle", "reinit", "invert"]
ABLATIONS: tuple[str, ...] = get_args(Ablation)

DEFINITIONS: dict[str, str] = {
    "layer_shuffle": "the method's masks with their kept positions shuffled uniformly at random within each "
    "prunable tensor (the same count per tensor)",
    "reinit": "the method's masks on the weights of a fresh initialization (a second draw of the seed's)",
    "invert": "the method's scores with the lowest kept instead of the highest",
}

# Who makes each ablation: the engine, after the method's code ran, or the method's own context.
MADE_BY: dict[str, str] = {
    "layer_shuffle": "the engine made it after the method pruned",
    "reinit": "the engine made it after the method pruned",
    "invert": "the method's context made it (masks_from_scores kept the lowest scores, in the method's process)",
}

# What a method is not distinguishable from, in the board's words.
VERDICTS: dict[str, str] = {
    "layer_shuffle": "its layer-shuffled self (its per-layer densities, its kept weights at random positions)",
    "reinit": "its masks on a fresh initialization",
    "invert": "its inverted scores",
}


def not_applicable(ablation: str, taxonomy: Taxonomy, *, scored: bool) -> str | None:
    """Why `ablation` does not apply to a method of this taxonomy (one clause), or None where it does. `scored`:
    the method's masks come from PruningContext.masks_from_scores (Method.scored)."""
    if taxonomy.schedule == "dynamic":
        return "dynamic sparse training moves its masks while it trains: there is no one mask to ablate"
    if ablation == "layer_shuffle" and taxonomy.granularity != "unstructured":
        return f"its {taxonomy.granularity} structure would not survive shuffling single weights"
    if ablation == "layer_shuffle" and prunes_while_training(taxonomy) and taxonomy.retraining != "weight_rewinding":
        return "it retrains the weights it left, zeros where it pruned earlier: a shuffle would keep those zeros"
    if ablation == "reinit" and taxonomy.retraining == "scratch":
        return "it retrains from a fresh initialization already"
    if ablation == "invert" and not (scored and taxonomy.granularity == "unstructured"):
        return "its masks do not come from masks_from_scores (Method.scored is false)"
    return None


def prunes_while_training(taxonomy: Taxonomy) -> bool:
    """Whether a method's earlier prunings were trained past before it returned its masks (iterative rounds, a
    gradual schedule, after or during training): the weights it returns are zero wherever it pruned before."""
    return taxonomy.schedule in ("iterative", "gradual") and taxonomy.when != "before_training"


Applicability = dict[str, dict[str, str | None]]  # method label -> ablation -> why not (None: it applies)


def applicability(ablations: Sequence[str], described: Mapping[str, tuple[Taxonomy, bool]]) -> Applicability:
    """For every method (label -> its taxonomy and whether it is scored), each ablation and why it does not apply
    (None where it does)."""
    return {
        label: {a: not_applicable(a, taxonomy, scored=scored) for a in ablations}
        for label, (taxonomy, scored) in described.items()
    }


def unused(ablations: Sequence[str], table: Applicability) -> tuple[int, str] | None:
    """The first ablation that applies to no method (its index in `ablations`, and a line saying why for each
    method), or None."""
    for i, a in enumerate(ablations):
        if table and all(table[label][a] is not None for label in table):
            why = "; ".join(f"{label}: {table[label][a]}" for label in table)
            return i, f"{a} applies to no method of this protocol ({why})"
    return None
