"""ImageNet (ILSVRC 2012) as an ImageFolder tree, streamed from disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import Tensor

from prunebench.data.folders import class_folders, folder_files, folder_pair
from prunebench.data.registry import (
    IMAGE_EXTENSIONS,
    DataBundle,
    DatasetInfo,
    data_root,
    register_dataset,
    root_error,
)
from prunebench.data.selection import select
from prunebench.data.splits import Normalization
from prunebench.data.streaming import StreamingSplit
from prunebench.protocol import DataSpec

_IMAGENET_NORM = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 255.0)


def _probe(info: DatasetInfo, spec: DataSpec) -> None:
    root, hint = data_root(info, spec)
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise root_error(info, root, f"{sub}/ is not there", hint)
    classes = folder_pair(info, root, "train", "val", hint)
    # Listing 1.28 million files is not cheap: look into the first class folder only.
    for sub in ("train", "val"):
        first = root / sub / classes[0]
        try:
            with os.scandir(first) as entries:
                has_image = any(e.name.lower().endswith(IMAGE_EXTENSIONS) for e in entries)
        except OSError as exc:
            raise root_error(info, root, f"cannot list {first}: {exc.strerror}", hint) from None
        if not has_image:
            raise root_error(info, root, f"{sub}/{classes[0]}/ holds no images (.JPEG, .jpg, .png)", hint)


def _read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    _probe(info, spec)
    root, _ = data_root(info, spec)
    classes = class_folders(info, root, root / "train", "")
    train_paths, train_y = folder_files(info, root, root / "train", classes)
    test_paths, test_y = folder_files(info, root, root / "val", classes)
    sel = select(info, spec, train_y, test_y, len(classes), f" in {root}")
    # Fixed-width bytes: workers index them without touching per-string refcounts (no copy-on-write).
    train_arr = np.array([os.fsencode(p) for p in train_paths])
    test_arr = np.array([os.fsencode(p) for p in test_paths])

    def split(directory: Path, source: str, paths: np.ndarray, labels: Tensor, positions: Tensor) -> StreamingSplit:
        return StreamingSplit(
            directory=directory,
            paths=paths[positions.numpy()],
            labels=labels[positions].clone(),
            indices=positions,
            source=source,
            augmentation=spec.augmentation,
            normalization=_IMAGENET_NORM,
            num_workers=spec.num_workers,
        )

    return DataBundle(
        name=info.name,
        train=split(root / "train", "train", train_arr, train_y, sel.train),
        val=split(root / "train", "train", train_arr, train_y, sel.val),
        test=split(root / "val", "test", test_arr, test_y, sel.test),
        num_classes=len(classes),
        input_shape=(3, 224, 224),
        classes=tuple(classes),
    )


register_dataset(
    DatasetInfo(
        name="imagenet",
        title="ImageNet",
        description="ImageNet (ILSVRC 2012) streamed from disk at 224x224; its val/ is the test split",
        layout="train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (ImageFolder; the same class folders in both; "
        "val/ sorted into class folders, as torchvision's ImageNet scripts leave it)",
        augmentations=("none", "imagenet"),
        num_classes=None,
        input_shape=(3, 224, 224),
        probe=_probe,
        read=_read,
        in_memory=False,
    )
)
