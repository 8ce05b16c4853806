"""Text as a causal LM sees it: splits of token windows, the tokenizer that made them, and the calibration windows
one-shot pruning draws (task causal_lm; prunebench.language holds the references' definitions).

A split's text is its documents joined by a blank line (WikiText-2's `"\\n\\n".join` of the references'
perplexity), tokenized once and cut into non-overlapping windows of `data.text.seqlen` tokens, the tail dropped
(prunebench.language.perplexity.windows): the test split is then exactly the references' perplexity, and training
takes the same windows in a shuffled order each epoch. A window's target is the window itself (the Hugging Face
convention; prunebench.tasks.causal_lm shifts it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from prunebench.data.splits import Normalization, Split
from prunebench.protocol import CalibrationSpec
from prunebench.protocol.sections import expand_path

SEPARATOR = "\n\n"
IGNORED = -100  # a target no prediction is scored at (prunebench.tasks.causal_lm's; torch's ignore_index)
_NO_PIXELS = Normalization((0.0,), (1.0,), 1.0)  # token ids are not normalized: the field is unused


class TokenSplit(Split):
    """Windows of token ids (windows, seqlen) int64 held in memory; each batch is (windows, targets): the windows
    themselves, or (sliding windows) the same with IGNORED where a token is not scored."""

    def __init__(self, windows: Tensor, *, source: str, targets: Tensor | None = None) -> None:
        if windows.dim() != 2 or windows.dtype != torch.long:
            raise ValueError(f"windows must be (n, seqlen) int64 token ids, got {tuple(windows.shape)} {windows.dtype}")
        if targets is not None and (targets.shape != windows.shape or targets.dtype != torch.long):
            raise ValueError(f"targets must be int64 of the windows' shape {tuple(windows.shape)}")
        n = windows.shape[0]
        labels = windows if targets is None else targets
        super().__init__(
            labels=labels, indices=torch.arange(n), source=source, augmentation="none", normalization=_NO_PIXELS
        )
        self.windows, self.targets = windows, labels

    @property
    def num_examples(self) -> int:
        return int(self.windows.shape[0])

    @property
    def tokens(self) -> int:
        return int(self.windows.numel())

    def _batches(
        self, batch_size: int, shuffle: bool, augment: bool, generator: torch.Generator | None, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.num_examples
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            chosen = order[start : start + batch_size]
            x = self.windows.index_select(0, chosen).to(device)
            yield x, (x if self.targets is self.windows else self.targets.index_select(0, chosen).to(device))


def sliding_windows(ids: Sequence[int] | Tensor, seqlen: int, stride: int) -> tuple[Tensor, Tensor]:
    """(windows, targets) of the sliding perplexity (prunebench.language.perplexity.sliding_perplexity, transformers'
    "Perplexity of fixed-length models"): a window of up to `seqlen` tokens starts every `stride` tokens until one
    reaches the end, each scoring only the tokens no earlier window scored (the others' targets IGNORED). A last
    window shorter than `seqlen` is padded on the right with token 0, its targets IGNORED there: a causal model's
    logits at a position see no later one, so the padding changes no scored logit."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if not 1 <= stride <= seqlen:
        raise ValueError(f"stride must be between 1 and seqlen {seqlen}, got {stride}")
    windows, targets, previous = [], [], 0
    for begin in range(0, ids.numel(), stride):
        end = min(begin + seqlen, ids.numel())
        window = torch.full((seqlen,), 0, dtype=torch.long)
        target = torch.full((seqlen,), IGNORED, dtype=torch.long)
        window[: end - begin] = ids[begin:end]
        new = end - previous  # the tokens this window scores: its last ones
        target[end - begin - new : end - begin] = ids[end - new : end]
        windows.append(window)
        targets.append(target)
        previous = end
        if end == ids.numel():
            break
    return torch.stack(windows), torch.stack(targets)


def token_windows(ids: Sequence[int] | Tensor, seqlen: int) -> Tensor:
    """Non-overlapping windows of `seqlen` tokens, the tail dropped (the references' perplexity windows)."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = ids.numel() // seqlen
    return ids[: n * seqlen].view(n, seqlen)


@dataclass(frozen=True)
class TextData:
    """What a text data set's bundle keeps beside its splits: the tokenizer (a transformers fast tokenizer) and
    what identifies it and the data, for every record; the training documents, for calibration on them; the
    calibration windows by seed, once drawn (`prunebench.data.calibration`)."""

    tokenizer: Any = field(repr=False, compare=False)
    tokenizer_sha256: str
    data_sha256: str
    train_documents: tuple[str, ...] = field(default=(), repr=False, compare=False)
    calibration: dict[int, Tensor] = field(default_factory=dict, repr=False, compare=False)
    calibration_sha256: str | None = None  # of the calibration files (C4 shards); None: the training text

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text)["input_ids"]
        return ids

    def windows(self, documents: Sequence[str], seqlen: int) -> Tensor:
        """The documents joined by a blank line, tokenized once, in windows of `seqlen` tokens."""
        return token_windows(self.encode(SEPARATOR.join(documents)), seqlen)

    def split(self, documents: Sequence[str], seqlen: int, stride: int | None, *, source: str) -> TokenSplit:
        """A split of the documents: non-overlapping windows, the tail dropped (stride None: the references'), or
        sliding windows every `stride` tokens (`sliding_windows`)."""
        if stride is None:
            return TokenSplit(self.windows(documents, seqlen), source=source)
        windows, targets = sliding_windows(self.encode(SEPARATOR.join(documents)), seqlen, stride)
        return TokenSplit(windows, source=source, targets=targets)


def draw_calibration(text: TextData, spec: CalibrationSpec, seqlen: int, seeds: Sequence[int]) -> TextData:
    """`text` with the calibration windows of every seed drawn as the references draw them (prunebench.language
    .calibration: C4's `get_c4`, or the training text's `get_wikitext2`), by the runner, before any job: a job
    gets its seed's windows and nothing to draw others from. The training documents are dropped then."""
    from prunebench.language import c4_calibration, read_c4, wikitext2_calibration

    length = spec.seqlen or seqlen
    if spec.source == "c4":
        corpus = read_c4([expand_path(f, ("pruning", "calibration", "files"), "a C4 shard") for f in spec.files])
        documents, sha256 = corpus.texts, corpus.sha256

        def draw(seed: int) -> Tensor:
            return c4_calibration(documents, text.encode, spec.nsamples, length, seed).inputs
    else:
        documents, sha256 = list(text.train_documents), None

        def draw(seed: int) -> Tensor:
            return wikitext2_calibration(documents, text.encode, spec.nsamples, length, seed).inputs

    windows = {seed: draw(seed) for seed in seeds}
    return dataclasses.replace(text, train_documents=(), calibration=windows, calibration_sha256=sha256)
