"""Splits as the engine holds them: batches of normalized images, augmented on the fly.

Small data sets are decoded once into uint8 tensors in memory and batched by slicing, with the augmentation
applied to the whole batch at once (a per-example DataLoader is far slower on a few CPU cores). Shuffling and
augmentation draw only from the generator passed to `Split.batches`, so the same seed gives bit-identical
batches.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

AUGMENTATIONS: dict[str, str] = {
    "none": "no augmentation: training batches are transformed as evaluation batches are",
    "flip_crop": "pad 4 zero pixels, crop back to the input size at a random offset, random horizontal flip",
    "imagenet": "RandomResizedCrop(224) and a random horizontal flip (evaluation: Resize(256), CenterCrop(224))",
}


# ---- normalization and augmentation ---------------------------------------------------------------
@dataclass(frozen=True)
class Normalization:
    """Stored pixels / scale are in [0, 1]; batches hold (pixels / scale - mean) / std per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float

    def affine(self, device: torch.device) -> tuple[Tensor, Tensor]:
        # Folded into one multiply-add: x * a + b.
        mean = torch.tensor(self.mean, dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float64).view(1, -1, 1, 1)
        a = (1.0 / (self.scale * std)).float().to(device)
        b = (-mean / std).float().to(device)
        return a, b


def normalize(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.addcmul(b, x.float(), a)  # out of place: x may be the stored data itself


def flip_crop(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Pad with zeros, crop back to H x W at a random offset, flip half the images; one gather."""
    n, c, h, w = x.shape
    # Drawn on the CPU from the caller's generator, whatever the device, so that batches agree.
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    device = x.device
    padded = x.new_zeros((n, c, h + 2 * pad, w + 2 * pad))
    padded[:, :, pad : pad + h, pad : pad + w] = x
    rows = top.to(device)[:, None] + torch.arange(h, device=device)
    cols = left.to(device)[:, None] + torch.arange(w, device=device)
    cols = torch.where(flip.to(device)[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    chan = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def check_batch_args(batch_size: int, random: bool, generator: torch.Generator | None) -> None:
    # Programming errors of the caller, not user input: plain ValueErrors.
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if random and generator is None:
        raise ValueError("shuffling and augmentation draw only from `generator`: pass a torch.Generator")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"the generator must be a CPU torch.Generator, got one on {generator.device}")


# ---- splits ---------------------------------------------------------------------------------------
class Split(ABC):
    """One split (train, val or test) as the engine holds it.

    `labels` are the int64 labels in the split's unshuffled order; `indices` are the positions of the
    examples in `source` (the data set's training or test files, or for digits the whole data set), so
    that splits drawn from the same source can be checked for overlap. `augmentation` is what
    `train=True` applies; `normalization` maps stored pixels to what `batches` yields.
    """

    def __init__(
        self, *, labels: Tensor, indices: Tensor, source: str, augmentation: str, normalization: Normalization
    ) -> None:
        self.labels = labels
        self.indices = indices
        self.source = source
        self.augmentation = augmentation
        self.normalization = normalization

    @property
    def num_examples(self) -> int:
        return int(self.labels.numel())

    def __len__(self) -> int:
        return self.num_examples

    def num_batches(self, batch_size: int) -> int:
        """Batches per pass; the last partial batch is kept."""
        return math.ceil(self.num_examples / batch_size)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        train: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yields (inputs float32 NCHW normalized, labels int64) on `device`. `train=True` applies the
        training augmentation; False applies the evaluation transform. Shuffling and every random
        augmentation draw only from `generator` (a CPU torch.Generator), so the same generator seed gives
        bit-identical batches. The last partial batch is kept."""
        # The data set accepted the augmentation's name when it was loaded; "none" is the only no-op.
        augment = train and self.augmentation != "none"
        check_batch_args(batch_size, shuffle or augment, generator)
        return self._batches(batch_size, shuffle, augment, generator, torch.device(device))

    @abstractmethod
    def _batches(
        self,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches, with augmentation already decided and the arguments checked."""


class TensorSplit(Split):
    """A split held in memory: `images` is uint8 (float32 for generated data) N x C x H x W on the CPU."""

    def __init__(
        self,
        *,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        source: str,
        augmentation: str,
        normalization: Normalization,
    ) -> None:
        super().__init__(
            labels=labels,
            indices=indices,
            source=source,
            augmentation=augmentation,
            normalization=normalization,
        )
        self.images = images
        # One copy per device: slicing on the GPU beats copying every batch from the host.
        self._on: dict[str, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    def __getstate__(self) -> dict[str, object]:
        # Sent to a job's process without the copies on devices (a CUDA tensor cannot be pickled there).
        return {**self.__dict__, "_on": {}}

    def _tensors(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        key = str(device)
        if key not in self._on:
            a, b = self.normalization.affine(device)
            self._on[key] = (self.images.to(device), self.labels.to(device), a, b)
        return self._on[key]

    def _batches(
        self,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        images, labels, a, b = self._tensors(device)
        n = self.num_examples
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                x = images[start : start + batch_size]
                y = labels[start : start + batch_size].clone()
            else:
                idx = order[start : start + batch_size].to(device)
                x = images.index_select(0, idx)
                y = labels.index_select(0, idx)
            if augment:
                assert generator is not None
                x = flip_crop(x, generator)
            yield normalize(x, a, b), y
