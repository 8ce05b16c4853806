"""Dense base models: their cache (`cache`), the user's own checkpoint (`pretrained`), training one
(`training`), and the service a run asks for a seed's (`service`: the cache first, else made under a lease)."""

from prunebench.run.dense.cache import BaseCheckpoint, DenseCache, default_cache_dir, weights_sha256
from prunebench.run.dense.service import BaseBusy, DenseModels, held_states

__all__ = [
    "BaseBusy",
    "BaseCheckpoint",
    "DenseCache",
    "DenseModels",
    "default_cache_dir",
    "held_states",
    "weights_sha256",
]
