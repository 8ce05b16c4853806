"""Data sets: a protocol's `data:` section as train/val/test splits.

- `registry`: the registry of data sets (`DATASETS`, `register_dataset`), `check_data` and `load_data`, and
  what job processes must not see of them (`hidden_from_jobs`).
- `splits` and `streaming`: in-memory and streamed splits, their batches and augmentations.
- `selection`: class-balanced subsets and the seeded validation split.
- `folders`: the ImageFolder layout.
- `tokens`: text as token windows (task causal_lm), its tokenizer and calibration windows.
- `sets/`: one reader module per data set (digits, idx, cifar, imagenet, synthetic, text).
"""

from prunebench.data import sets as _sets  # noqa: F401  (registers every data set)
from prunebench.data.registry import (
    DATASETS,
    DataBundle,
    DatasetInfo,
    check_data,
    hidden_from_jobs,
    load_data,
    register_dataset,
)
from prunebench.data.splits import AUGMENTATIONS, Normalization, Split, TensorSplit
from prunebench.data.streaming import StreamingSplit
from prunebench.data.tokens import TextData, TokenSplit, draw_calibration

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DataBundle",
    "DatasetInfo",
    "Normalization",
    "Split",
    "StreamingSplit",
    "TensorSplit",
    "TextData",
    "TokenSplit",
    "check_data",
    "draw_calibration",
    "hidden_from_jobs",
    "load_data",
    "register_dataset",
]
