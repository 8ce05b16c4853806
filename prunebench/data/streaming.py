"""A split streamed from an image folder (ImageNet): decoding and transforms in DataLoader workers.

All randomness is explicit: per-example augmentation seeds are drawn from the generator passed to
`Split.batches`, so the same seeds give bit-identical batches whatever the number of workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from prunebench.data.registry import ROOT
from prunebench.data.splits import Normalization, Split, normalize
from prunebench.errors import FieldError


class StreamingSplit(Split):
    """A split of an image folder streamed from disk (ImageNet): decoding and transforms run in
    `num_workers` DataLoader workers; normalization runs on `device`."""

    def __init__(
        self,
        *,
        directory: Path,
        paths: np.ndarray,
        labels: Tensor,
        indices: Tensor,
        source: str,
        augmentation: str,
        normalization: Normalization,
        num_workers: int,
        size: int = 224,
        resize: int = 256,
    ) -> None:
        super().__init__(
            labels=labels,
            indices=indices,
            source=source,
            augmentation=augmentation,
            normalization=normalization,
        )
        self.directory = directory
        self.paths = paths  # bytes relative to `directory`: no per-string objects for workers to copy
        self.num_workers = num_workers
        self.size = size
        self.resize = resize

    def _batches(
        self,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        from torch.utils.data import DataLoader

        n = self.num_examples
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        # One seed per example, not per worker: the augmentation of an example does not depend on
        # which worker decodes it, so num_workers=0 and num_workers=8 give the same batches.
        seeds = torch.randint(0, 2**63 - 1, (n,), generator=generator) if augment else None
        # The loader draws its workers' base seed from this generator; without one it would draw
        # from (and so perturb) the global RNG.
        loader_seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator)) if generator is not None else 0
        dataset = _FolderDataset(os.fsencode(self.directory), self.paths, self.labels.numpy(), self.size, self.resize)
        loader = DataLoader(
            dataset,
            batch_sampler=_Plan(order, seeds, batch_size),
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(loader_seed),
        )
        a, b = self.normalization.affine(device)
        for item in loader:
            if isinstance(item, str):
                raise FieldError(ROOT, item)
            x, y = item
            yield normalize(x.to(device, non_blocking=True), a, b), y.to(device, non_blocking=True)


class _Plan:
    """The batch sampler of one pass: lists of (file index, augmentation seed or None)."""

    def __init__(self, order: Tensor, seeds: Tensor | None, batch_size: int) -> None:
        self.order = order
        self.seeds = seeds
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int | None]]]:
        for start in range(0, len(self.order), self.batch_size):
            idx = self.order[start : start + self.batch_size].tolist()
            if self.seeds is None:
                yield [(i, None) for i in idx]
            else:
                yield list(zip(idx, self.seeds[start : start + self.batch_size].tolist(), strict=True))


class _FolderDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, directory: bytes, paths: np.ndarray, labels: np.ndarray, size: int, resize: int) -> None:
        self.directory = directory
        self.paths = paths
        self.labels = labels
        self.size = size
        self.resize = resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int | None]) -> tuple[Tensor, int] | str:
        import torchvision.transforms.functional as tf
        from PIL import Image

        index, seed = key
        path = os.fsdecode(os.path.join(self.directory, self.paths[index]))
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            # Returned, not raised: a worker's exception loses its type on the way back.
            return f"cannot read the image {path}: {exc}"
        if seed is None:
            image = tf.center_crop(tf.resize(image, self.resize), [self.size, self.size])
        else:
            gen = torch.Generator().manual_seed(seed)
            top, left, height, width = _resized_crop_params(image.width, image.height, gen)
            image = tf.resized_crop(image, top, left, height, width, [self.size, self.size], antialias=True)
            if float(torch.rand(1, generator=gen)) < 0.5:
                image = tf.hflip(image)
        return tf.pil_to_tensor(image), int(self.labels[index])


def _collate(items: list[tuple[Tensor, int] | str]) -> tuple[Tensor, Tensor] | str:
    for item in items:
        if isinstance(item, str):
            return item
    images = torch.stack([item[0] for item in items])  # type: ignore[misc]
    labels = torch.tensor([item[1] for item in items], dtype=torch.int64)  # type: ignore[misc]
    return images, labels


def _resized_crop_params(width: int, height: int, gen: torch.Generator) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3), drawing from `gen`
    instead of the global RNG."""
    area = width * height
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        target = area * (0.08 + 0.92 * float(torch.rand(1, generator=gen)))
        ratio = math.exp(log_lo + (log_hi - log_lo) * float(torch.rand(1, generator=gen)))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=gen))
            left = int(torch.randint(0, width - w + 1, (1,), generator=gen))
            return top, left, h, w
    # Fallback of torchvision: the largest central crop within the ratio range.
    in_ratio = width / height
    if in_ratio < 3 / 4:
        w, h = width, round(width / (3 / 4))
    elif in_ratio > 4 / 3:
        w, h = round(height * (4 / 3)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w
