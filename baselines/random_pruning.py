"""Random pruning: the sanity baselines every criterion must beat."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, ValidationError, model_validator

from prunebench.errors import MethodError
from prunebench.methods import (
    Masks,
    Method,
    MethodConfig,
    PruningContext,
    Taxonomy,
    load_method,
    shuffle_within_layers,
)


class RandomPruningConfig(MethodConfig):
    scope: Literal["global", "layerwise"] = Field(
        "global", description="global: random scores ranked across layers; layerwise: the same fraction per layer."
    )


class RandomPruning(Method[RandomPruningConfig]):
    """Prune weights uniformly at random: globally (each layer keeps, in expectation, the same
    fraction) or layerwise (exactly the same fraction in every layer).

    Blalock et al. 2020, "What is the state of neural network pruning?"; Liu et al. 2022,
    "The unreasonable effectiveness of random pruning". Azarian & Porikli 2021 show that cascade
    weight shedding during retraining lifts it.
    """

    name = "random"
    version = "1.0"
    citation = "Blalock et al. 2020 (MLSys); Liu et al. 2022 (ICLR)"
    scored = True  # its masks are masks_from_scores of its scores: the invert sanity ablation applies
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="global",
        schedule="one_shot",
        retraining="fine_tune",
    )
    taxonomy_from_config = {"scope": "scope"}

    def prune(self, ctx: PruningContext) -> Masks:
        scores = {k: torch.rand(w.shape, generator=ctx.generator).to(w.device) for k, w in ctx.weights().items()}
        return ctx.masks_from_scores(scores, scope=self.config.scope)


def _source_method(source: str, config: dict[str, Any]) -> Method[Any]:
    loaded = load_method(source)
    return loaded.cls(loaded.cls.Config.model_validate(config))


class RandomShuffledConfig(MethodConfig):
    source: str = Field(
        "global_magnitude",
        description="The method whose per-layer sparsities are kept: a registered name, package.module:Class "
        "or path/to/file.py:Class (relative to the working directory).",
    )
    source_config: dict[str, Any] = Field(default_factory=dict, description="The source method's hyperparameters.")

    @model_validator(mode="after")
    def _source_loads(self) -> RandomShuffledConfig:
        # Checked here so that a bad source is a protocol error before anything runs.
        try:
            _source_method(self.source, self.source_config)
        except MethodError as exc:
            raise ValueError(f"source: {exc}") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(map(str, err["loc"]))
            raise ValueError(f"source_config.{where}: {err['msg']}") from None
        return self


class RandomShuffled(Method[RandomShuffledConfig]):
    """Layerwise-shuffled masks: another method's masks with their positions shuffled uniformly at
    random within each layer, so every layer keeps exactly that method's sparsity and nothing of its
    choice of weights. If a method does no better than its shuffled self, what it contributes is its
    per-layer sparsities, not which weights it keeps.

    Frankle et al. 2021, "Pruning neural networks at initialization: why are we missing the mark?"
    (ICLR), section 5. The source is any method the registry can load (by default global magnitude
    pruning), run with its own config on this job's context (its scoring counts against the budget).
    The shuffled method prunes when its source does (before training for snip, grasp or synflow, as
    in the paper; after training for magnitude) and retrains as its source does.

    It is the `layer_shuffle` sanity ablation of its source (`variants: {sanity: [layer_shuffle]}`,
    prunebench.protocol.sanity) as a method of its own, a row on the protocol's own board: the same
    shuffle (`shuffle_within_layers`), drawn from this job's generator, which under the registered name
    is the ablation's draw; with a source that draws nothing from the generator (global magnitude, SNIP)
    its masks are the ablation's, bit for bit. The ablation is the one to trust: the engine makes it after
    the source's own code ran, where this method is the source's code and its own.
    """

    name = "random_shuffled"
    version = "1.0"
    citation = "Frankle et al. 2021 (ICLR), Pruning neural networks at initialization: why are we missing the mark?"
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="layerwise",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def __init__(self, config: RandomShuffledConfig | None = None) -> None:
        super().__init__(config)
        self.source = _source_method(self.config.source, self.config.source_config)
        # It prunes when its source does and retrains as its source does.
        self.taxonomy = self.taxonomy.model_copy(
            update={"when": self.source.taxonomy.when, "retraining": self.source.taxonomy.retraining}
        )

    def prune(self, ctx: PruningContext) -> Masks:
        return shuffle_within_layers(self.source.prune(ctx), ctx.generator)
