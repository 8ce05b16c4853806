"""Magnitude and random pruning at initialization: the data-free baselines of pruning before training."""

from __future__ import annotations

from prunebench_baselines.magnitude import GlobalMagnitude
from prunebench_baselines.random_pruning import RandomPruning

from prunebench.methods import Taxonomy

# Both prune once, before any training, ranking over all prunable weights; the network then trains from its
# initialization under the protocol's retraining recipe.
AT_INITIALIZATION = Taxonomy(
    when="before_training", granularity="unstructured", scope="global", schedule="one_shot", retraining="fine_tune"
)


class MagnitudeAtInit(GlobalMagnitude):
    """Global magnitude pruning of the initial weights: one threshold on |w| across all prunable layers, before any
    training; the pruned network then trains from its initialization with the protocol's retraining recipe.

    The `mag` baseline of Tanaka et al. 2020 ("Pruning neural networks without any data by iteratively conserving
    synaptic flow", NeurIPS; ganguli-lab/Synaptic-Flow, Pruners/pruners.py `Mag`) and of Frankle et al. 2021
    ("Pruning neural networks at initialization: why are we missing the mark?", ICLR): global, one shot.
    """

    name = "magnitude_init"
    citation = "Tanaka et al. 2020 (NeurIPS); Frankle et al. 2021 (ICLR): magnitude pruning at initialization"
    taxonomy = AT_INITIALIZATION


class RandomAtInit(RandomPruning):
    """Random pruning at initialization: uniform random scores ranked globally (each layer keeps, in expectation,
    the same fraction) or layerwise, before any training; the network then trains from its initialization.

    The `rand` baseline of Tanaka et al. 2020 (Synaptic-Flow's `Rand`: normal random scores, global ranking, the
    same ranking as uniform ones) and of Frankle et al. 2021.
    """

    name = "random_init"
    citation = "Tanaka et al. 2020 (NeurIPS); Frankle et al. 2021 (ICLR): random pruning at initialization"
    taxonomy = AT_INITIALIZATION
