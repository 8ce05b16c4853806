"""Calibration data of one-shot language-model pruning, as the references draw it: `nsamples` windows of `seqlen`
tokens, seeded.

C4 (`c4_calibration`), the calibration set of SparseGPT (Frantar & Alistarh 2023) and Wanda (Sun et al. 2024):
IST-DASLab/sparsegpt `datautils.py` and locuslab/wanda `lib/data.py`, `get_c4`, identical in both. A generator
seeded with `seed` (Python's `random`, as `random.seed(seed)`) draws, for each sample, a document index uniformly
from the corpus until the document's tokenization is longer than `seqlen` tokens (strictly: sparsegpt's commit
c3bbf61 changed `>=` to `>`), then a start uniformly in [0, length - seqlen - 1]; the window is the `seqlen` tokens
from there. A document is tokenized again whenever it is drawn, as there.

WikiText-2 (`wikitext2_calibration`, `get_wikitext2` in both): the training lines joined with single spaces,
tokenized once, and a start drawn the same way in the whole text for each sample.

The targets are the inputs with every position but the last set to -100 (ignored by a cross-entropy loss); the
references carry them along and never use them in pruning.

`encode` is the tokenizer's plain call, special tokens included, as the references call it (`tokenizer(text)`:
a LLaMA tokenizer puts BOS at the start of every document): `hf_encode(tokenizer)` makes one of a Hugging Face
tokenizer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

Encode = Callable[[str], Sequence[int]]


class Calibration(NamedTuple):
    """`inputs`, (nsamples, seqlen) token ids, and `targets`, the same with all but the last column -100."""

    inputs: Tensor
    targets: Tensor


def hf_encode(tokenizer: Any) -> Encode:
    """A Hugging Face tokenizer's `input_ids` of a text, special tokens included (its default)."""
    return lambda text: tokenizer(text)["input_ids"]


def check_seqlen(config: Any, seqlen: int) -> int:
    """`seqlen` if the model takes windows that long: at least 2 tokens (one predicted), at most the config's
    `max_position_embeddings` (`n_positions` for GPT-2's configs)."""
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if seqlen < 2:
        raise ValueError(f"seqlen must be at least 2 tokens, got {seqlen}")
    if limit is not None and seqlen > limit:
        raise ValueError(f"seqlen {seqlen} exceeds the model's max_position_embeddings {limit}")
    return seqlen


def with_targets(inputs: Tensor) -> Calibration:
    """The references' targets: a copy of the inputs with all but the last position -100."""
    targets = inputs.clone()
    targets[:, :-1] = -100
    return Calibration(inputs, targets)


def check_counts(nsamples: int, seqlen: int) -> None:
    if nsamples < 1:
        raise ValueError(f"nsamples must be at least 1, got {nsamples}")
    if seqlen < 1:
        raise ValueError(f"seqlen must be at least 1, got {seqlen}")


def c4_calibration(
    documents: Sequence[str], encode: Encode, nsamples: int = 128, seqlen: int = 2048, seed: int = 0
) -> Calibration:
    """`get_c4`'s calibration windows of `documents` (C4's first training shard in the references)."""
    check_counts(nsamples, seqlen)
    if not documents:
        raise ValueError("the calibration corpus has no documents")
    rng = random.Random(seed)
    too_short: set[int] = set()
    windows = []
    for _ in range(nsamples):
        while True:
            index = rng.randint(0, len(documents) - 1)
            ids = list(encode(documents[index]))
            if len(ids) > seqlen:
                break
            too_short.add(index)
            if len(too_short) == len(documents):
                raise ValueError(f"no document of the calibration corpus is longer than one window of {seqlen} tokens")
        start = rng.randint(0, len(ids) - seqlen - 1)
        windows.append(ids[start : start + seqlen])
    return with_targets(torch.tensor(windows, dtype=torch.long))


def wikitext2_calibration(
    lines: Sequence[str], encode: Encode, nsamples: int = 128, seqlen: int = 2048, seed: int = 0
) -> Calibration:
    """`get_wikitext2`'s calibration windows of the training `lines` (joined by spaces, tokenized once)."""
    check_counts(nsamples, seqlen)
    ids = list(encode(" ".join(lines)))
    if len(ids) <= seqlen:
        raise ValueError(f"the calibration text has {len(ids)} tokens, not more than one window of {seqlen}")
    rng = random.Random(seed)
    starts = [rng.randint(0, len(ids) - seqlen - 1) for _ in range(nsamples)]
    return with_targets(torch.tensor([ids[s : s + seqlen] for s in starts], dtype=torch.long))
